"""The optimised training step equals the per-model reference in float32, model by model.

Reference: one ``nn.Sequential`` and one ``torch.optim.Adam`` per model (``baseline.py``), fed
exactly the batches the batched code drew. Checked for teachers and for students imitating the
auxiliary logits only and all logits, with shared and with independent batches.
"""

from __future__ import annotations

import pytest
import torch

from sublab.mnist import baseline
from sublab.mnist.data import load_digits_set
from sublab.mnist.mlp import init_params
from sublab.mnist.stack import BatchedAdam, MlpStack, shared_input_groups
from sublab.mnist.train import (
    NoiseRecipe,
    Recipe,
    batch_orders,
    distill_students,
    sample_noise,
    student_layout,
    train_teachers,
)

SIZES = [64, 32, 32, 13]
AUX, EVERY = slice(10, 13), slice(0, 13)
LR = 1e-3
# float32: the batched products sum in another order than nn.Linear, ~1e-7 relative per step;
# Adam divides by sqrt(v), so a weight whose gradients are near zero can carry that rounding up
# to ~1e-5 after a few steps (seen on a 16-core x86 CPU with other GEMM kernels than this one).
TOL = {"rtol": 1e-4, "atol": 5e-5}


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _assert_model_equal(batched: list[torch.Tensor], model: int, net: torch.nn.Sequential) -> None:
    for got, want in zip([p[model] for p in batched], baseline.params_of(net), strict=True):
        torch.testing.assert_close(got, want, **TOL)


