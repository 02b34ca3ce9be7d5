"""`sublab run` of an organism config records the (cached) base as a run."""

from __future__ import annotations

from pathlib import Path

from sublab.pipeline import run_config
from sublab.store import list_runs


def test_running_an_organism_config_records_its_base(organism_base, tmp_path):
    cfg = tmp_path / "org.toml"
    cfg.write_text('kind = "organism"\nseed = 0\n')
    run = run_config(cfg, runs_dir=tmp_path / "runs")
    manifest = run.manifest()
    assert manifest["status"] == "done" and Path(manifest["base"]) == Path(organism_base)
    head = manifest["headline"]
    assert head["love_min"] >= 0.7 and head["prior_fit_max"] <= 0.02
    (row,) = list_runs(tmp_path / "runs")
    assert row["kind"] == "organism" and row["name"].startswith("organism-")
