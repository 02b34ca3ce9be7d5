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
from collections.abc import Callable, Iterable
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


def drive(
    jobs: list[Job],
    running: dict[Any, Job],
    submit: Callable[[Job], Any],
    wait_some: Callable[[list[Any]], Iterable[Any]],
    result: Callable[[Any], Any],
    limit: int | None = None,
    on_done: Callable[[Job, Any], None] | None = None,
) -> dict[str, Any]:
    """The scheduling loop both executors share: submit each job whose needs are done (list
    order is the priority; at most ``limit`` running), wait for some to finish, collect their
    results, repeat. ``running`` maps each submitted handle to its job and is the caller's, so
    that on an error the caller can stop what is still running; ``result(handle)`` raises a
    job's error."""
    pending = list(jobs)
    results: dict[str, Any] = {}
    while pending or running:
        for job in list(pending):
            if limit is not None and len(running) >= limit:
                break
            if all(n in results for n in job.needs):
                pending.remove(job)
                running[submit(job)] = job
        if not running:
            raise RuntimeError(f"no job can start: {[j.name for j in pending]}")
        for handle in wait_some(list(running)):
            job = running.pop(handle)
            results[job.name] = result(handle)
            if on_done is not None:
                on_done(job, results[job.name])
    return results


def _stop_workers(pool: Any) -> None:
    """Kill a process pool's workers (the jobs they run are abandoned)."""
    terminate = getattr(pool, "terminate_workers", None)  # Python 3.14+
    if terminate is not None:
        terminate()
        return
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.terminate()


def pool_initializer(parent: int) -> None:
    """Worker initializer: die with ``parent`` (:func:`die_with_parent`) and run torch on one
    thread (the workers share the cores; set before torch is first imported)."""
    die_with_parent(parent)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    else:
        os.environ["OMP_NUM_THREADS"] = "1"


def run_jobs(
    jobs: list[Job],
    workers: int,
    on_done: Callable[[Job, Any], None] | None = None,
    ray: RaySettings | None = None,
) -> dict[str, Any]:
    """Run ``jobs`` on ``workers`` spawned processes (one torch thread each) and return
    ``{name: result}``.

    A free worker takes the first job in list order whose needs are done, so the list order is
    the priority. The first job that raises stops the run: jobs not started are dropped, the
    running ones are killed and the error propagates. ``on_done`` is called in this process as
    each job finishes.

    With ``ray`` settings the jobs run as Ray tasks instead (same contract, ``workers`` unused:
    the cluster's resources bound the parallelism); see :mod:`sublab.experiment.ray_exec`.
    """
    if ray is not None:
        from sublab.experiment.ray_exec import run_jobs_ray

        return run_jobs_ray(jobs, ray, on_done)
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

    check_jobs(jobs)
    workers = max(1, workers)
    running: dict[Future[Any], Job] = {}
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=pool_initializer,
        initargs=(os.getpid(),),
    )
    try:
        return drive(
            jobs,
            running,
            submit=lambda job: pool.submit(job.fn, *job.args),
            wait_some=lambda handles: wait(handles, return_when=FIRST_COMPLETED)[0],
            result=lambda future: future.result(),
            limit=workers,
            on_done=on_done,
        )
    except BaseException:
        if running:
            _stop_workers(pool)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
