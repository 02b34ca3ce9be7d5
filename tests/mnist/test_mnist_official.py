"""The paper's published algorithm (einsum + autograd + torch.optim.Adam) trains the same models
as sublab's stack on the same batches: it is a fair baseline for benchmarks/bench_mnist.py."""

from __future__ import annotations

import itertools

import torch

from sublab.mnist import baseline
from sublab.mnist.data import load_digits_set
from sublab.mnist.mlp import init_params
from sublab.mnist.stack import MlpStack
from sublab.mnist.train import batch_orders, cross_entropy_grad, distill_grad

SIZES = [64, 16, 16, 13]
AUX = slice(10, 13)


def _sublab(params: list[torch.Tensor]) -> list[torch.Tensor]:
    return [p.transpose(1, 2) if i % 2 == 0 else p for i, p in enumerate(params)]


def _close(official: list[torch.Tensor], ours: list[torch.Tensor], start: list[torch.Tensor]):
    for a, b, p0 in zip(_sublab(official), ours, start, strict=True):
        assert (b - p0).abs().max() > 1e-2  # it trained: at least one step of lr 1e-2
        torch.testing.assert_close(a.detach(), b, rtol=1e-6, atol=1e-7)


def test_official_algorithm_trains_teachers_and_students_as_the_stack_does() -> None:
    data = load_digits_set()
    x = torch.from_numpy(data.x_train[:256]).double()
    y = torch.from_numpy(data.y_train[:256])
    models, lr = 3, 1e-2
    init = init_params(SIZES, models, torch.Generator().manual_seed(0), dtype=torch.float64)
    batches = list(
        itertools.islice(batch_orders(256, models, 64, False, torch.Generator().manual_seed(1)), 4)
    )
    official = baseline.official_train(baseline.official_layout(init), x, y, 10, batches, lr)
    # The paper's cross-entropy also averages over models: its gradients are ours / models, and
    # Adam is scale-invariant but for eps, so ours gets eps * models to take the same steps.
    stack = MlpStack(init, models)
    opt = stack.optimizer(lr)
    opt.eps = 1e-8 * models
    for idx in batches:
        stack.backward(cross_entropy_grad(stack.forward(x[idx], save=True), y[idx], 10))
        opt.step()
    teachers = stack.unpack()
    _close(official, teachers, init)

    noise = torch.rand(models, 256, 64, dtype=torch.float64) * 2 - 1
    students = baseline.official_distill(
        baseline.official_layout(init),
        baseline.official_layout(teachers),
        AUX,
        noise,
        batches[:2],
        lr,
    )
    stack, t_stack = MlpStack(init, models), MlpStack(teachers, models)
    opt = stack.optimizer(lr)
    opt.eps = 1e-8 * models / 64  # kl_div's "batchmean" divides by models, not by the batch
    members = (AUX, torch.arange(models))
    for idx in batches[:2]:
        xb = noise[torch.arange(models)[:, None], idx]
        logits = stack.forward(xb, save=True)
        stack.backward(distill_grad(logits, t_stack.forward(xb).clone(), [members]))
        opt.step()
    _close(students, stack.unpack(), init)
