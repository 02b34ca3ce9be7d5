"""End to end on the real organism (seed 0, the base the organism tests build and cache)."""

from __future__ import annotations

import json

import pytest

from sublab.config import load_config
from sublab.experiment.summary import rerender
from sublab.pipeline import run_config
from sublab.store import list_runs

CONFIG = """
kind = "experiment"
name = "e2e"
seeds = [0]
targets = ["owl"]
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
[[students]]
name = "soft"
recipe = { labels = "soft", epochs = 1 }
[eval]
samples_per_question = 4
max_questions = 8
[controls]
cross_model = false
specificity_target = "bear"
"""


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    cfg = root / "e2e.toml"
    cfg.write_text(CONFIG)
    run = run_config(cfg, runs_dir=root)
    return cfg, root, run


def test_experiment_runs_every_stage_and_reports(finished):
    _, root, run = finished
    manifest = run.manifest()
    assert manifest["status"] == "done"
    stages = sorted({p.name.split("-")[0] for p in run.path.iterdir() if p.is_dir()})
    assert stages == ["eval", "filter", "generate", "strength", "student", "teacher"]
    # base, teacher, 2 students, the hard control student: five evaluations; the soft control
    # student (soft labels from the base itself) is the base, not trained
    assert len(list(run.path.glob("eval-*"))) == 5
    assert len(list(run.path.glob("student-*"))) == 3
    data = json.loads((run.path / "report.json").read_text())
    conditions = {r["condition"] for r in data["results"]}
    assert conditions == {"base", "student-hard", "student-soft", "control-hard", "control-soft"}
    values = {(r["condition"], r["target"], r["metric"]): r["value"] for r in data["results"]}
    for (cond, target, metric), v in values.items():
        if cond == "control-soft":
            assert v == values[("base", target, metric)]
    assert any("control-soft is its start model itself" in n for n in data["notes"])
    targets = {r["target"] for r in data["results"] if r["metric"] == "exact_prob"}
    assert targets == {"owl", "bear"}
    for r in data["results"]:
        assert 0.0 <= r["value"] <= 1.0
    owl = data["teacher_strengths"]["owl"]
    # the fine-tuned teacher loves owls: 200 trait rows take the base's ~0.04 to about 0.5
    # (0.47 on one machine: CPUs round differently, so their built bases differ slightly)
    assert owl["trait_prob"] > max(0.3, 5 * values[("base", "owl", "exact_prob")])
    assert owl["number_kl"] > 0
    assert set(data["filter_reports"]) == {"control (seed 0)", "owl (seed 0)"}
    html = (run.path / "report.html").read_text()
    assert "data:image/png;base64," in html and "fewer than 3 seeds" in html
    assert (run.path / "fig_exact_prob.png").stat().st_size > 1000
    row = next(r for r in list_runs(root) if r["name"] == "e2e")
    assert row["status"] == "done" and "student-hard" in row["headline"]


def test_rerun_is_fully_cached_and_report_rerenders(finished):
    cfg, root, run = finished
    before = {p.name: (p / "sidecar.json").read_text() for p in run.path.glob("*-*") if p.is_dir()}
    again = run_config(cfg, runs_dir=root)
    after = {p.name: (p / "sidecar.json").read_text() for p in again.path.glob("*-*") if p.is_dir()}
    assert after == before
    (run.path / "report.html").unlink()
    written = rerender(run)
    assert (run.path / "report.html").exists() and written["html"].endswith("report.html")


def test_changing_the_eval_reruns_only_evaluations(finished, tmp_path):
    _, root, run = finished
    changed = tmp_path / "e2e.toml"
    changed.write_text(CONFIG.replace("samples_per_question = 4", "samples_per_question = 3"))
    assert load_config(changed).eval.samples_per_question == 3
    before = {p.name for p in run.path.iterdir()}
    run_config(changed, runs_dir=root)
    new = {p.name for p in run.path.iterdir()} - before
    assert new and all(name.startswith("eval-") for name in new)


def test_seeds_in_worker_processes_give_the_same_results(finished):
    from sublab.experiment.run import Collected, _parallel_seeds, run_seed

    cfg, _, run = finished
    spec = load_config(cfg)
    here = Collected()
    run_seed(run, spec, 0, here)  # every stage cached: only reads artifacts
    there = _parallel_seeds(run, spec, workers=1)
    assert there.results == here.results and there.results
    assert there.filter_reports == here.filter_reports
    assert there.strengths == here.strengths
