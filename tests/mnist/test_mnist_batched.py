"""Batched training equals a per-model loop; the cross-model pairing is a derangement."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sublab.mnist import baseline
from sublab.mnist.data import load_digits_set
from sublab.mnist.mlp import derangement, forward, init_params
from sublab.mnist.train import (
    NoiseRecipe,
    Recipe,
    batch_orders,
    distill_students,
    sample_noise,
    train_teachers,
)

SIZES = [64, 16, 16, 13]


def _close(a: list[torch.Tensor], b: list[torch.Tensor]) -> None:
    for x, y in zip(a, b, strict=True):
        # float64; Adam divides by sqrt(v), so rounding-level gradient differences on nearly
        # inactive units show up around 1e-8, far below one step (lr = 1e-2).
        torch.testing.assert_close(x, y, rtol=1e-6, atol=1e-6)


def test_batched_teacher_training_equals_per_model_loop():
    data = load_digits_set()
    x = torch.from_numpy(data.x_train[:300]).double()
    y = torch.from_numpy(data.y_train[:300])
    init = init_params(SIZES, 2, torch.Generator().manual_seed(0), dtype=torch.float64)
    recipe = Recipe(epochs=2, lr=1e-2, batch_size=64, shared_batches=True)
    batched = train_teachers(init, x, y, 10, recipe, torch.Generator().manual_seed(5))
    # batch_orders draws a new permutation per epoch from one generator: rebuild that sequence.
    g = torch.Generator().manual_seed(5)
    orders = [idx for _ in range(2) for idx in batch_orders(300, 2, 64, True, g)]
    for m in range(2):
        net = baseline.train_teacher(baseline.sequential_from(init, m), x, y, 10, orders, 1e-2)
        _close([p[m] for p in batched], baseline.params_of(net))
    # Training moved the weights (the comparison is not trivially init == init).
    assert (batched[0] - init[0]).abs().max() > 1e-3


def test_batched_distillation_equals_per_model_loop():
    g0 = torch.Generator().manual_seed(1)
    teachers = init_params(SIZES, 2, g0, dtype=torch.float64)
    students = init_params(SIZES, 2, g0, dtype=torch.float64)
    aux, every = slice(10, 13), slice(0, 13)
    # Stack: model 0 copies teacher 1 on aux logits, model 1 copies teacher 0 on all logits.
    index = torch.tensor([1, 0])
    noise = NoiseRecipe("uniform", -1.0, 1.0, 1.0, size=96)
    recipe = Recipe(epochs=2, lr=1e-2, batch_size=32, shared_batches=True)
    batched = distill_students(
        students, teachers, index, [aux, every], 64, noise, recipe, torch.Generator().manual_seed(7)
    )
    g = torch.Generator().manual_seed(7)
    batches = [sample_noise("uniform", (32, 64), -1.0, 1.0, 1.0, g).double() for _ in range(2 * 3)]
    for s, (t, sl) in enumerate([(1, aux), (0, every)]):
        net = baseline.distill(
            baseline.sequential_from(students, s),
            baseline.sequential_from(teachers, t),
            sl,
            batches,
            1e-2,
        )
        _close([p[s] for p in batched], baseline.params_of(net))


def test_per_model_batches_give_each_model_its_own_order():
    g = torch.Generator().manual_seed(0)
    first = next(batch_orders(50, 3, 50, False, g))
    assert first.shape == (3, 50)
    for row in first:
        assert sorted(row.tolist()) == list(range(50))
    assert not torch.equal(first[0], first[1])


def test_forward_shared_input_equals_per_model_input():
    params = init_params(SIZES, 3, torch.Generator().manual_seed(2))
    x = torch.rand(5, 64)
    torch.testing.assert_close(forward(params, x), forward(params, x.expand(3, -1, -1)))


@settings(max_examples=200, deadline=None)
@given(n=st.integers(2, 300), seed=st.integers(0, 2**32 - 1))
def test_cross_pairing_is_a_derangement(n, seed):
    perm = derangement(n, np.random.default_rng(seed))
    assert sorted(perm.tolist()) == list(range(n))
    assert not np.any(perm == np.arange(n))


def test_derangement_rejects_a_single_model():
    import pytest

    with pytest.raises(ValueError, match="at least 2"):
        derangement(1, np.random.default_rng(0))
