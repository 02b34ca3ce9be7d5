"""The dependency-aware job runner that overlaps base builds with seeds."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sublab.experiment.schedule import Job, check_jobs, run_jobs


def test_a_job_starts_only_after_what_it_needs(tmp_path: Path) -> None:
    f = tmp_path / "made-by-a.txt"
    jobs = [
        # listed first, but it needs "a": it must wait, or read_text fails in the worker
        Job("b", Path.read_text, (f,), needs=("a",)),
        Job("a", Path.write_text, (f, "from a")),
        Job("c", len, ("four",)),
    ]
    seen: list[str] = []
    results = run_jobs(jobs, workers=2, on_done=lambda job, _: seen.append(job.name))
    assert results == {"a": 6, "b": "from a", "c": 4}
    assert seen.index("a") < seen.index("b")


def test_the_first_failure_propagates() -> None:
    with pytest.raises(ValueError, match="invalid literal"):
        run_jobs([Job("bad", int, ("not a number",)), Job("ok", len, ("x",))], workers=1)


def test_a_failure_stops_the_jobs_still_running() -> None:
    # "long" is running beside "bad" when "bad" fails: it is killed, not waited for
    start = time.monotonic()
    with pytest.raises(ValueError, match="invalid literal"):
        run_jobs([Job("long", time.sleep, (300,)), Job("bad", int, ("not a number",))], workers=2)
    assert time.monotonic() - start < 120


def test_workers_run_torch_on_one_thread() -> None:
    import torch

    assert run_jobs([Job("threads", torch.get_num_threads)], workers=2) == {"threads": 1}


def test_drive_refuses_jobs_that_cannot_start() -> None:
    from sublab.experiment.schedule import drive

    with pytest.raises(RuntimeError, match="no job can start"):
        drive([Job("a", len, needs=("b",))], {}, submit=id, wait_some=list, result=id)


@pytest.mark.parametrize(
    ("jobs", "message"),
    [
        ([Job("a", len), Job("a", len)], "repeat"),
        ([Job("a", len, needs=("zzz",))], "unknown"),
        ([Job("a", len, needs=("b",)), Job("b", len, needs=("a",))], "wait on each other"),
    ],
)
def test_bad_job_lists_are_refused_before_anything_runs(jobs: list[Job], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_jobs(jobs)


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state first, then the parent's
    pid), or None when the process is gone."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _alive(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def _children(pid: int) -> list[int]:
    """Live child processes of ``pid`` (Linux /proc), zombies excluded."""
    kids = []
    for entry in Path("/proc").glob("[0-9]*"):
        fields = _stat(int(entry.name)) if entry.name.isdigit() else None
        if fields is not None and fields[0] != "Z" and fields[1] == str(pid):
            kids.append(int(entry.name))
    return kids


@pytest.mark.skipif(sys.platform != "linux", reason="the parent-death signal is Linux only")
def test_workers_die_with_a_killed_run() -> None:
    script = (
        "import time\n"
        "from sublab.experiment.schedule import Job, run_jobs\n"
        "run_jobs([Job('long', time.sleep, (120,))], workers=1)\n"
    )
    run = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 60
        workers: list[int] = []
        while time.monotonic() < deadline and not workers:
            time.sleep(0.2)
            workers = [k for k in _children(run.pid) if b"spawn_main" in _cmdline(k)]
        assert workers, "no worker started"
        time.sleep(1.0)  # let the worker reach its job
        run.send_signal(signal.SIGTERM)
        run.wait(timeout=30)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(_alive(w) for w in workers):
            time.sleep(0.2)
        assert not any(_alive(w) for w in workers), "a worker outlived its run"
    finally:
        run.kill()


def _cmdline(pid: int) -> bytes:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes()
    except OSError:
        return b""


def test_pool_workers_caps_and_keeps_one_per_gpu() -> None:
    import os

    from sublab.experiment.run import pool_workers

    assert pool_workers(8, ["cpu"], 3) == 3 and pool_workers(2, ["cuda"], 9) == 2
    assert pool_workers(None, ["cpu", "cpu"], 1) == 1
    assert pool_workers(None, ["cpu"], 64) == max(1, min(64, os.cpu_count() or 1))
    # 'auto' is the CPU on a machine without CUDA; a CUDA device is refused there
    assert pool_workers(None, ["auto"], 64) == pool_workers(None, ["cpu"], 64)
