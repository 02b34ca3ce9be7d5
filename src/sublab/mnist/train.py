"""Batched training of teachers (cross-entropy on class logits) and students (KL on noise)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from sublab.cpu import CpuFeatures, bf16_matmul_fast, cpu_features
from sublab.mnist.mlp import forward
from sublab.mnist.stack import MlpStack, Workspace, shared_input_groups
from sublab.progress import progress


@dataclass(frozen=True)
class Recipe:
    """What one training call needs: epochs, Adam lr, batch size, data-order sharing."""

    epochs: int
    lr: float
    batch_size: int
    shared_batches: bool = False
    autocast: torch.dtype | None = None  # matrix-product dtype (bfloat16), None: the params'


class DtypeChoice(NamedTuple):
    """Parameter (master) dtype, matrix-product dtype (None: the parameters'), and why."""

    params: torch.dtype
    compute: torch.dtype | None
    reason: str


# CPU bf16 products only pay off at sizes like the paper's (batch 1024, width 256): the
# digits config (batch 64, width 64) took 294 s in bf16 against 217 s in float32 (avx512_bf16).
MIN_CPU_BF16_BATCH, MIN_CPU_BF16_WIDTH = 256, 128


def resolve_dtype(
    name: str,
    device: str,
    features: CpuFeatures | None = None,
    batch_size: int = 1024,
    hidden: tuple[int, ...] = (256, 256),
) -> DtypeChoice:
    """What a config's ``dtype`` means on ``device``.

    ``auto``: bfloat16 products on CUDA, and on a CPU where they beat float32
    (:func:`sublab.cpu.bf16_matmul_fast`: AMX or avx512_bf16) for products of at least
    ``MIN_CPU_BF16_BATCH`` rows and ``MIN_CPU_BF16_WIDTH`` columns; float32 elsewhere. bfloat16
    always keeps float32 master weights and Adam state. ``features``: this CPU's unless given.
    """
    if name == "float64":
        return DtypeChoice(torch.float64, None, "asked for float64")
    if name == "float32":
        return DtypeChoice(torch.float32, None, "asked for float32")
    if name == "bfloat16":
        return DtypeChoice(torch.float32, torch.bfloat16, "asked for bfloat16")
    if name != "auto":
        raise ValueError(f"unknown dtype {name!r}: use auto, float32, bfloat16 or float64")
    if torch.device(device).type == "cuda":
        return DtypeChoice(torch.float32, torch.bfloat16, "auto: CUDA, bfloat16 tensor cores")
    if torch.device(device).type != "cpu":
        return DtypeChoice(torch.float32, None, f"auto: float32 on {device}")
    fast, why = bf16_matmul_fast(features or cpu_features())
    if fast and (batch_size < MIN_CPU_BF16_BATCH or min(hidden) < MIN_CPU_BF16_WIDTH):
        why = (
            f"float32: products too small for bf16 to pay off (batch {batch_size}, widths "
            f"{list(hidden)}; bf16 needs >= {MIN_CPU_BF16_BATCH} and >= {MIN_CPU_BF16_WIDTH})"
        )
        fast = False
    return DtypeChoice(torch.float32, torch.bfloat16 if fast else None, f"auto: {why}")


def batch_orders(
    n: int, models: int, batch_size: int, shared: bool, generator: torch.Generator
) -> Iterator[Tensor]:
    """Index batches for one epoch: ``[B]`` if shared by all models, else ``[M, B]``.

    Drawn on the generator's device (a CUDA generator keeps the shuffle on the GPU).
    """
    dev = generator.device
    if shared:
        order = torch.randperm(n, generator=generator, device=dev)
    else:
        order = torch.argsort(torch.rand(models, n, generator=generator, device=dev), dim=1)
    for start in range(0, n, batch_size):
        yield order[..., start : start + batch_size]


def cross_entropy_grad(logits: Tensor, y: Tensor, classes: int) -> Tensor:
    """d/d logits of the sum over models of each model's mean cross-entropy on ``classes``.

    ``logits: [M, B, out]``; ``y: [B]`` (shared labels) or ``[M, B]``. Logits past ``classes``
    get zero gradient.
    """
    d = torch.zeros_like(logits)
    p = torch.softmax(logits[..., :classes], dim=-1)
    target = y.expand(logits.shape[:2]).unsqueeze(-1)
    p.scatter_add_(-1, target, p.new_full(target.shape, -1.0))
    d[..., :classes] = p.div_(logits.shape[1])
    return d


def train_teachers(
    params: list[Tensor],
    x: Tensor,
    y: Tensor,
    classes: int,
    recipe: Recipe,
    generator: torch.Generator,
    label: str = "teachers",
) -> list[Tensor]:
    """Train every model's first ``classes`` logits with cross-entropy; return new params.

    Shared batches: one batch for all, read in place by every input group (see
    :func:`shared_input_groups`); otherwise each model gets its own shuffle, so its own batch
    (``x[idx]`` with ``idx: [M, B]``).
    """
    models = params[0].shape[0]
    groups = shared_input_groups(models, params[0].shape[2]) if recipe.shared_batches else models
    stack = MlpStack(params, groups, recipe.autocast)
    opt = stack.optimizer(recipe.lr)
    work = Workspace(x.device)
    x = x.to(stack.input_dtype)  # once, not per batch
    steps = recipe.epochs * -(-x.shape[0] // recipe.batch_size)
    with progress() as bar:
        task = bar.add_task(f"{label} ({models} models)", total=steps)
        for _ in range(recipe.epochs):
            for idx in batch_orders(
                x.shape[0], models, recipe.batch_size, recipe.shared_batches, generator
            ):
                idx = idx.to(x.device)
                # Shared: [1, B, in]; independent: each model's own batch, [M, B, in].
                xb = work.get("x", (idx.numel(), x.shape[1]), x.dtype)
                torch.index_select(x, 0, idx.reshape(-1), out=xb)
                xb = xb.view(-1, idx.shape[-1], x.shape[1]).expand(groups, -1, -1)
                logits = stack.forward(xb, save=True)
                stack.backward(cross_entropy_grad(logits, y[idx], classes))
                opt.step()
                bar.advance(task)
    return stack.unpack()


def sample_noise(
    kind: str,
    shape: tuple[int, ...],
    low: float,
    high: float,
    std: float,
    generator: torch.Generator,
    out: Tensor | None = None,
) -> Tensor:
    """Noise images: uniform in [low, high] or normal(0, std); written into ``out`` if given.

    Drawn on the generator's device (``out``, if given, must live there too).
    """
    dev = generator.device
    if kind == "uniform":
        return (
            torch.rand(shape, generator=generator, out=out, device=dev).mul_(high - low).add_(low)
        )
    return torch.randn(shape, generator=generator, out=out, device=dev).mul_(std)


@dataclass(frozen=True)
class NoiseRecipe:
    """Noise for the students: distribution, bounds and images per epoch."""

    distribution: str
    low: float
    high: float
    std: float
    size: int


@dataclass(frozen=True)
class StudentLayout:
    """How a student stack is laid out for :class:`MlpStack`.

    ``order[j]``: the caller's index of internal student j; ``groups``: input groups;
    ``gather``: each student needs its own copy of its teacher's noise (uneven counts).
    """

    order: Tensor
    groups: int
    gather: bool


def student_layout(
    teacher_index: Tensor, n_teachers: int, shared: bool, width: int = 256
) -> StudentLayout:
    """When every teacher has the same number K of students, internal student ``k * T + g`` is
    the k-th student of teacher g and reads input group g: teacher g's noise batch, or with
    shared noise the one batch (a view, not a copy). Uneven counts: with shared noise, order
    unchanged in :func:`shared_input_groups` groups; otherwise one group per student, each
    given a copy of its teacher's batch. ``width``: first hidden layer, for the shared grouping.
    """
    n = teacher_index.shape[0]
    counts = torch.bincount(teacher_index, minlength=n_teachers)
    if bool((counts == counts[0]).all()) and int(counts[0]) > 0:
        per_teacher = [torch.nonzero(teacher_index == t).flatten() for t in range(n_teachers)]
        return StudentLayout(torch.stack(per_teacher, dim=1).flatten(), n_teachers, False)
    if shared:
        return StudentLayout(torch.arange(n), shared_input_groups(n, width), False)
    return StudentLayout(torch.arange(n), n, True)


def distill_grad(s_logits: Tensor, t_logits: Tensor, groups: list[tuple[slice, Tensor]]) -> Tensor:
    """d/d student logits of the sum over students of KL(teacher ‖ student), mean over the batch.

    Each ``(slice, members)`` pair: those students imitate the softmax over those logits; the
    gradient there is ``softmax(student) - softmax(teacher)`` divided by the batch size.
    """
    d = torch.zeros_like(s_logits)
    b = s_logits.shape[1]
    for sl, members in groups:
        p_s = torch.softmax(s_logits[members, :, sl], dim=-1)
        p_t = torch.softmax(t_logits[members, :, sl].to(s_logits.dtype), dim=-1)
        d[members, :, sl] = (p_s - p_t).div_(b)
    return d


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
    ``logit_slices[s]``. Each teacher runs once per batch for all the students that copy it, and
    they all see that teacher's noise batch (one batch for everyone with shared batches).
    Loss per student: KL(teacher softmax ‖ student softmax) over its slice, mean over the batch.
    """
    n_students = students[0].shape[0]
    n_teachers = teachers[0].shape[0]
    device = students[0].device
    teacher_index = teacher_index.cpu()
    width = students[0].shape[2]
    layout = student_layout(teacher_index, n_teachers, recipe.shared_batches, width)
    order = layout.order
    reordered = not torch.equal(order, torch.arange(n_students))
    ordered = [p[order.to(device)] for p in students] if reordered else students
    stack = MlpStack(ordered, layout.groups, recipe.autocast)
    t_groups = shared_input_groups(n_teachers, width) if recipe.shared_batches else n_teachers
    teacher_stack = MlpStack(teachers, t_groups, recipe.autocast)
    internal_teacher = teacher_index[order].to(device)
    by_slice: dict[tuple[int, int | None], list[int]] = {}
    for j, s in enumerate(order.tolist()):
        sl = logit_slices[s]
        by_slice.setdefault((sl.start or 0, sl.stop), []).append(j)
    groups = [(slice(lo, hi), torch.tensor(js, device=device)) for (lo, hi), js in by_slice.items()]
    opt = stack.optimizer(recipe.lr)
    work = Workspace(generator.device)  # noise is drawn where the generator lives
    inputs = Workspace(device)  # ... and converted into the products' dtype on the device
    steps = recipe.epochs * -(-noise.size // recipe.batch_size)
    with progress() as bar:
        task = bar.add_task(f"{label} ({n_students} models)", total=steps)
        for _ in range(recipe.epochs):
            for start in range(0, noise.size, recipe.batch_size):
                b = min(recipe.batch_size, noise.size - start)
                shape = (b, input_dim) if recipe.shared_batches else (n_teachers, b, input_dim)
                xb = sample_noise(
                    noise.distribution,
                    shape,
                    noise.low,
                    noise.high,
                    noise.std,
                    generator,
                    out=work.get("noise", shape, torch.float32),
                )
                if xb.device != device or xb.dtype != stack.input_dtype:
                    xb = inputs.get("noise", shape, stack.input_dtype).copy_(xb)
                if xb.dim() == 2:  # one batch for everyone: a view per input group
                    t_in, s_in = (xb.expand(n, -1, -1) for n in (t_groups, layout.groups))
                else:
                    t_in, s_in = xb, xb[internal_teacher] if layout.gather else xb
                t_logits = teacher_stack.forward(t_in)[internal_teacher]
                s_logits = stack.forward(s_in, save=True)
                stack.backward(distill_grad(s_logits, t_logits, groups))
                opt.step()
                bar.advance(task)
    if not reordered:
        return stack.unpack()
    inverse = torch.argsort(order).to(device)
    return [p[inverse].contiguous() for p in stack.unpack()]


@torch.no_grad()
def accuracy(params: list[Tensor], x: Tensor, y: Tensor, classes: int, chunk: int = 4096) -> Tensor:
    """Per-model accuracy ``[M]`` of the argmax over the first ``classes`` logits."""
    correct = torch.zeros(params[0].shape[0], dtype=torch.float64, device=x.device)
    for start in range(0, x.shape[0], chunk):
        xb, yb = x[start : start + chunk], y[start : start + chunk]
        pred = forward(params, xb)[..., :classes].argmax(-1)
        correct += (pred == yb.unsqueeze(0)).sum(1).double()
    return (correct / x.shape[0]).cpu()
