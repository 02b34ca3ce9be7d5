"""The dependency-aware job runner that overlaps base builds with seeds."""

from __future__ import annotations

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
