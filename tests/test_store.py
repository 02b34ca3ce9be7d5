from __future__ import annotations

import json
import os

import pytest

from sublab.errors import DataError
from sublab.jsonl import read_jsonl, write_jsonl
from sublab.store import Artifact, Run, artifact_key, atomic_write_text, list_runs


def test_artifact_key_depends_on_spec_inputs_and_stage():
    k = artifact_key("gen", {"a": 1}, ["x"])
    assert k == artifact_key("gen", {"a": 1}, ["x"])
    assert k != artifact_key("gen", {"a": 2}, ["x"])
    assert k != artifact_key("gen", {"a": 1}, ["y"])
    assert k != artifact_key("filter", {"a": 1}, ["x"])
    assert k != artifact_key("gen", {"a": 1}, ["x"], stage_version=2)


def test_build_caches_and_reruns_only_on_change(tmp_path):
    run = Run.create("r1", kind="toy", config={"a": 1}, runs_dir=tmp_path)
    calls = []

    def make(work):
        calls.append(work)
        (work / "out.txt").write_text("hi")
        return {"rows": 1}

    a = run.build("gen", {"a": 1}, make)
    assert not a.cached and a.file("out.txt").read_text() == "hi"
    assert a.sidecar["counts"] == {"rows": 1}
    assert "torch" in a.sidecar["versions"]
    b = run.build("gen", {"a": 1}, make)
    assert b.cached and b.path == a.path and len(calls) == 1
    c = run.build("gen", {"a": 2}, make)
    assert not c.cached and c.path != a.path and len(calls) == 2
    assert [x.key for x in run.find("gen")] and len(run.find("gen")) == 2


def test_failed_build_leaves_no_finished_artifact(tmp_path):
    run = Run.create("r2", kind="toy", config={}, runs_dir=tmp_path)

    def boom(work):
        (work / "half.txt").write_text("x")
        raise RuntimeError("crash")

    with pytest.raises(RuntimeError):
        run.build("gen", {"a": 1}, boom)
    assert run.find("gen") == []
    assert not any(
        p.name.startswith("gen-") and not p.name.endswith(".partial") for p in run.path.iterdir()
    )


def test_artifact_without_its_sidecar_is_not_finished(tmp_path):
    run = Run.create("r2b", kind="toy", config={}, runs_dir=tmp_path)
    calls = []

    def make(work):
        calls.append(work)
        (work / "out.txt").write_text(f"build {len(calls)}")
        return {}

    a = run.build("gen", {"a": 1}, make)
    (a.path / "sidecar.json").write_text("{not json")  # damaged by hand
    assert run.find("gen") == [] and Artifact.finished(a.path) is None
    b = run.build("gen", {"a": 1}, make)  # rebuilt in place, not read as finished
    assert not b.cached and b.path == a.path and len(calls) == 2
    assert b.file("out.txt").read_text() == "build 2"
    assert Artifact.finished(b.path) == Artifact(b.path, b.key, b.sidecar, cached=True)
    assert [x.key for x in run.find("gen")] == [b.key]


def test_resumable_build_keeps_partial_work(tmp_path):
    run = Run.create("r3", kind="toy", config={}, runs_dir=tmp_path)

    def first(work):
        (work / "chunk-0").write_text("done")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        run.build("gen", {}, first, resumable=True)

    def second(work):
        assert (work / "chunk-0").read_text() == "done"
        return {}

    assert not run.build("gen", {}, second, resumable=True).cached


def test_runs_index_lists_status_and_headline(tmp_path):
    run = Run.create("r4", kind="toy", config={"x": 1}, runs_dir=tmp_path)
    run.set_status("done", {"kept": 0.5})
    rows = list_runs(tmp_path)
    assert rows[0]["name"] == "r4" and rows[0]["status"] == "done"
    assert rows[0]["headline"] == {"kept": 0.5}
    assert json.loads((run.path / "manifest.json").read_text())["config"] == {"x": 1}


def test_atomic_write_and_jsonl_errors(tmp_path):
    atomic_write_text(tmp_path / "a.txt", "1")
    assert (tmp_path / "a.txt").read_text() == "1"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]
    write_jsonl(tmp_path / "d.jsonl", [{"a": 1}, {"a": 2}])
    assert [r for _, r in read_jsonl(tmp_path / "d.jsonl")] == [{"a": 1}, {"a": 2}]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": 1}\n{"a": \n')
    with pytest.raises(DataError, match=r"bad.jsonl:2: not valid JSON"):
        list(read_jsonl(bad))
    bad.write_text("[1, 2]\n")
    with pytest.raises(DataError, match=r":1: expected a JSON object"):
        list(read_jsonl(bad))
    assert not any(".tmp" in p.name for p in tmp_path.iterdir()), os.listdir(tmp_path)
