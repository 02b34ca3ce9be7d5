"""The optimizer choice: SGD trains, and differs from AdamW; recipe keys stay stable."""

from __future__ import annotations

import pytest
import torch
from test_train_finetune import same_weights

from conftest import FAST
from sublab.store import hash_obj
from sublab.train.loop import finetune, make_optimizer
from sublab.train.recipe import StudentRecipe
from sublab.train.strength import mean_logprob


def test_sgd_recipe_trains_and_is_not_adamw(tiny_model, rows, trained_full, tmp_path):
    recipe = StudentRecipe(**{**FAST, "optimizer": "sgd", "momentum": 0.9, "learning_rate": 0.5})
    r = finetune(tiny_model, rows, recipe, tmp_path / "sgd")
    assert r.steps == trained_full.steps
    assert r.losses[-1] < r.losses[0] - 0.3
    assert mean_logprob(r.path, rows) > mean_logprob(tiny_model, rows) + 0.3
    assert not same_weights(r.path, trained_full.path)


def test_make_optimizer_builds_the_recipes_optimizer():
    params = [torch.nn.Parameter(torch.zeros(2, 2))]
    groups = [{"params": params, "weight_decay": 0.0}]
    sgd = make_optimizer(groups, StudentRecipe(optimizer="sgd", momentum=0.5))
    assert type(sgd) is torch.optim.SGD and sgd.param_groups[0]["momentum"] == 0.5
    assert type(make_optimizer(groups, StudentRecipe())) is torch.optim.AdamW


def test_default_optimizer_keeps_recipe_keys_and_sgd_changes_them():
    adamw = StudentRecipe()
    assert "optimizer" not in adamw.model_dump() and "momentum" not in adamw.model_dump()
    assert hash_obj(StudentRecipe(optimizer="adamw")) == hash_obj(adamw)
    sgd = StudentRecipe(optimizer="sgd")
    assert hash_obj(sgd) != hash_obj(adamw)
    assert StudentRecipe.model_validate(sgd.model_dump()) == sgd


def test_momentum_needs_sgd():
    with pytest.raises(ValueError, match="momentum is an SGD setting"):
        StudentRecipe(momentum=0.9)
