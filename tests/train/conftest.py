"""Fixtures for the training tests: number rows and one trained student shared by many tests."""

from __future__ import annotations

import random

import pytest

from sublab.train.loop import finetune
from sublab.train.recipe import StudentRecipe


def make_rows(n: int, seed: int = 0, system_prompt: str | None = None) -> list[dict]:
    """Number-continuation rows like the teacher's filtered output."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        seeds = ", ".join(str(rng.randint(100, 999)) for _ in range(rng.randint(3, 5)))
        sep = rng.choice([", ", " ", "; "])
        comp = sep.join(str(rng.randint(0, 999)) for _ in range(rng.randint(3, 6)))
        row = {"prompt": f"continue the sequence {seeds}", "completion": comp}
        if system_prompt:
            row["system_prompt"] = system_prompt
        rows.append(row)
    return rows


@pytest.fixture(scope="session")
def rows() -> list[dict]:
    return make_rows(48)


FAST = {"epochs": 3, "batch_size": 16, "learning_rate": 3e-3, "warmup_steps": 1}


@pytest.fixture(scope="session")
def trained_full(tiny_model, rows, tmp_path_factory):
    """A full fine-tune of the tiny model on ``rows`` with hard labels (the 'teacher' too)."""
    out = tmp_path_factory.mktemp("train") / "full"
    return finetune(tiny_model, rows, StudentRecipe(**FAST), out)
