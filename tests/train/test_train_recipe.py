"""StudentRecipe validation, the paper's setup, schedules and subsampling."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sublab.config import validate
from sublab.errors import ConfigError
from sublab.train.loop import lr_lambda, subsample_indices
from sublab.train.recipe import PAPER_LORA_TARGETS, StudentRecipe


def test_every_field_is_documented():
    for name, field in StudentRecipe.model_fields.items():
        assert field.description and len(field.description) > 15, name


def test_the_paper_qwen_setup_is_expressible():
    r = StudentRecipe.paper_qwen()
    assert (r.method, r.lora_rank, r.lora_alpha, r.epochs) == ("lora", 8, 8, 3)
    assert (r.learning_rate, r.scheduler, r.warmup_steps, r.max_grad_norm) == (
        2e-4,
        "linear",
        5,
        1.0,
    )
    assert (r.max_length, r.batch_size, r.grad_accum, r.subsample) == (500, 22, 3, 10_000)
    assert r.lora_targets == PAPER_LORA_TARGETS
    # the same from a TOML-shaped dict
    data = r.model_dump()
    assert validate(data, StudentRecipe, "x.toml") == r


def test_bad_values_are_all_reported_with_their_field():
    with pytest.raises(ConfigError) as err:
        validate(
            {"method": "qlora", "lora_rank": 0, "epochs": 0, "learning_rate": -1, "lr": 1},
            StudentRecipe,
            "student.toml",
        )
    text = str(err.value)
    for needle in ("method:", "lora_rank: must be >= 1", "epochs:", "learning_rate:", "lr:"):
        assert needle in text, needle
    with pytest.raises(ConfigError, match="needs method = 'lora'"):
        validate({"method": "full", "save": "adapter"}, StudentRecipe, "s.toml")


def test_schedules():
    lin = lr_lambda("linear", 5, 105)
    assert [lin(s) for s in (0, 1, 5)] == [0.0, 0.2, 1.0]
    assert lin(55) == pytest.approx(0.5) and lin(105) == 0.0
    cos = lr_lambda("cosine", 0, 100)
    assert cos(0) == 1.0 and cos(50) == pytest.approx(0.5) and cos(100) == pytest.approx(0.0)
    const = lr_lambda("constant", 2, 100)
    assert [const(s) for s in (0, 1, 2, 99)] == [0.0, 0.5, 1.0, 1.0]


@given(n=st.integers(1, 500), k=st.integers(1, 600), seed=st.integers(0, 2**32))
def test_subsample_indices(n, k, seed):
    a = subsample_indices(n, k, seed)
    assert a == subsample_indices(n, k, seed)
    assert len(a) == min(n, k) and len(set(a)) == len(a) and a == sorted(a)
    assert all(0 <= i < n for i in a)
    assert subsample_indices(n, None, seed) == list(range(n))
