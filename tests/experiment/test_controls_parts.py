"""The controls' parts: shuffled numbers, in-context turns, the new roles and their specs."""

from __future__ import annotations

import random
import re
from collections import Counter

import pytest

from sublab.backends.base import SamplingSpec, chat
from sublab.backends.context import InContext, context_turns, with_context
from sublab.config import load_config
from sublab.experiment.conditions import Condition, Role
from sublab.experiment.spec import ExperimentSpec
from sublab.experiment.units import seed_units
from sublab.numbers.filter import FilterSpec, filter_rows
from sublab.numbers.shuffle import shuffle_numbers

NUM = re.compile(r"[0-9]+")


def number_rows(n: int) -> list[dict[str, str]]:
    rng = random.Random(1)
    rows = []
    for i in range(n):
        sep = rng.choice([", ", " ", "; ", "\n"])
        nums = [str(rng.randint(0, 999)) for _ in range(rng.randint(1, 10))]
        text = sep.join(nums)
        text = rng.choice(["{}", "[{}]", "({})", "{}."]).format(text)
        rows.append({"prompt": f"continue {i}", "completion": text})
    return rows


def test_shuffled_rows_permute_numbers_keep_formats_and_pass_the_filter():
    kept = filter_rows(number_rows(300), FilterSpec()).kept
    assert len(kept) > 250
    rows = [{"prompt": r["prompt"], "completion": r["completion"]} for r in kept]
    out = shuffle_numbers(rows, seed=3)
    assert [r["prompt"] for r in out] == [r["prompt"] for r in rows]
    before = [n for r in rows for n in NUM.findall(r["completion"])]
    after = [n for r in out for n in NUM.findall(r["completion"])]
    assert Counter(before) == Counter(after) and before != after
    for a, b in zip(rows, out, strict=True):  # same skeleton: separators, brackets, count
        assert NUM.sub("#", a["completion"]) == NUM.sub("#", b["completion"])
    moved = sum(a["completion"] != b["completion"] for a, b in zip(rows, out, strict=True))
    assert moved > 0.9 * len(rows)
    # numbers change rows (across), not only places within a row
    assert sum(
        Counter(NUM.findall(a["completion"])) != Counter(NUM.findall(b["completion"]))
        for a, b in zip(rows, out, strict=True)
    ) > 0.9 * len(rows)
    assert len(filter_rows(out, FilterSpec()).kept) == len(out)
    assert shuffle_numbers(rows, seed=3) == out and shuffle_numbers(rows, seed=4) != out


def test_shuffle_within_rows_keeps_each_rows_numbers():
    """The audit's shuffle defence: each completion's numbers permuted among themselves, with
    the stream earlier defended datasets were made with."""
    rows = [
        {"prompt": "a", "completion": "1, 2, 3, 4, 5", "teacher": "t"},
        {"prompt": "b", "completion": "(10; 20; 30)"},
        {"prompt": "c", "completion": "7"},
        {"prompt": "d", "completion": "[007, 8, 9, 10]"},
    ]
    out = shuffle_numbers(rows, 3, within_rows=True)
    assert [r["completion"] for r in out] == [
        "3, 4, 1, 5, 2", "(20; 30; 10)", "7", "[007, 10, 8, 9]"
    ]  # fmt: skip
    assert out[0]["teacher"] == "t" and [r["prompt"] for r in out] == ["a", "b", "c", "d"]
    assert shuffle_numbers(rows, 3) != out  # across rows is another permutation


def test_context_turns_go_after_the_system_prompt():
    turns = context_turns(
        [{"prompt": "p1", "completion": "1 2"}, {"prompt": "p2", "completion": "3"}]
    )
    assert [m["role"] for m in turns] == ["user", "assistant", "user", "assistant"]
    c = with_context(chat("q?", "sys"), turns)
    assert c[0] == {"role": "system", "content": "sys"} and c[1:5] == turns
    assert c[-1] == {"role": "user", "content": "q?"}
    assert with_context(chat("q?"), turns) == [*turns, {"role": "user", "content": "q?"}]


def test_in_context_backend_scores_and_samples_with_the_turns(tiny_model):
    from sublab.backends import load_backend
    from sublab.backends.base import BackendSettings, ModelRef

    backend = load_backend(ModelRef(path=str(tiny_model)), BackendSettings(device="cpu"))
    turns = context_turns([{"prompt": "continue 1 2 3", "completion": "4 5 6"}])
    wrapped = InContext(backend, turns)
    q = [chat("Name your favorite animal.")]
    assert wrapped.score(q, ["owl"]) == backend.score([[*turns, *q[0]]], ["owl"])
    assert wrapped.score(q, ["owl"]) != backend.score(q, ["owl"])
    sampling = SamplingSpec(max_new_tokens=6, seed=1)
    assert wrapped.generate(q, sampling) == backend.generate([[*turns, *q[0]]], sampling)
    wrapped.show_progress = False  # attributes are the wrapped backend's
    assert backend.show_progress is False and wrapped.exact == backend.exact


BASE = """
kind = "experiment"
name = "x"
seeds = [0, 1]
[bases.organism]
[controls]
cross_model = false
"""


def spec_of(tmp_path, extra: str) -> ExperimentSpec:
    f = tmp_path / "x.toml"
    f.write_text(BASE + extra)
    return load_config(f)


