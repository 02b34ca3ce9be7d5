"""Every shipped experiment config validates (without needing its models to exist)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sublab.config import kind_of, load_config

EXPERIMENTS = sorted((Path(__file__).parent.parent / "experiments").glob("*.toml"))


def test_there_are_experiments():
    assert EXPERIMENTS
    assert any(p.name.startswith("numbers-") for p in EXPERIMENTS)


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.name)
def test_experiment_validates(path):
    spec = load_config(path)
    assert kind_of(spec)
