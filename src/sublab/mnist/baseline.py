"""The straightforward per-model implementation (as the paper's code does it).

One ``nn.Sequential`` and one ``torch.optim.Adam`` per model, a Python loop over models and
mini-batches. It is the reference the batched code is tested against and the baseline that
``benchmarks/bench_mnist.py`` times.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def sequential(sizes: list[int], dtype: torch.dtype = torch.float32) -> nn.Sequential:
    """An MLP of ``nn.Linear`` + ReLU layers with PyTorch's default init."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b, dtype=dtype))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def sequential_from(params: list[Tensor], model: int) -> nn.Sequential:
    """Model ``model`` of a batched parameter stack as an ``nn.Sequential`` (copied)."""
    sizes = [params[0].shape[1]] + [params[i].shape[2] for i in range(0, len(params), 2)]
    net = sequential(sizes, dtype=params[0].dtype)
    linears = [m for m in net if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for i, lin in enumerate(linears):
            lin.weight.copy_(params[2 * i][model].T)
            lin.bias.copy_(params[2 * i + 1][model])
    return net


def params_of(net: nn.Sequential) -> list[Tensor]:
    """[W1, b1, ...] of an ``nn.Sequential`` in the batched layout (W as [in, out])."""
    out: list[Tensor] = []
    for lin in (m for m in net if isinstance(m, nn.Linear)):
        out += [lin.weight.detach().T.clone(), lin.bias.detach().clone()]
    return out


def train_teacher(
    net: nn.Sequential,
    x: Tensor,
    y: Tensor,
    classes: int,
    batches: Iterable[Tensor],
    lr: float,
) -> nn.Sequential:
    """Cross-entropy on the first ``classes`` logits over the given index batches."""
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    for idx in batches:
        loss = F.cross_entropy(net(x[idx])[:, :classes], y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net


def distill(
    student: nn.Sequential,
    teacher: nn.Sequential,
    logits: slice,
    noise_batches: Iterable[Tensor],
    lr: float,
) -> nn.Sequential:
    """KL(teacher softmax ‖ student softmax) over ``logits`` on the given noise batches."""
    opt = torch.optim.Adam(student.parameters(), lr=lr)
    for xb in noise_batches:
        with torch.no_grad():
            t_log = F.log_softmax(teacher(xb)[:, logits], dim=-1)
        s_log = F.log_softmax(student(xb)[:, logits], dim=-1)
        loss = F.kl_div(s_log, t_log, log_target=True, reduction="batchmean")
        opt.zero_grad()
        loss.backward()
        opt.step()
    return student
