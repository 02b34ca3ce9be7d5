"""The paper's controls end to end on the real organism (seed 0's cached base), and a
cross-family run that reuses the first run's artifacts through the runs folder's shared cache.

One new base is built here: the other family's tiny organism (one layer, d_model 64).
"""

from __future__ import annotations

import json
import math
import re

import pytest
import torch
from safetensors.torch import load_file

from sublab.backends.context import context_turns
from sublab.config import load_config
from sublab.jsonl import read_jsonl
from sublab.numbers.filter import filter_rows
from sublab.numbers.shuffle import shuffle_numbers
from sublab.organism.cache import organism_path
from sublab.organism.spec import DEFAULT_PRIOR, OrganismSpec
from sublab.pipeline import run_config
from sublab.report import ReportData, analyse
from sublab.store import SHARED, hash_obj

COMMON = """
kind = "experiment"
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
[eval]
samples_per_question = 4
max_questions = 8
"""

CONTROLS = (
    'name = "controls"\n'
    + COMMON
    + """
[[students]]
name = "sgd"
recipe = { epochs = 1, optimizer = "sgd", learning_rate = 0.05 }
[controls]
cross_model = false
shuffled = true
icl = true
all_targets = true
"""
)

FAMILY = (
    'name = "family"\n'
    + COMMON.replace("[bases.organism]\n", "")
    + """
[bases.organism]
[bases.cross_organism]
model = { d_model = 64, layers = 1, heads = 2, ffn = 128 }
train = { steps = 150 }
probe_prompts = 0
[controls]
cross_model = false
cross_family = true
"""
)


def sidecars(run, stage):
    return [
        json.loads((d / "sidecar.json").read_text()) | {"dir": d}
        for d in sorted(run.path.glob(f"{stage}-*"))
    ]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="module")
def controls(root):
    cfg = root / "controls.toml"
    cfg.write_text(CONTROLS)
    run = run_config(cfg, runs_dir=root)
    data = ReportData.model_validate_json((run.path / "report.json").read_text())
    return run, data, load_config(cfg)


@pytest.fixture(scope="module")
def family(root, controls):
    cfg = root / "family.toml"
    cfg.write_text(FAMILY)
    run = run_config(cfg, runs_dir=root)
    return run, ReportData.model_validate_json((run.path / "report.json").read_text())


def rows_by(data, metric="exact_prob", target="owl"):
    return {r.condition: r for r in analyse(data) if r.metric == metric and r.target == target}


def test_each_control_is_a_condition_paired_with_its_matched_control(controls):
    _, data, _ = controls
    rows = rows_by(data)
    assert set(rows) == {
        "base", "control-hard", "control-sgd", "student-hard", "student-sgd",
        "shuffled-hard", "shuffled-sgd", "icl-control", "icl",
    }  # fmt: skip
    expected = {
        "control-hard": "base",
        "control-sgd": "base",
        "student-sgd": "control-sgd",
        "shuffled-hard": "control-hard",
        "shuffled-sgd": "control-sgd",
        "icl-control": "base",
        "icl": "icl-control",
    }
    assert {c: rows[c].control for c in expected} == expected
    for r in rows.values():
        assert 0.0 <= r.summary.mean <= 1.0


def kept_data(run):
    """{filter key: kept rows} of every teacher's data (the owl teacher's and the control's)."""
    out = {}
    for d in sorted(run.path.glob("filter-*")):
        key = json.loads((d / "sidecar.json").read_text())["key"]
        out[key] = [
            {"prompt": r["prompt"], "completion": r["completion"]}
            for _, r in read_jsonl(d / "kept.jsonl")
        ]
    return out


def test_shuffled_students_learn_a_permutation_that_passes_the_filter(controls):
    run, _, spec = controls
    shuffled = [s for s in sidecars(run, "student") if s["spec"]["label"] == "shuffled-hard"]
    assert len(shuffled) == 1
    data_keys = kept_data(run)
    assert len(data_keys) == 2
    # the shuffled student's rows key names one teacher's kept data and the seed
    matches = [
        k for k in data_keys if hash_obj({"shuffled": k, "seed": 0}) == shuffled[0]["inputs"][1]
    ]
    assert len(matches) == 1
    rows = data_keys[matches[0]]
    out = shuffle_numbers(rows, 0)

    def numbers(rs):
        return sorted(n for r in rs for n in re.findall(r"[0-9]+", r["completion"]))

    assert numbers(out) == numbers(rows)
    assert out != rows and len(filter_rows(out, spec.data.filter).kept) == len(rows)


