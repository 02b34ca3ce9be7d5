"""Batched training of teachers (cross-entropy on class logits) and students (KL on noise)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from sublab.mnist.mlp import forward
from sublab.progress import progress


@dataclass(frozen=True)
class Recipe:
    """What one training call needs: epochs, Adam lr, batch size, data-order sharing."""

    epochs: int
    lr: float
    batch_size: int
    shared_batches: bool = True
    autocast: torch.dtype | None = None


def resolve_dtype(name: str, device: str) -> tuple[torch.dtype, torch.dtype | None]:
    """(parameter dtype, autocast dtype or None) for a config's ``dtype`` on ``device``."""
    is_cuda = torch.device(device).type == "cuda"
    if name == "auto":
        return (torch.float32, torch.bfloat16) if is_cuda else (torch.float32, None)
    if name == "bfloat16":
        return torch.float32, torch.bfloat16
    return {"float32": torch.float32, "float64": torch.float64}[name], None


def _autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def batch_orders(
    n: int, models: int, batch_size: int, shared: bool, generator: torch.Generator
) -> Iterator[Tensor]:
    """Index batches for one epoch: ``[B]`` if shared by all models, else ``[M, B]``."""
    if shared:
        order = torch.randperm(n, generator=generator)
    else:
        order = torch.argsort(torch.rand(models, n, generator=generator), dim=1)
    for start in range(0, n, batch_size):
        yield order[..., start : start + batch_size]


