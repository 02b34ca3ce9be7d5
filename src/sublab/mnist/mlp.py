"""A stack of independent MLPs computed together: one [models, in, out] weight tensor per layer.

Parameters are a flat list ``[W1, b1, W2, b2, ...]`` with ``W: [M, in, out]`` and ``b: [M, out]``.
Inputs are either shared by all models (``[B, in]``: the first layer is then one large GEMM
against all models' weights side by side) or per model (``[M, B, in]``: batched ``baddbmm``).
Models never interact, so the sum over models of each model's mean loss has, for each model,
exactly that model's own gradient; an elementwise optimiser such as Adam over these tensors is
therefore M independent Adams (tests check this against a loop of ``nn.Sequential`` models).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
from torch import Tensor


def layer_sizes(input_dim: int, hidden: list[int], outputs: int) -> list[int]:
    return [input_dim, *hidden, outputs]


def init_params(
    sizes: list[int],
    models: int,
    generator: torch.Generator,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> list[Tensor]:
    """PyTorch's default ``nn.Linear`` init for ``models`` MLPs: W, b ~ U(±1/sqrt(fan_in))."""
    params: list[Tensor] = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        bound = 1.0 / math.sqrt(fan_in)
        w = torch.empty(models, fan_in, fan_out, dtype=torch.float32)
        w.uniform_(-bound, bound, generator=generator)
        b = torch.empty(models, fan_out, dtype=torch.float32)
        b.uniform_(-bound, bound, generator=generator)
        params += [w.to(device=device, dtype=dtype), b.to(device=device, dtype=dtype)]
    return params


def clone_params(params: list[Tensor], index: Tensor | None = None) -> list[Tensor]:
    """Detached copies (optionally of the models ``index`` selects, in that order)."""
    return [(p if index is None else p[index]).detach().clone() for p in params]


def cat_params(*stacks: list[Tensor]) -> list[Tensor]:
    """Concatenate model stacks along the model axis."""
    return [torch.cat(parts, dim=0).contiguous() for parts in zip(*stacks, strict=True)]


def forward(params: list[Tensor], x: Tensor) -> Tensor:
    """Logits ``[M, B, out]`` for inputs ``[B, in]`` (shared) or ``[M, B, in]`` (per model)."""
    h = x
    n_layers = len(params) // 2
    for i in range(n_layers):
        w, b = params[2 * i], params[2 * i + 1]
        if h.dim() == 2:
            # Shared input: one GEMM [B, in] x [in, M*out]; no gradient flows into x.
            m, d_in, d_out = w.shape
            flat = torch.addmm(
                b.reshape(1, m * d_out), h, w.permute(1, 0, 2).reshape(d_in, m * d_out)
            )
            h = flat.reshape(h.shape[0], m, d_out).transpose(0, 1)
        else:
            h = torch.baddbmm(b.unsqueeze(1), h, w)
        if i < n_layers - 1:
            h = torch.relu(h)
    return h


def derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random permutation of range(n) with no fixed point (n >= 2)."""
    if n < 2:
        raise ValueError("a derangement needs at least 2 elements")
    while True:
        perm = rng.permutation(n)
        if not np.any(perm == np.arange(n)):
            return perm