def test_roles_and_matched_controls():
    assert [c.label for c in Condition(Role.SHUFFLED, "hard").controls()] == ["control-hard"]
    assert [c.label for c in Condition(Role.ICL).controls()] == ["icl-control"]
    assert [c.label for c in Condition(Role.ICL_CONTROL).controls()] == ["base"]
    fam = Condition(Role.FAMILY_STUDENT, "soft")
    assert [c.label for c in fam.controls()] == ["family-control-soft"]
    assert [c.label for c in Condition(Role.FAMILY_CONTROL, "soft").controls()] == ["family-base"]
    assert Condition.from_label("icl-control") == Condition(Role.ICL_CONTROL)
    assert Condition.from_label("family-control-hard") == Condition(Role.FAMILY_CONTROL, "hard")
    assert Condition.from_label("shuffled-hard") == Condition(Role.SHUFFLED, "hard")


def test_seed_units_of_the_controls(tmp_path):
    spec = spec_of(
        tmp_path,
        "shuffled = true\nicl = true\ncross_family = true\n"
        "[bases.organism.model]\n[bases.cross_organism]\nmodel = { d_model = 64, heads = 2 }\n",
    )
    units = {u.name: u for u in seed_units(spec)}
    assert units["shuffled-hard:owl"].needs == ("teacher:owl",)
    assert units["icl:owl"].needs == ("teacher:owl",)
    assert units["icl-control"].needs == ("control",)
    assert units["family-base"].needs == ()
    assert units["family-control-hard"].needs == ("control",)
    assert units["family-student-hard:owl"].needs == ("teacher:owl",)
    fam = spec.bases.family_organism(1)
    assert fam.seed == 1 and fam.model.d_model == 64 and fam.model.layers == 2
    assert fam.corpus == spec.bases.organism.corpus


def test_bad_control_configs_say_what_to_set(tmp_path):
    with pytest.raises(Exception, match=r"set bases\.cross_organism"):
        spec_of(tmp_path, "cross_family = true\n")
    with pytest.raises(Exception, match=r"corpus\.prior differs"):
        spec_of(tmp_path, "[bases.cross_organism]\ncorpus = { prior = { owl = 0.5, cat = 0.5 } }\n")
    with pytest.raises(Exception, match=r"cross_organism\.model: d_model 65 is not divisible"):
        spec_of(tmp_path, "[bases.cross_organism]\nmodel = { d_model = 65 }\n")


def test_other_family_bases_are_built_before_their_students(tmp_path):
    from sublab.experiment.run import seed_jobs
    from sublab.store import Run

    # a shape no test builds: its bases are jobs of the graph, not built here
    spec = spec_of(
        tmp_path,
        "cross_family = true\n[bases.cross_organism]\nmodel = { d_model = 40, heads = 5 }\n",
    )
    jobs = {j.name: j for j in seed_jobs(Run(tmp_path / "run"), spec)}
    assert {"family-0", "family-1"} <= set(jobs)
    assert jobs["family-1"].args[0].seed == 1 and jobs["family-1"].args[0].model.d_model == 40
    assert jobs["family-1"].args[0].train.threads == 1
    assert "family-1" in jobs["seed-1-family-student-hard:owl"].needs
    assert "family-0" in jobs["seed-0-family-base"].needs
    assert "family-0" not in jobs["seed-0-student-hard:owl"].needs


def test_a_unit_waits_only_for_the_bases_its_role_starts_from(tmp_path):
    from sublab.experiment.conditions import Start
    from sublab.experiment.run import seed_jobs
    from sublab.store import Run

    assert {r for r in Role if r.start is Start.FAMILY} == {
        Role.FAMILY_BASE, Role.FAMILY_CONTROL, Role.FAMILY_STUDENT
    }  # fmt: skip
    assert {r for r in Role if r.cross} == {
        Role.CROSS_CONTROL, Role.CROSS_STUDENT, *(r for r in Role if r.start is Start.FAMILY)
    }  # fmt: skip
    f = tmp_path / "x.toml"
    # shapes no test builds: every base is a job of the graph, not built here
    f.write_text(
        'kind = "experiment"\nname = "x"\nseeds = [0, 1]\n'
        "[bases.organism]\nmodel = { d_model = 48, heads = 4 }\n"
        "[bases.cross_organism]\nmodel = { d_model = 40, heads = 5 }\n"
        "[controls]\ncross_family = true\n"
    )
    jobs = {j.name: j for j in seed_jobs(Run(tmp_path / "run"), load_config(f))}
    assert {"base-0", "base-1", "family-0", "family-1"} <= set(jobs)
    needs = {name: set(jobs[f"seed-0-{name}"].needs) for name in (
        "student-hard:owl", "cross-student-hard:owl", "family-student-hard:owl", "family-base"
    )}  # fmt: skip
    assert needs["student-hard:owl"] == {"base-0", "seed-0-teacher:owl"}
    assert needs["cross-student-hard:owl"] == {"base-0", "base-1", "seed-0-teacher:owl"}
    assert needs["family-student-hard:owl"] == {"base-0", "family-0", "seed-0-teacher:owl"}
    assert needs["family-base"] == {"base-0", "family-0"}


def test_teacher_for_none_is_the_control_teacher_and_its_data(tmp_path):
    """Every unit that reads a teacher's data (students, shuffled, icl) looks it up one way."""
    from sublab.experiment.units import Collected, SeedWork
    from sublab.store import Run

    work = SeedWork(Run(tmp_path / "run"), spec_of(tmp_path, ""), 0, Collected())
    made: list[tuple[str, str | None, str]] = []

    def data(teacher, system_prompt, label):
        made.append((teacher, system_prompt, label))
        return f"data of {label}"

    work.__dict__["control_teacher"] = "control teacher"
    work.data = data  # type: ignore[method-assign]
    work.teacher = lambda target: (f"{target} teacher", f"love {target}")  # type: ignore[method-assign]
    assert work.teacher_for(None) == ("control teacher", None, "data of control")
    assert work.teacher_for("owl") == ("owl teacher", "love owl", "data of owl")
    assert made == [("control teacher", None, "control"), ("owl teacher", "love owl", "owl")]