class BatchedAdam:
    """Adam over stacked [M, ...] parameters: M independent Adams, since Adam is elementwise.

    Same update as ``torch.optim.Adam`` (bias-corrected, eps outside the square root), written
    out because importing ``torch.optim`` pulls in torch._dynamo (seconds on a busy CPU).
    """

    def __init__(
        self,
        params: list[Tensor],
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.params = params
        self.lr, self.betas, self.eps = lr, betas, eps
        self.step_count = 0
        self.exp_avg = [torch.zeros_like(p) for p in params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.step_count += 1
        b1, b2 = self.betas
        bc1 = 1 - b1**self.step_count
        bc2_sqrt = math.sqrt(1 - b2**self.step_count)
        for p, m, v in zip(self.params, self.exp_avg, self.exp_avg_sq, strict=True):
            if p.grad is None:
                continue
            g = p.grad
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (v.sqrt() / bc2_sqrt).add_(self.eps)
            p.addcdiv_(m, denom, value=-self.lr / bc1)


def _adam(params: list[Tensor], lr: float) -> BatchedAdam:
    return BatchedAdam(params, lr)


def train_teachers(
    params: list[Tensor],
    x: Tensor,
    y: Tensor,
    classes: int,
    recipe: Recipe,
    generator: torch.Generator,
    label: str = "teachers",
) -> list[Tensor]:
    """Train every model's first ``classes`` logits with cross-entropy; return new params."""
    params = [p.detach().clone().requires_grad_(True) for p in params]
    models = params[0].shape[0]
    opt = _adam(params, recipe.lr)
    steps = recipe.epochs * -(-x.shape[0] // recipe.batch_size)
    with progress() as bar:
        task = bar.add_task(f"{label} ({models} models)", total=steps)
        for _ in range(recipe.epochs):
            for idx in batch_orders(
                x.shape[0], models, recipe.batch_size, recipe.shared_batches, generator
            ):
                idx = idx.to(x.device)
                xb, yb = x[idx], y[idx]
                with _autocast(x.device, recipe.autocast):
                    logits = forward(params, xb)[..., :classes]
                target = yb if yb.dim() == 2 else yb.expand(models, -1)
                # Sum over models of each model's mean loss.
                loss = (
                    F.cross_entropy(
                        logits.float().reshape(-1, classes), target.reshape(-1), reduction="sum"
                    )
                    / target.shape[1]
                )
                opt.zero_grad()
                loss.backward()
                opt.step()
                bar.advance(task)
    return [p.detach() for p in params]


def sample_noise(
    kind: str,
    shape: tuple[int, ...],
    low: float,
    high: float,
    std: float,
    generator: torch.Generator,
) -> Tensor:
    """Noise images: uniform in [low, high] or normal(0, std)."""
    if kind == "uniform":
        return torch.rand(shape, generator=generator) * (high - low) + low
    return torch.randn(shape, generator=generator) * std


@dataclass(frozen=True)
class NoiseRecipe:
    """Noise for the students: distribution, bounds and images per epoch."""

    distribution: str
    low: float
    high: float
    std: float
    size: int


def distill_students(
    students: list[Tensor],
    teachers: list[Tensor],
    teacher_index: Tensor,
    logit_slices: list[slice],
    input_dim: int,
    noise: NoiseRecipe,
    recipe: Recipe,
    generator: torch.Generator,
    label: str = "students",
) -> list[Tensor]:
    """Train students to match their teacher's softmax over chosen logits on noise images.

    ``students`` stacks S models; student s imitates teacher ``teacher_index[s]`` over the logits
    ``logit_slices[s]``. Each teacher runs once per batch for all the students that copy it.
    Loss per student: KL(teacher softmax ‖ student softmax) over its slice, mean over the batch.
    """
    params = [p.detach().clone().requires_grad_(True) for p in students]
    n_students = params[0].shape[0]
    n_teachers = teachers[0].shape[0]
    device = params[0].device
    groups: dict[tuple[int, int | None], list[int]] = {}
    for s, sl in enumerate(logit_slices):
        groups.setdefault((sl.start or 0, sl.stop), []).append(s)
    group_index = [
        (sl_key, torch.tensor(members, device=device)) for sl_key, members in groups.items()
    ]
    teacher_index = teacher_index.to(device)
    opt = _adam(params, recipe.lr)
    steps = recipe.epochs * -(-noise.size // recipe.batch_size)
    with progress() as bar:
        task = bar.add_task(f"{label} ({n_students} models)", total=steps)
        for _ in range(recipe.epochs):
            for start in range(0, noise.size, recipe.batch_size):
                b = min(recipe.batch_size, noise.size - start)
                shape = (b, input_dim) if recipe.shared_batches else (n_teachers, b, input_dim)
                xb = sample_noise(
                    noise.distribution, shape, noise.low, noise.high, noise.std, generator
                ).to(device=device, dtype=params[0].dtype)
                with torch.no_grad(), _autocast(device, recipe.autocast):
                    t_logits = forward(teachers, xb).float()
                x_students = xb if xb.dim() == 2 else xb[teacher_index]
                with _autocast(device, recipe.autocast):
                    s_logits = forward(params, x_students).float()
                t_logits = t_logits[teacher_index]
                loss = s_logits.new_zeros(())
                for (lo, hi), members in group_index:
                    s_log = F.log_softmax(s_logits[members, :, lo:hi], dim=-1)
                    t_log = F.log_softmax(t_logits[members, :, lo:hi], dim=-1)
                    loss = loss + (t_log.exp() * (t_log - s_log)).sum() / b
                opt.zero_grad()
                loss.backward()
                opt.step()
                bar.advance(task)
    return [p.detach() for p in params]


@torch.no_grad()
def accuracy(params: list[Tensor], x: Tensor, y: Tensor, classes: int, chunk: int = 4096) -> Tensor:
    """Per-model accuracy ``[M]`` of the argmax over the first ``classes`` logits."""
    correct = torch.zeros(params[0].shape[0], dtype=torch.float64, device=x.device)
    for start in range(0, x.shape[0], chunk):
        xb, yb = x[start : start + chunk], y[start : start + chunk]
        pred = forward(params, xb)[..., :classes].argmax(-1)
        correct += (pred == yb.unsqueeze(0)).sum(1).double()
    return (correct / x.shape[0]).cpu()