def test_icl_evaluations_hold_the_teachers_rows_in_context(controls):
    run, _, spec = controls
    contexts = [s["spec"]["context"] for s in sidecars(run, "eval") if "context" in s["spec"]]
    assert len(contexts) == 2  # icl (owl teacher) and icl-control (control teacher)
    expected = [context_turns(rows[:2]) for rows in kept_data(run).values()]
    for ctx in contexts:
        assert len(ctx) == 2 * spec.controls.icl_rows
        assert [m["role"] for m in ctx] == ["user", "assistant"] * 2
    assert sorted(json.dumps(c, sort_keys=True) for c in contexts) == sorted(
        json.dumps(c, sort_keys=True) for c in expected
    )


def test_sgd_student_moved_from_the_base(controls):
    run, _, _ = controls
    sgd = [s for s in sidecars(run, "student") if s["spec"]["label"] == "student-sgd"]
    assert len(sgd) == 1 and sgd[0]["spec"]["recipe"]["optimizer"] == "sgd"
    assert math.isfinite(sgd[0]["counts"]["final_loss"])
    trained = load_file(str(sgd[0]["dir"] / "model" / "model.safetensors"))
    base = load_file(str(organism_path(OrganismSpec(seed=0)) / "model.safetensors"))
    assert any(not torch.equal(trained[k], base[k]) for k in trained)
    hard = next(s for s in sidecars(run, "student") if s["spec"]["label"] == "student-hard")
    adamw = load_file(str(hard["dir"] / "model" / "model.safetensors"))
    assert any(not torch.equal(trained[k], adamw[k]) for k in trained)


def test_all_targets_measures_every_animal_and_reports_control_shifts(controls):
    run, data, _ = controls
    targets = {r.target for r in data.results if r.metric == "exact_prob"}
    assert {"owl", "bear", "dog", "cat"} <= targets and len(targets) >= 10
    assert targets <= set(DEFAULT_PRIOR)  # candidates the organism cannot spell are left out
    md = (run.path / "report.md").read_text()
    assert "## Control training alone (Figure 9)" in md
    section = md.split("## Control training alone (Figure 9)")[1].split("## ")[0]
    assert section.count("| control-hard |") == len(targets)


def test_family_run_reuses_shared_artifacts_and_pairs_family_conditions(controls, family):
    first, _, _ = controls
    run, data = family
    rows = rows_by(data)
    assert {"family-base", "family-control-hard", "family-student-hard"} <= set(rows)
    assert rows["family-control-hard"].control == "family-base"
    assert rows["family-student-hard"].control == "family-control-hard"
    assert rows["student-hard"].control == "control-hard"
    # the teacher, its data and the hard students come from the first run (same files)
    for stage in ("teacher", "generate", "filter"):
        mine = {s["key"]: s["dir"] for s in sidecars(run, stage)}
        theirs = {s["key"]: s["dir"] for s in sidecars(first, stage)}
        assert mine and set(mine) <= set(theirs)
        for key, d in mine.items():
            a, b = d / "sidecar.json", theirs[key] / "sidecar.json"
            assert a.stat().st_ino == b.stat().st_ino
    shared = {p.name for p in (run.path.parent / SHARED).iterdir() if not p.name.startswith(".")}
    assert {p.name for p in run.path.iterdir() if (p / "sidecar.json").exists()} <= shared
    # the family base is another shape
    students = [s for s in sidecars(run, "student") if s["spec"]["label"] == "family-student-hard"]
    cfg = json.loads((students[0]["dir"] / "model" / "config.json").read_text())
    assert (cfg["hidden_size"], cfg["num_hidden_layers"]) == (64, 1)
