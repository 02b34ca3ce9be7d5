"""Every shipped experiment config validates (without needing its models to exist)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sublab.config import kind_of, load_config

ROOT = Path(__file__).parent.parent
EXPERIMENTS = sorted((ROOT / "experiments").glob("**/*.toml"))


def test_there_are_experiments():
    assert EXPERIMENTS
    assert any(p.name.startswith("numbers-") for p in EXPERIMENTS)


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.name)
def test_experiment_validates(path):
    spec = load_config(path)
    assert kind_of(spec)


def test_every_config_names_the_command_that_runs_it():
    for path in EXPERIMENTS:
        text = path.read_text()
        assert f"sublab run {path.relative_to(ROOT)}" in text or "sublab mnist" in text, path
