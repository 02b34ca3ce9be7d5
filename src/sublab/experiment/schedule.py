"""Run jobs that depend on each other on a pool of worker processes.

An experiment on the organism has two kinds of job: building a base, and running one unit of a
seed (its control data, a teacher's data, or one student, which needs that data and its bases).
Running all builds first and then all units leaves a core idle whenever the counts do not divide
by the number of workers; here a unit starts as soon as what it needs exists and a worker is
free. Workers die with the process that started them (on Linux), so a killed run leaves none
behind.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sublab.experiment.ray_exec import RaySettings

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """Worker initializer: have the kernel kill this worker when ``parent`` (the process that
    runs the jobs) dies. Without it a SIGTERM or SIGKILL to ``sublab run`` leaves its workers
    finishing their jobs, an organism build included, and then waiting forever. Linux only;
    elsewhere a no-op."""
    if sys.platform != "linux":
        return
    import ctypes
    import signal

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


@dataclass(frozen=True)
class Job:
    """``fn(*args)`` in a worker process, once every job named in ``needs`` has finished.

    ``fn`` and ``args`` must pickle (a module-level function and plain data). ``num_cpus`` and
    ``num_gpus`` are what the job asks Ray for (None: the Ray settings' per-unit defaults); the
    local pool runs one job per worker whatever they say."""

    name: str
    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    needs: tuple[str, ...] = ()
    num_cpus: float | None = None
    num_gpus: float | None = None


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
    ray: RaySettings | None = None,
) -> dict[str, Any]:
    """Run ``jobs`` on ``workers`` spawned processes and return ``{name: result}``.

    A free worker takes the first job in list order whose needs are done, so the list order is
    the priority. The first job that raises stops the run: queued jobs are cancelled and the
    error propagates. ``on_done`` is called in this process as each job finishes.

    With ``ray`` settings the jobs run as Ray tasks instead (same contract, ``workers`` unused:
    the cluster's resources bound the parallelism); see :mod:`sublab.experiment.ray_exec`.
    """
    if ray is not None:
        from sublab.experiment.ray_exec import run_jobs_ray

        return run_jobs_ray(jobs, ray, on_done)
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

    check_jobs(jobs)
    pending = list(jobs)
    running: dict[Future[Any], Job] = {}
    results: dict[str, Any] = {}
    ctx = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(
        max_workers=max(1, workers),
        mp_context=ctx,
        initializer=die_with_parent,
        initargs=(os.getpid(),),
    )
    with pool:
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
