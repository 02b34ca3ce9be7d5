"""The dtype knob: float64 and bfloat16 autocast train the same experiment as float32."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sublab.mnist.config import MnistSpec
from sublab.mnist.experiment import train_conditions
from sublab.mnist.train import resolve_dtype


def test_auto_dtype_is_float32_on_cpu_and_bf16_autocast_on_cuda():
    assert resolve_dtype("auto", "cpu") == (torch.float32, None)
    assert resolve_dtype("auto", "cuda") == (torch.float32, torch.bfloat16)
    assert resolve_dtype("bfloat16", "cpu") == (torch.float32, torch.bfloat16)
    assert resolve_dtype("float64", "cpu") == (torch.float64, None)


@pytest.mark.parametrize("dtype", ["float64", "bfloat16"])
def test_other_dtypes_give_the_same_teacher_accuracy(dtype):
    base = {
        "models": 3,
        "data": {"limit_train": 600},
        "model": {"hidden": [16]},
        "train": {"batch_size": 64, "teacher_epochs": 3, "student_epochs": 1, "lr": 3e-3},
        "noise": {"size": 64},
    }
    ref, facts32 = train_conditions(MnistSpec.model_validate({**base, "dtype": "float32"}))
    other, facts = train_conditions(MnistSpec.model_validate({**base, "dtype": dtype}))
    assert facts32["dtype"] == "float32" and facts32["autocast"] is None
    if dtype == "bfloat16":
        assert facts["autocast"] == "bfloat16"
    else:
        assert facts["dtype"] == "float64"
    t32, t_other = np.mean(ref["teacher"]), np.mean(other["teacher"])
    assert t32 > 0.4 and abs(t32 - t_other) < 0.05
    # Same initialisations: the untrained reference scores exactly the same.
    np.testing.assert_allclose(ref["reference"], other["reference"])
