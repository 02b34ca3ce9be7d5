"""The dose axis: checkpoints saved during one training run equal separate shorter runs."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from sublab.errors import SublabError
from sublab.train.loop import CHECKPOINTS, checkpoint_steps, finetune
from sublab.train.recipe import StudentRecipe

LORA = {"method": "lora", "save": "adapter", "epochs": 1, "batch_size": 8}
LORA |= {"learning_rate": 3e-3, "warmup_steps": 0, "scheduler": "constant"}


def adapter(folder):
    return load_file(folder / "adapter_model.safetensors")


def test_lora_checkpoints_hold_the_adapter_as_it_was_at_that_step(tiny_model, rows, tmp_path):
    res = finetune(tiny_model, rows, StudentRecipe(**LORA, checkpoints=[2, 6]), tmp_path / "dosed")
    assert res.steps == 6  # 48 rows / 8
    assert checkpoint_steps(res.path) == [2, 6]
    info = json.loads((res.path / "train.json").read_text())
    assert info["checkpoints"] == [2, 6]
    early = adapter(res.path / CHECKPOINTS / "step-2")
    last = adapter(res.path / CHECKPOINTS / "step-6")
    final = adapter(res.path)
    assert early.keys() == final.keys() == last.keys()
    assert all(torch.equal(last[k], final[k]) for k in final)  # the last step is the model
    assert all(not torch.equal(early[k], final[k]) for k in final if "lora_B" in k)
    plain = finetune(tiny_model, rows, StudentRecipe(**LORA), tmp_path / "plain")
    assert all(torch.equal(adapter(plain.path)[k], final[k]) for k in final)  # no side effect


def test_checkpoints_beyond_the_run_are_refused_before_training(tiny_model, rows, tmp_path):
    with pytest.raises(SublabError, match="step 99 is beyond this run's 6 optimizer steps"):
        finetune(tiny_model, rows, StudentRecipe(**LORA, checkpoints=[99]), tmp_path / "x")
    assert not (tmp_path / "x").exists()
    assert not list(tmp_path.glob(".x.checkpoints-*"))


def test_checkpoint_steps_must_increase():
    with pytest.raises(ValueError, match="steps must increase"):
        StudentRecipe(checkpoints=[4, 4])
    with pytest.raises(ValueError, match="start at 1"):
        StudentRecipe(checkpoints=[0, 2])
    assert "checkpoints" not in StudentRecipe().model_dump()  # old keys stay valid
