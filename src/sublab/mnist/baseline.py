"""Reference implementations the batched code is tested against and benchmarked with.

1. Per model: one ``nn.Sequential`` and one ``torch.optim.Adam`` per model, a Python loop over
   models and mini-batches.
2. The paper's published algorithm (:func:`official_train`, :func:`official_distill`): every
   model of a condition in one ``[M, out, in]`` weight tensor per layer, products by
   ``torch.einsum``, gradients by autograd, one ``torch.optim.Adam`` over the stack. Each model
   has its own shuffle of the images, gathered model by model; the students' noise is a fixed
   ``[M, N, in]`` set drawn once, reshuffled per model every epoch; each student condition is
   its own stack and runs the teachers on every batch; losses are PyTorch's cross-entropy
   (mean over models and images) and ``kl_div(..., reduction="batchmean")``.

``benchmarks/bench_mnist.py`` times both against sublab's stack.
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


def official_layout(params: list[Tensor]) -> list[Tensor]:
    """sublab's ``[W: [M, in, out], b: [M, out], ...]`` as the paper code's leaf tensors
    (``W: [M, out, in]``), copied, with ``requires_grad``."""
    out = []
    for i, p in enumerate(params):
        q = p.detach().transpose(1, 2) if i % 2 == 0 else p.detach()
        out.append(q.clone(memory_format=torch.contiguous_format).requires_grad_(True))
    return out


def official_forward(params: list[Tensor], x: Tensor) -> Tensor:
    """Logits ``[M, B, out]`` of inputs ``[M, B, in]``: einsum per layer, bias, ReLU between."""
    h = x
    n_layers = len(params) // 2
    for i in range(n_layers):
        w, b = params[2 * i], params[2 * i + 1]
        h = torch.einsum("moi,mbi->mbo", w, h) + b[:, None, :]
        if i < n_layers - 1:
            h = torch.relu(h)
    return h


def _gather(x: Tensor, idx: Tensor) -> Tensor:
    """Each model's batch ``[M, B, in]``: ``x[idx[m]]`` (or ``x[m][idx[m]]`` for ``[M, N, in]``
    data), one ``index_select`` per model as the paper's data loader does."""
    rows = [(x[m] if x.dim() == 3 else x).index_select(0, idx[m]) for m in range(idx.shape[0])]
    return torch.stack(rows, 0)


def official_train(
    params: list[Tensor], x: Tensor, y: Tensor, classes: int, batches: Iterable[Tensor], lr: float
) -> list[Tensor]:
    """Teachers: cross-entropy on the first ``classes`` logits; ``batches`` yields ``[M, B]``
    index batches. Returns the trained leaf tensors (official layout)."""
    opt = torch.optim.Adam(params, lr=lr)
    for idx in batches:
        logits = official_forward(params, _gather(x, idx))
        loss = F.cross_entropy(
            logits[..., :classes].flatten(0, 1), _gather(y[:, None], idx).flatten()
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    return params


def official_distill(
    student: list[Tensor],
    teacher: list[Tensor],
    logits: slice,
    noise: Tensor,
    batches: Iterable[Tensor],
    lr: float,
) -> list[Tensor]:
    """One student condition: KL(teacher softmax ‖ student softmax) over ``logits`` on each
    model's noise ``noise: [M, N, in]`` at the ``[M, B]`` indices ``batches`` yields."""
    opt = torch.optim.Adam(student, lr=lr)
    for idx in batches:
        xb = _gather(noise, idx)
        with torch.no_grad():
            target = official_forward(teacher, xb)[..., logits]
        out = official_forward(student, xb)[..., logits]
        loss = F.kl_div(F.log_softmax(out, -1), F.softmax(target, -1), reduction="batchmean")
        opt.zero_grad()
        loss.backward()
        opt.step()
    return student
