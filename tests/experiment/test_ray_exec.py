"""Job graphs as Ray tasks on a private local Ray instance (never 'ray stop': other Ray
processes on the machine are left alone; only what these tests start is shut down)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'sublab[ray]')")

from sublab.experiment.ray_exec import RaySettings, run_jobs_ray  # noqa: E402
from sublab.experiment.schedule import Job, run_jobs  # noqa: E402
from sublab.store import Run  # noqa: E402

SETTINGS = RaySettings(address="local")


@pytest.fixture(scope="module", autouse=True)
def ray_instance() -> Iterator[None]:
    """A 2-CPU Ray instance in a short private temp folder (Ray's sockets live there). This
    module's job functions travel by value: workers cannot import a test module."""
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    temp = tempfile.mkdtemp(prefix="sublab-ray-")
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        _temp_dir=temp,
        log_to_driver=False,
    )
    yield
    ray.shutdown()
    shutil.rmtree(temp, ignore_errors=True)


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def test_jobs_run_after_their_needs_with_their_cpus(tmp_path: Path) -> None:
    f = tmp_path / "made-by-a.txt"
    jobs = [
        Job("b", Path.read_text, (f,), needs=("a",)),
        Job("a", Path.write_text, (f, "from a")),
        Job("two-threads", _threads, num_cpus=2),
        Job("one-thread", _threads),
    ]
    seen: list[str] = []
    # through the schedule's seam, as an experiment calls it
    results = run_jobs(jobs, 1, on_done=lambda job, _: seen.append(job.name), ray=SETTINGS)
    assert results == {"a": 6, "b": "from a", "two-threads": 2, "one-thread": 1}
    assert seen.index("a") < seen.index("b")


def _note_pid_then_sleep(path: Path) -> None:
    import os

    path.write_text(str(os.getpid()))
    time.sleep(120)


def _gone(pid_file: Path, within: float) -> bool:
    """Whether the process whose pid is in ``pid_file`` (if it started) ends within ``within`` s."""
    deadline = time.monotonic() + within
    while pid_file.exists() and time.monotonic() < deadline:
        stat = Path(f"/proc/{pid_file.read_text()}/stat")
        if not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return True
        time.sleep(0.1)
    return not pid_file.exists()


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_the_first_failure_propagates_and_stops_the_rest(tmp_path: Path) -> None:
    slow, after = tmp_path / "slow.pid", tmp_path / "after-ran"
    jobs = [
        Job("slow", _note_pid_then_sleep, (slow,)),
        Job("bad", int, ("not a number",)),
        Job("after", Path.touch, (after,), needs=("slow",)),
    ]
    started = time.monotonic()
    with pytest.raises(ValueError, match="invalid literal"):
        run_jobs_ray(jobs, SETTINGS)
    assert time.monotonic() - started < 60, "the run waited for the running job"
    assert _gone(slow, within=15), "the running job was not cancelled"
    assert not after.exists(), "a job was started after the failure"


def _stage(run_path: str, name: str, needs: list[str], fail_flag: str | None) -> dict:
    """A real cached stage: its artifact holds its name and the text of the artifacts it read.
    With ``fail_flag`` it fails once (the first time the flag file is missing)."""
    run = Run(run_path)
    inputs = [run.find(n)[0] for n in needs]

    def build(work: Path) -> dict:
        if fail_flag is not None and not Path(fail_flag).exists():
            Path(fail_flag).touch()
            raise RuntimeError(f"{name}: the node went away")
        text = name + "".join("<" + (a.path / "out.txt").read_text() for a in inputs)
        (work / "out.txt").write_text(text)
        with (Path(run_path) / "builds.log").open("a") as log:
            log.write(name + "\n")
        return {"chars": len(text)}

    art = run.build(name, {"name": name}, build, inputs=[a.key for a in inputs])
    return {"cached": art.cached, "text": (art.path / "out.txt").read_text()}


def test_a_failed_run_resumes_from_the_artifacts_that_finished(tmp_path: Path) -> None:
    run = Run.create("resume", kind="test", config={}, runs_dir=tmp_path)
    flag = str(tmp_path / "failed-once")

    def graph() -> list[Job]:
        return [
            Job("a", _stage, (str(run.path), "a", [], None)),
            Job("b", _stage, (str(run.path), "b", ["a"], None), needs=("a",)),
            Job("c", _stage, (str(run.path), "c", ["b"], flag), needs=("b",)),
            Job("d", _stage, (str(run.path), "d", ["c"], None), needs=("c",)),
        ]

    with pytest.raises(RuntimeError, match="node went away"):
        run_jobs_ray(graph(), SETTINGS)
    assert (run.path / "builds.log").read_text().split() == ["a", "b"]
    assert run.find("c") == [], "the failed stage left a finished artifact"

    results = run_jobs_ray(graph(), SETTINGS)
    assert {n: r["cached"] for n, r in results.items()} == {
        "a": True,
        "b": True,
        "c": False,
        "d": False,
    }
    assert results["d"]["text"] == "d<c<b<a"
    assert (run.path / "builds.log").read_text().split() == ["a", "b", "c", "d"]


def test_a_local_instance_started_for_the_run_is_stopped_after(tmp_path: Path) -> None:
    temp = tempfile.mkdtemp(prefix="sublab-ray-")
    script = (
        "from sublab.experiment.ray_exec import RaySettings, run_jobs_ray\n"
        "from sublab.experiment.schedule import Job\n"
        f"s = RaySettings(address='local', local_cpus=1, temp_dir={temp!r})\n"
        "print(run_jobs_ray([Job('a', len, ('four',))], s))\n"
    )
    try:
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, out.stderr[-2000:]
        assert "{'a': 4}" in out.stdout
        assert list(Path(temp).glob("session_*")), "the instance did not use its temp dir"
        left = [
            p
            for p in Path("/proc").glob("[0-9]*")
            if temp.encode() in _cmdline(p) and p.name.isdigit()
        ]
        assert not left, f"Ray processes of the run outlived it: {left}"
        # without temp_dir the session folder is made (under TMPDIR) and removed after
        made_here = script.replace(f", temp_dir={temp!r}", "")
        env = {**os.environ, "TMPDIR": temp}
        out = subprocess.run(
            [sys.executable, "-c", made_here], capture_output=True, text=True, timeout=120, env=env
        )
        assert out.returncode == 0, out.stderr[-2000:]
        assert "{'a': 4}" in out.stdout
        assert not list(Path(temp).glob("sublab-ray-*")), "the session folder was left behind"
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def _cmdline(proc: Path) -> bytes:
    try:
        return (proc / "cmdline").read_bytes()
    except OSError:
        return b""


@pytest.mark.parametrize("address", ["auto", "local", "ray://head:10001", "head:6379"])
def test_ray_addresses_that_are_accepted(address: str) -> None:
    assert RaySettings(address=address).address == address


def test_a_bad_ray_address_is_refused() -> None:
    with pytest.raises(ValueError, match="ray://host:port"):
        RaySettings(address="http://head")