@pytest.mark.parametrize(
    ("shared", "sizes", "dtype"),
    [
        (True, SIZES, torch.float32),
        (False, SIZES, torch.float32),
        # 512 wide: 3 input groups reading one batch. float64, because over 10 Adam steps a
        # float32 rounding difference on a near-zero gradient grew to 2e-5 on one weight of 32k.
        (True, [64, 512, 32, 13], torch.float64),
    ],
)
def test_teacher_steps_equal_per_model_reference(
    shared: bool, sizes: list[int], dtype: torch.dtype
) -> None:
    data = load_digits_set()
    x = torch.from_numpy(data.x_train[:320]).to(dtype)
    y = torch.from_numpy(data.y_train[:320])
    init = init_params(sizes, 3, torch.Generator().manual_seed(0), dtype=dtype)
    recipe = Recipe(epochs=2, lr=LR, batch_size=64, shared_batches=shared)
    batched = train_teachers(init, x, y, 10, recipe, torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    orders = [idx for _ in range(2) for idx in batch_orders(320, 3, 64, shared, g)]
    for m in range(3):
        batches = orders if shared else [idx[m] for idx in orders]
        net = baseline.train_teacher(baseline.sequential_from(init, m), x, y, 10, batches, LR)
        _assert_model_equal(batched, m, net)
    # 10 Adam steps of 1e-3 moved the weights far more than the tolerance.
    assert (batched[0] - init[0]).abs().max() > 5e-3


@pytest.mark.parametrize("shared", [True, False])
def test_student_steps_equal_per_model_reference(shared: bool) -> None:
    g0 = torch.Generator().manual_seed(1)
    teachers = init_params(SIZES, 3, g0)
    students = init_params(SIZES, 6, g0)
    # Aux-only and all-logits students, of teachers 2, 0, 1 (each teacher twice), interleaved
    # so that the independent-noise layout has to reorder the stack.
    index = torch.tensor([2, 0, 1, 0, 1, 2])
    slices = [AUX, EVERY, AUX, AUX, EVERY, EVERY]
    noise = NoiseRecipe("uniform", -1.0, 1.0, 1.0, size=96)
    recipe = Recipe(epochs=2, lr=LR, batch_size=32, shared_batches=shared)
    batched = distill_students(
        students, teachers, index, slices, 64, noise, recipe, torch.Generator().manual_seed(7)
    )
    g = torch.Generator().manual_seed(7)
    shape = (32, 64) if shared else (3, 32, 64)
    draws = [sample_noise("uniform", shape, -1.0, 1.0, 1.0, g) for _ in range(2 * 3)]
    for s in range(6):
        t = int(index[s])
        batches = draws if shared else [d[t] for d in draws]
        net = baseline.distill(
            baseline.sequential_from(students, s),
            baseline.sequential_from(teachers, t),
            slices[s],
            batches,
            LR,
        )
        _assert_model_equal(batched, s, net)
    assert (batched[0] - students[0]).abs().max() > 1e-3


@pytest.mark.parametrize(
    ("models", "width", "groups"), [(100, 256, 25), (80, 256, 20), (7, 256, 7), (3, 32, 1)]
)
def test_shared_input_groups_are_about_1024_columns_wide(
    models: int, width: int, groups: int
) -> None:
    assert shared_input_groups(models, width) == groups


def test_uneven_students_per_teacher_fall_back_to_one_group_per_student() -> None:
    index = torch.tensor([0, 0, 1])
    uneven = student_layout(index, 2, shared=False)
    assert uneven.groups == 3 and uneven.gather and uneven.order.tolist() == [0, 1, 2]
    even = student_layout(torch.tensor([1, 0, 0, 1]), 2, shared=False)
    # Internal student k * 2 + g is the k-th student of teacher g.
    assert even.groups == 2 and not even.gather and even.order.tolist() == [1, 0, 2, 3]
    assert student_layout(index, 2, shared=True, width=256).groups == 1  # 3 x 256 <= 1024
    assert student_layout(index, 2, shared=True, width=512).groups == 3
    g0 = torch.Generator().manual_seed(3)
    teachers, students = init_params(SIZES, 2, g0), init_params(SIZES, 3, g0)
    noise = NoiseRecipe("uniform", -1.0, 1.0, 1.0, size=32)
    recipe = Recipe(epochs=1, lr=LR, batch_size=32, shared_batches=False)
    out = distill_students(
        students, teachers, index, [AUX] * 3, 64, noise, recipe, torch.Generator().manual_seed(2)
    )
    draw = sample_noise("uniform", (2, 32, 64), -1.0, 1.0, 1.0, torch.Generator().manual_seed(2))
    net = baseline.distill(
        baseline.sequential_from(students, 2),
        baseline.sequential_from(teachers, 1),
        AUX,
        [draw[1]],
        LR,
    )
    _assert_model_equal(out, 2, net)


@pytest.mark.parametrize(("groups", "models"), [(1, 6), (6, 6), (3, 6)])
def test_packed_layout_round_trips_and_matches_the_plain_forward(groups: int, models: int) -> None:
    from sublab.mnist.mlp import forward

    params = init_params(SIZES, models, torch.Generator().manual_seed(4))
    stack = MlpStack(params, groups)
    for got, want in zip(stack.unpack(), params, strict=True):
        assert torch.equal(got, want)
    x = torch.rand(groups, 5, 64)
    per_model = x[torch.arange(models) % groups]  # model k * G + g sees input g
    torch.testing.assert_close(stack.forward(x), forward(params, per_model), **TOL)


def test_stack_rejects_inputs_of_the_wrong_shape() -> None:
    stack = MlpStack(init_params(SIZES, 4, torch.Generator().manual_seed(0)), 2)
    with pytest.raises(ValueError, match=r"expected inputs \[2, batch, in\]"):
        stack.forward(torch.rand(4, 5, 64))
    with pytest.raises(ValueError, match="cannot be split into 3"):
        MlpStack(init_params(SIZES, 4, torch.Generator().manual_seed(0)), 3)


def test_fused_adam_equals_the_written_out_update() -> None:
    g = torch.Generator().manual_seed(0)
    start = [torch.randn(4, 8, 3, generator=g), torch.randn(4, 3, generator=g)]
    grads = [[torch.randn(p.shape, generator=g) for p in start] for _ in range(5)]
    results = []
    for fused in (True, False):
        params = [p.clone() for p in start]
        opt = BatchedAdam(params, lr=1e-2)
        opt.fused = fused
        for step_grads in grads:
            for p, gr in zip(params, step_grads, strict=True):
                p.grad = gr
            opt.step()
        results.append(params)
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    assert (results[0][0] - start[0]).abs().max() > 1e-2


def test_hand_written_gradients_equal_autograd() -> None:
    """Gradients themselves (Adam would hide a wrong scale): CE and KL, packed G=2, K=3."""
    import torch.nn.functional as F

    from sublab.mnist.mlp import forward
    from sublab.mnist.train import cross_entropy_grad, distill_grad

    g = torch.Generator().manual_seed(6)
    params = init_params(SIZES, 6, g)
    x = torch.rand(2, 16, 64, generator=g)
    per_model = x[torch.arange(6) % 2]
    y = torch.randint(0, 10, (6, 16), generator=g)
    t_logits = torch.randn(6, 16, 13, generator=g)
    groups = [(AUX, torch.tensor([0, 1, 2])), (EVERY, torch.tensor([3, 4, 5]))]
    for name in ("cross-entropy", "kl"):
        ref = [p.clone().requires_grad_(True) for p in params]
        logits = forward(ref, per_model)
        if name == "cross-entropy":
            loss = F.cross_entropy(logits[..., :10].reshape(-1, 10), y.reshape(-1), reduction="sum")
            loss = loss / 16
        else:
            loss = sum(
                F.kl_div(
                    F.log_softmax(logits[m, :, sl], -1),
                    F.log_softmax(t_logits[m, :, sl], -1),
                    log_target=True,
                    reduction="batchmean",
                )
                for sl, members in groups
                for m in members.tolist()
            )
        loss.backward()
        stack = MlpStack(params, 2)
        out = stack.forward(x, save=True)
        if name == "cross-entropy":
            stack.backward(cross_entropy_grad(out, y, 10))
        else:
            stack.backward(distill_grad(out, t_logits, groups))
        unpacked = MlpStack(params, 2)
        unpacked.params = [p.grad for p in stack.params]
        for got, want in zip(unpacked.unpack(), [p.grad for p in ref], strict=True):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
