"""Artifacts shared across the run directories of one runs folder (<runs_dir>/.cache)."""

from __future__ import annotations

import json

from sublab.store import SHARED, Run


def build(run: Run, calls: list[str], spec: dict) -> object:
    def make(work):
        calls.append(run.name)
        (work / "out.txt").write_text(json.dumps(spec))
        return {"n": 1}

    return run.build("stage", spec, make, inputs=["k0"])


def test_a_second_run_links_the_first_runs_artifact_instead_of_computing_it(tmp_path):
    calls: list[str] = []
    first = build(Run(tmp_path / "a"), calls, {"x": 1})
    second = build(Run(tmp_path / "b"), calls, {"x": 1})
    assert calls == ["a"] and not first.cached and second.cached
    assert second.key == first.key and second.path.parent.name == "b"
    a, b = first.path / "out.txt", second.path / "out.txt"
    assert a.read_text() == b.read_text() and a.stat().st_ino == b.stat().st_ino
    shared = tmp_path / SHARED / first.path.name
    assert (shared / "sidecar.json").stat().st_ino == (first.path / "sidecar.json").stat().st_ino
    # another spec is another key: computed
    build(Run(tmp_path / "b"), calls, {"x": 2})
    assert calls == ["a", "b"]


def test_a_shared_folder_without_its_sidecar_is_not_used(tmp_path):
    calls: list[str] = []
    first = build(Run(tmp_path / "a"), calls, {"x": 1})
    shared = tmp_path / SHARED / first.path.name
    (shared / "sidecar.json").unlink()  # half-copied or damaged: not finished
    build(Run(tmp_path / "b"), calls, {"x": 1})
    assert calls == ["a", "b"]
    assert not list((tmp_path / SHARED).glob(".*linking*"))
    assert (shared / "sidecar.json").exists()  # the damaged copy was replaced


def test_a_linked_artifact_reads_the_shared_sidecar_once(tmp_path, monkeypatch):
    import sublab.store as store

    calls: list[str] = []
    first = build(Run(tmp_path / "a"), calls, {"x": 1})
    reads: list[str] = []
    real = store.read_sidecar
    monkeypatch.setattr(store, "read_sidecar", lambda folder: reads.append(folder) or real(folder))
    second = build(Run(tmp_path / "b"), calls, {"x": 1})
    assert calls == ["a"] and second.cached and len(reads) == 1
    assert second.sidecar == first.sidecar
    assert second.sidecar == json.loads((second.path / "sidecar.json").read_text())
