"""Typed conditions: labels, matched controls, report order, and the units a spec makes."""

from __future__ import annotations

from pathlib import Path

import pytest

from sublab.config import load_config
from sublab.experiment.conditions import Condition, Role
from sublab.experiment.units import UNIT_FUNCTIONS, seed_units

DEMO = Path(__file__).parents[2] / "experiments" / "demo-owl.toml"


def test_labels_and_matched_controls():
    hard = Condition(Role.STUDENT, "hard")
    assert hard.label == "student-hard" and not hard.is_control
    assert [c.label for c in hard.controls()] == ["control-hard"]
    cross = Condition(Role.CROSS_STUDENT, "soft")
    assert [c.label for c in cross.controls()] == ["cross-control-soft", "control-soft"]
    assert [c.label for c in Condition(Role.CONTROL, "hard").controls()] == ["base"]
    assert Condition(Role.BASE).controls() == [] and Condition(Role.BASE).is_control
    with pytest.raises(ValueError, match="has no student recipe"):
        Condition(Role.BASE, "hard")


def test_labels_round_trip_and_unknown_labels_have_no_role():
    for role in Role:
        c = Condition(role, "hard" if role.per_student else None)
        assert Condition.from_label(c.label) == c
    assert Condition.from_label("cross-control-a-b") == Condition(Role.CROSS_CONTROL, "a-b")
    assert Condition.from_label("teacher") is None


def test_report_order_follows_the_roles_then_the_recipe():
    conds = [
        Condition(Role.CROSS_STUDENT, "hard"),
        Condition(Role.STUDENT, "soft"),
        Condition(Role.BASE),
        Condition(Role.STUDENT, "hard"),
        Condition(Role.CONTROL, "hard"),
    ]
    ordered = [c.label for c in sorted(conds, key=Condition.rank)]
    assert ordered == ["base", "control-hard", "student-hard", "student-soft", "cross-student-hard"]


def test_every_role_has_a_unit_function_and_its_switches_exist():
    spec = load_config(DEMO)
    for role in Role:
        assert role in UNIT_FUNCTIONS
        for switch in role.switches:
            assert hasattr(spec.controls, switch)
        for label in role.controls:
            Role(label)  # a control names a role that exists


def test_units_follow_the_controls_switches():
    demo = load_config(DEMO)
    hard = demo.students[0].model_copy(update={"cross_model": True})
    spec = demo.model_copy(
        update={
            "students": [hard, *demo.students[1:]],
            "controls": demo.controls.model_copy(update={"cross_model": True}),
        }
    )
    names = [u.name for u in seed_units(spec)]
    assert names == [
        "control",
        "teacher:owl",
        "base",
        "control-hard",
        "control-soft",
        "student-hard:owl",
        "student-soft:owl",
        "cross-control-hard",
        "cross-student-hard:owl",
    ]
    no_cross = spec.model_copy(
        update={"controls": spec.controls.model_copy(update={"cross_model": False})}
    )
    assert not [u for u in seed_units(no_cross) if u.condition and u.condition.role.cross]
    no_control = spec.model_copy(
        update={"controls": spec.controls.model_copy(update={"control_teacher": False})}
    )
    left = [u.name for u in seed_units(no_control)]
    assert "control" not in left and "control-hard" not in left and "cross-control-hard" not in left
    assert "cross-student-hard:owl" in left
