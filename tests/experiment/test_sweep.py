"""Sweeps: axes expand into experiments whose job graphs merge into one."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from sublab.config import load_config
from sublab.errors import ConfigError
from sublab.experiment.run import seed_jobs
from sublab.experiment.schedule import Job, run_jobs
from sublab.experiment.sweep import SweepSpec, expand_sweep, merge_graphs, sweep_points
from sublab.store import Run

BASE = {"bases": {"organism": {}}, "seeds": [0, 1], "students": [{"name": "hard"}]}


def test_axes_expand_to_every_combination_first_axis_slowest() -> None:
    base = copy.deepcopy(BASE)
    points = expand_sweep(
        "sw",
        base,
        {
            "targets": ["owl", "eagle"],
            "seeds": [[0, 1], [2, 3]],
            "data.filter.max_count": [8],
        },
    )
    assert [p["name"] for p in points] == [
        "sw-owl-0_1-8",
        "sw-owl-2_3-8",
        "sw-eagle-0_1-8",
        "sw-eagle-2_3-8",
    ]
    # a plain value of a list field is a one-element list; a list value is the list
    assert [(p["targets"], p["seeds"]) for p in points] == [
        (["owl"], [0, 1]),
        (["owl"], [2, 3]),
        (["eagle"], [0, 1]),
        (["eagle"], [2, 3]),
    ]
    assert all(p["data"] == {"filter": {"max_count": 8}} for p in points)
    assert base == BASE, "the base experiment was changed"


def test_student_values_are_named_by_their_name() -> None:
    students = [{"name": "hard"}, {"name": "soft", "recipe": {"labels": "soft"}}]
    points = expand_sweep("sw", BASE, {"students": students})
    assert [p["name"] for p in points] == ["sw-hard", "sw-soft"]
    assert points[1]["students"] == [students[1]]


def test_list_values_name_their_points_and_an_empty_list_is_none() -> None:
    axis = {"data.filter.banned_lists": [["paper-negative"], []]}
    points = expand_sweep("sw", BASE, axis)
    assert [p["name"] for p in points] == ["sw-paper-negative", "sw-none"]
    assert [p["data"]["filter"]["banned_lists"] for p in points] == [["paper-negative"], []]


def test_an_axis_can_reach_into_a_list_item() -> None:
    base = {**BASE, "students": [{"name": "hard"}, {"name": "soft"}]}
    points = expand_sweep("sw", base, {"students.1.recipe.learning_rate": [1e-4, 1e-3]})
    assert [p["name"] for p in points] == ["sw-0.0001", "sw-0.001"]
    assert [p["students"] for p in points] == [
        [{"name": "hard"}, {"name": "soft", "recipe": {"learning_rate": 1e-4}}],
        [{"name": "hard"}, {"name": "soft", "recipe": {"learning_rate": 1e-3}}],
    ]
    with pytest.raises(ValueError, match=r"no item students\.2"):
        expand_sweep("sw", base, {"students.2.recipe.learning_rate": [1e-4]})


def test_the_shipped_sweep_expands_to_six_experiments() -> None:
    path = Path(__file__).parents[2] / "experiments" / "sweep-animals.toml"
    sweep = load_config(path)
    assert isinstance(sweep, SweepSpec)
    points = sweep_points(sweep, path)
    assert [(p.targets, p.students[0].recipe.learning_rate) for p in points] == [
        ([t], lr) for t in ("owl", "eagle", "dolphin") for lr in (3e-4, 1e-3)
    ]
    assert len({p.name for p in points}) == 6


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"axes": {"teachers": ["x"]}}, "axes.teachers: no such experiment field"),
        ({"axes": {"targets": []}}, "axes.targets: give at least one value"),
        ({"axes": {"ray.num_cpus": [1, 2]}}, "axes.ray.num_cpus: a sweep-level field"),
        ({"experiment": {**BASE, "name": "x"}}, "experiment.name: set it on the sweep"),
        ({"axes": {"seeds": [[0]]}}, "point sw-0.*controls.cross_model"),
    ],
)
def test_bad_sweeps_are_refused_naming_the_field(tmp_path: Path, data: dict, message: str) -> None:
    import tomllib

    raw = {"kind": "sweep", "name": "sw", "experiment": BASE, "axes": {"targets": ["owl"]}}
    raw.update(data)
    cfg = tmp_path / "sw.toml"
    cfg.write_text(_toml(raw))
    assert tomllib.loads(cfg.read_text())["name"] == "sw"
    with pytest.raises(ConfigError, match=f"(?s){message}"):
        sweep = load_config(cfg)
        assert isinstance(sweep, SweepSpec)
        sweep_points(sweep, cfg)


def _toml(data: dict) -> str:
    """Just enough TOML for these sweeps: inline tables and arrays via JSON syntax."""

    def value(v: object) -> str:
        if isinstance(v, dict):
            return "{" + ", ".join(f"{json.dumps(k)} = {value(x)}" for k, x in v.items()) + "}"
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return json.dumps(v)

    return "".join(f"{k} = {value(v)}\n" for k, v in data.items())


def test_merged_graph_runs_shared_work_once_and_same_named_units_in_turn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUBLAB_CACHE_DIR", str(tmp_path / "cache"))  # no base is built yet
    raw = {"name": "sw", "experiment": BASE, "axes": {"targets": ["owl", "eagle", "dolphin"]}}
    sweep = SweepSpec.model_validate(raw)
    points = sweep_points(sweep, "sw.toml")
    run = Run(tmp_path / "sw")
    graphs = [(p.name, seed_jobs(run, p)) for p in points]
    jobs, names = merge_graphs(graphs)

    by_name = {j.name: j for j in jobs}
    assert len(by_name) == len(jobs), "a job name repeats"
    # the two base builds are the same work in every point: once each
    assert [j.name for j in jobs if j.fn is graphs[0][1][0].fn] == ["base-0", "base-1"]
    controls = ["control", "base", "control-hard", "cross-control-hard"]
    per_point = 2 * 3 * (len(controls) + 3)  # seeds x (control units + teacher and students)
    assert len(graphs[0][1]) == 2 + per_point // 3
    assert len(jobs) == 2 + per_point
    for seed in (0, 1):
        for unit in controls:
            first = f"seed-{seed}-{unit}"
            second, third = (f"sw-{t}/{first}" for t in ("eagle", "dolphin"))
            assert first in by_name and second in by_name and third in by_name
            # one after the other: the shared artifacts are built once, never concurrently
            assert first in by_name[second].needs and second in by_name[third].needs
        for target in ("owl", "eagle", "dolphin"):
            for unit in (f"teacher:{target}", f"student-hard:{target}"):
                assert f"seed-{seed}-{unit}" in by_name
    # every point's jobs map to merged jobs that do that point's work
    for point, (_, local_jobs) in zip(points, graphs, strict=True):
        for job in local_jobs:
            merged = by_name[names[point.name][job.name]]
            assert merged.args == job.args
    # data units of every point come before any student
    first_student = min(i for i, j in enumerate(jobs) if "student" in j.name)
    assert all("teacher:" in j.name or j.name.startswith("base-") for j in jobs[:6])
    assert all("teacher:" not in j.name for j in jobs[first_student + 6 :])


def test_identical_jobs_merge_and_the_merged_graph_runs(tmp_path: Path) -> None:
    f = tmp_path / "shared.txt"
    write = Job("write", Path.write_text, (f, "shared"))
    a = [write, Job("read", Path.read_text, (f,), ("write",))]
    b = [Job("write", Path.write_text, (f, "shared")), Job("n", len, ("xyz",), ("write",))]
    jobs, names = merge_graphs([("a", a), ("b", b)])
    assert [j.name for j in jobs] == ["write", "read", "n"]
    assert names == {"a": {"write": "write", "read": "read"}, "b": {"write": "write", "n": "n"}}
    assert run_jobs(jobs, workers=2) == {"write": 6, "read": "shared", "n": 3}


SWEEP = """
kind = "sweep"
name = "sw"
workers = 2
[axes]
targets = ["owl", "eagle"]
[experiment]
seeds = [0]
bases.organism = {}
teacher.trait_rows = 200
data.prompts.count = 160
data.chunk_size = 64
students = [{ name = "hard", recipe = { epochs = 1 } }]
eval = { samples_per_question = 4, max_questions = 8 }
controls = { control_teacher = false, cross_model = false, specificity_target = "bear" }
"""


@pytest.mark.slow
def test_a_sweep_runs_its_points_as_one_graph_and_reports_each(tmp_path: Path) -> None:
    from sublab.pipeline import run_config

    cfg = tmp_path / "sw.toml"
    cfg.write_text(SWEEP)
    run = run_config(cfg, runs_dir=tmp_path)
    assert run.manifest()["status"] == "done"
    assert run.manifest()["points"] == ["sw-eagle", "sw-owl"]
    # the base's evaluation is shared by both points: built once; a teacher, its evaluation and
    # a student per point
    assert len(list(run.path.glob("eval-*"))) == 1 + 2 + 2
    assert len(list(run.path.glob("teacher-*"))) == 2
    assert len(list(run.path.glob("student-*"))) == 2
    reports = {}
    for point, target in (("sw-owl", "owl"), ("sw-eagle", "eagle")):
        point_run = Run(tmp_path / point)
        assert point_run.manifest()["status"] == "done"
        assert point_run.manifest()["config"]["targets"] == [target]
        data = json.loads((point_run.path / "report.json").read_text())
        assert {r["condition"] for r in data["results"]} == {"base", "student-hard"}
        assert set(data["teacher_strengths"]) == {target}
        reports[target] = data["results"]
    base = [
        {(r["target"], r["metric"]): r["value"] for r in rows if r["condition"] == "base"}
        for rows in reports.values()
    ]
    assert base[0][("bear", "exact_prob")] == base[1][("bear", "exact_prob")]
