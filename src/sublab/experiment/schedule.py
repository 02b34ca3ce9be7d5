"""Run jobs that depend on each other on a pool of worker processes.

An experiment on the organism has two kinds of job: building a base, and running every stage
of one seed (which needs its own base and, for cross-model students, the next seed's). Running
all builds first and then all seeds leaves a core idle whenever the counts do not divide by
the number of workers; here a seed starts as soon as its bases exist and a worker is free.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Job:
    """``fn(*args)`` in a worker process, once every job named in ``needs`` has finished.

    ``fn`` and ``args`` must pickle (a module-level function and plain data)."""

    name: str
    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    needs: tuple[str, ...] = ()


def check_jobs(jobs: list[Job]) -> None:
    """Raise ``ValueError`` on a repeated name, an unknown need or a cycle."""
    names = [j.name for j in jobs]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"job names repeat: {repeated}")
    unknown = sorted({n for j in jobs for n in j.needs if n not in names})
    if unknown:
        raise ValueError(f"jobs need unknown jobs: {unknown}")
    done: set[str] = set()
    left = list(jobs)
    while left:
        ready = [j for j in left if set(j.needs) <= done]
        if not ready:
            raise ValueError(f"jobs wait on each other: {sorted(j.name for j in left)}")
        done.update(j.name for j in ready)
        left = [j for j in left if j.name not in done]


def run_jobs(
    jobs: list[Job],
    workers: int,
    on_done: Callable[[Job, Any], None] | None = None,
) -> dict[str, Any]:
    """Run ``jobs`` on ``workers`` spawned processes and return ``{name: result}``.

    A free worker takes the first job in list order whose needs are done, so the list order is
    the priority. The first job that raises stops the run: queued jobs are cancelled and the
    error propagates. ``on_done`` is called in this process as each job finishes.
    """
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

    check_jobs(jobs)
    pending = list(jobs)
    running: dict[Future[Any], Job] = {}
    results: dict[str, Any] = {}
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=max(1, workers), mp_context=ctx) as pool:
        try:
            while pending or running:
                for job in list(pending):
                    if len(running) >= workers:
                        break
                    if all(n in results for n in job.needs):
                        pending.remove(job)
                        running[pool.submit(job.fn, *job.args)] = job
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    job = running.pop(future)
                    results[job.name] = future.result()
                    if on_done is not None:
                        on_done(job, results[job.name])
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return results
