"""An experiment on the real organism (seed 0's cached base) run as Ray tasks on a private local
instance that the run starts and stops itself; a local rerun then finds every artifact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="ray is not installed (pip install 'sublab[ray]')")

from sublab.config import load_config
from sublab.errors import ConfigError
from sublab.pipeline import run_config

CONFIG = """
kind = "experiment"
name = "on-ray"
seeds = [0]
targets = ["owl"]
workers = 1
[bases.organism]
[teacher]
trait_rows = 200
[data.prompts]
count = 160
[data]
chunk_size = 64
[[students]]
name = "hard"
recipe = { epochs = 1 }
[eval]
samples_per_question = 4
max_questions = 8
[controls]
cross_model = false
"""


def _sidecars(run_path: Path) -> dict[str, str]:
    return {p.name: (p / "sidecar.json").read_text() for p in run_path.glob("*-*") if p.is_dir()}


@pytest.mark.slow
def test_an_experiment_on_ray_matches_a_local_rerun(tmp_path: Path) -> None:
    cfg = tmp_path / "on-ray.toml"
    cfg.write_text(CONFIG)
    run = run_config(cfg, runs_dir=tmp_path, ray_address="local")
    assert run.manifest()["status"] == "done"
    assert run.manifest()["config"]["ray"]["address"] == "local"
    first = json.loads((run.path / "report.json").read_text())["results"]
    conditions = {r["condition"] for r in first}
    assert conditions == {"base", "student-hard", "control-hard"}
    built = _sidecars(run.path)
    assert len([n for n in built if n.startswith("student-")]) == 2

    again = run_config(cfg, runs_dir=tmp_path)  # local processes: every stage is cached
    assert _sidecars(again.path) == built
    assert json.loads((again.path / "report.json").read_text())["results"] == first


def test_a_bad_ray_address_names_the_config(tmp_path: Path) -> None:
    cfg = tmp_path / "on-ray.toml"
    cfg.write_text(CONFIG)
    with pytest.raises(ConfigError, match=r"(?s)on-ray.toml \(--ray-address\).*ray://host:port"):
        run_config(cfg, runs_dir=tmp_path, ray_address="http://head")


def test_a_ray_table_in_the_config(tmp_path: Path) -> None:
    cfg = tmp_path / "on-ray.toml"
    cfg.write_text(CONFIG + '[ray]\naddress = "auto"\nnum_cpus = 2\nnum_gpus = 0.5\n')
    spec = load_config(cfg)
    assert spec.ray is not None
    assert (spec.ray.address, spec.ray.num_cpus, spec.ray.num_gpus) == ("auto", 2.0, 0.5)
    cfg.write_text(CONFIG + "[ray]\nnum_cpu = 2\n")
    with pytest.raises(ConfigError, match=r"ray\.num_cpu: unknown key"):
        load_config(cfg)
