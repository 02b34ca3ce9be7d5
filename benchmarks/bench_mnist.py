"""Speed of the MNIST auxiliary-logit experiment: three implementations measured in one run.

1. per-model baseline: the straightforward fp32 implementation as the paper's code does it (one
   nn.Sequential and one torch.optim.Adam per model, a Python loop over models and mini-batches;
   each student runs its teacher on every noise batch);
2. previous sublab (kept here for comparison): all models as one stack of [models, in, out]
   weights through autograd, Adam written out elementwise;
3. sublab now (src/sublab/mnist/stack.py): first layer packed so that all models reading one
   input are one matrix product, hand-written backward into reused buffers, fused Adam kernel.

2 and 3 run with shared batches (every model the same batch order and noise) and with
independent batches (the paper's code: each model its own shuffle, each teacher its own noise,
shared by that teacher's students). Students: the four student conditions as one stack.

Data: Fashion-MNIST from /usr/share/datasets/fashion-mnist if installed, else random images of
the same shape (60,000 × 784): the timing does not depend on pixel values. Each batched
implementation is timed on 1 batch and on 1 + ``--batches`` batches: the difference gives the
steady per-batch cost, the rest is one-off setup; an epoch is 59 batches (60,000 / 1024).

    .venv/bin/python benchmarks/bench_mnist.py [--models 20] [--batches 4] [--threads 2]

Prints seconds per model per epoch, ratios against the baseline and the previous
implementation, the projected paper-scale figure (100 models per condition: 100 teachers and
400 students, 5 + 5 epochs of 60,000 images), and float32 against bfloat16 on this CPU.
"""

from __future__ import annotations

import argparse
import itertools
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from sublab.mnist import baseline
from sublab.mnist.data import load_idx_set
from sublab.mnist.mlp import forward, init_params
from sublab.mnist.train import (
    NoiseRecipe,
    Recipe,
    batch_orders,
    distill_students,
    sample_noise,
    train_teachers,
)

FASHION = Path("/usr/share/datasets/fashion-mnist")
N_IMAGES, BATCH, EPOCHS, MODELS_PAPER = 60_000, 1024, 5, 100
SIZES = [784, 256, 256, 13]
CPU = torch.device("cpu")
PER_EPOCH = math.ceil(N_IMAGES / BATCH)


def images() -> tuple[torch.Tensor, torch.Tensor, str]:
    if FASHION.is_dir():
        ds = load_idx_set(FASHION, "fashion-mnist")
        return torch.from_numpy(ds.x_train), torch.from_numpy(ds.y_train), "fashion-mnist"
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (N_IMAGES, 784)).astype(np.float32)
    y = rng.integers(0, 10, N_IMAGES)
    return torch.from_numpy(x), torch.from_numpy(y), "random 60000×784"


# ---- 2. the previous batched implementation (autograd), as it was before stack.py ----------


def _previous_adam(params: list[torch.Tensor], lr: float) -> Callable[[], None]:
    b1, b2, eps = 0.9, 0.999, 1e-8
    ms = [torch.zeros_like(p) for p in params]
    vs = [torch.zeros_like(p) for p in params]
    count = [0]

    @torch.no_grad()
    def step() -> None:
        count[0] += 1
        bc1, bc2 = 1 - b1 ** count[0], math.sqrt(1 - b2 ** count[0])
        for p, m, v in zip(params, ms, vs, strict=True):
            g = p.grad
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            p.addcdiv_(m, (v.sqrt() / bc2).add_(eps), value=-lr / bc1)

    return step


def previous_teachers(
    params: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor, batches: Iterator[torch.Tensor]
) -> None:
    params = [p.detach().clone().requires_grad_(True) for p in params]
    step = _previous_adam(params, 3e-4)
    models = params[0].shape[0]
    for idx in batches:
        logits = forward(params, x[idx])[..., :10]
        target = y[idx] if idx.dim() == 2 else y[idx].expand(models, -1)
        loss = F.cross_entropy(logits.reshape(-1, 10), target.reshape(-1), reduction="sum")
        for p in params:
            p.grad = None
        (loss / target.shape[1]).backward()
        step()


def previous_students(
    students: list[torch.Tensor],
    teachers: list[torch.Tensor],
    index: torch.Tensor,
    slices: list[slice],
    n_batches: int,
    shared: bool,
    g: torch.Generator,
) -> None:
    params = [p.detach().clone().requires_grad_(True) for p in students]
    step = _previous_adam(params, 3e-4)
    groups: dict[tuple[int, int | None], list[int]] = {}
    for s, sl in enumerate(slices):
        groups.setdefault((sl.start or 0, sl.stop), []).append(s)
    for _ in range(n_batches):
        shape = (BATCH, 784) if shared else (teachers[0].shape[0], BATCH, 784)
        xb = sample_noise("uniform", shape, -1.0, 1.0, 1.0, g)
        with torch.no_grad():
            t_logits = forward(teachers, xb)[index]
        s_logits = forward(params, xb if shared else xb[index])
        loss = s_logits.new_zeros(())
        for (lo, hi), members in groups.items():
            s_log = F.log_softmax(s_logits[members, :, lo:hi], dim=-1)
            t_log = F.log_softmax(t_logits[members, :, lo:hi], dim=-1)
            loss = loss + (t_log.exp() * (t_log - s_log)).sum() / BATCH
        for p in params:
            p.grad = None
        loss.backward()
        step()


# ---- timing ---------------------------------------------------------------------------------


def steady(run: Callable[[int], None], n: int) -> tuple[float, float]:
    """(seconds per batch, one-off setup seconds) from runs of 1 and 1 + n batches."""
    t = time.perf_counter()
    run(1)
    one = time.perf_counter() - t
    t = time.perf_counter()
    run(1 + n)
    more = time.perf_counter() - t
    per_batch = max(more - one, 1e-9) / n
    return per_batch, max(one - per_batch, 0.0)


def per_model_epoch(per_batch: float, setup: float, models: int) -> float:
    """Seconds per model per epoch: steady batches plus setup spread over the run's epochs."""
    return (per_batch * PER_EPOCH + setup / EPOCHS) / models


def figure_minutes(teacher: float, student: float) -> float:
    return MODELS_PAPER * EPOCHS * (teacher + 4 * student) / 60


def matmul_tflops(dtype: torch.dtype, n: int, reps: int) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e12


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (timings on CUDA are otherwise of the launch only)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def baseline_per_epoch(
    x: torch.Tensor,
    y: torch.Tensor,
    batches: int,
    g: torch.Generator,
    device: torch.device = CPU,
) -> tuple[float, float]:
    """Seconds per model per epoch of the per-model loop, (teacher, student), from ``batches``
    timed teacher and student batches on ``device`` (``x``, ``y`` live there) after one warm-up
    batch of each (torch.optim's first use imports; CUDA loads its kernels)."""
    init = init_params(SIZES, 2, g)
    order = torch.randperm(x.shape[0], generator=g)[: batches * BATCH].to(device)
    idx = list(order.split(BATCH))

    def net(i: int) -> torch.nn.Sequential:
        return baseline.sequential_from(init, i).to(device)

    warm = baseline.train_teacher(net(0), x, y, 10, idx[:1], 3e-4)
    baseline.distill(net(1), warm, slice(10, 13), [x[:BATCH]], 3e-4)
    sync(device)
    t = time.perf_counter()
    teacher = baseline.train_teacher(net(0), x, y, 10, idx, 3e-4)
    sync(device)
    per_teacher = (time.perf_counter() - t) / batches * PER_EPOCH
    noise = [(torch.rand(BATCH, 784, generator=g) * 2 - 1).to(device) for _ in range(batches)]
    t = time.perf_counter()
    baseline.distill(net(1), teacher, slice(10, 13), noise, 3e-4)
    sync(device)
    per_student = (time.perf_counter() - t) / batches * PER_EPOCH
    return per_teacher, per_student


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=int, default=20, help="teachers per stack (4× students)")
    ap.add_argument("--batches", type=int, default=4, help="steady batches timed per run")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    x, y, source = images()
    m, nb = args.models, args.batches
    g = torch.Generator().manual_seed(0)
    print(f"data: {source}; MLP {SIZES}; batch {BATCH}; {args.threads} threads; {m} teachers,")
    print(f"{4 * m} students per stack; 1 + {nb} batches timed; epoch = {PER_EPOCH} batches")

    # ---- 1. baseline: per-model loop
    base_t, base_s = baseline_per_epoch(x, y, nb, g)
    rows: list[tuple[str, float, float]] = [("per-model baseline", base_t, base_s)]

    # ---- 2 and 3: batched stacks
    params = init_params(SIZES, m, g)
    teachers = init_params(SIZES, m, g)
    students = init_params(SIZES, 4 * m, g)
    index = torch.arange(m).repeat(4)
    aux, every = slice(10, 13), slice(0, 13)
    slices = [aux] * m + [every] * m + [aux] * m + [every] * m
    n_img = (1 + nb) * BATCH
    xs, ys = x[:n_img], y[:n_img]

    def epochs_of(shared: bool, n: int) -> Iterator[torch.Tensor]:
        return itertools.islice(batch_orders(N_IMAGES, m, BATCH, shared, g), n)

    for shared in (True, False):
        mode = "shared batches" if shared else "independent batches"
        pt, pts = steady(lambda n, s=shared: previous_teachers(params, x, y, epochs_of(s, n)), nb)
        st, ss = steady(
            lambda n, s=shared: previous_students(students, teachers, index, slices, n, s, g), nb
        )
        rows.append(
            (
                f"previous sublab, {mode}",
                per_model_epoch(pt, pts, m),
                per_model_epoch(st, ss, 4 * m),
            )
        )

        def new_teachers(n: int, s: bool = shared) -> None:
            train_teachers(
                params, xs[: n * BATCH], ys[: n * BATCH], 10, Recipe(1, 3e-4, BATCH, s), g
            )

        def new_students(n: int, s: bool = shared) -> None:
            nr = NoiseRecipe("uniform", -1.0, 1.0, 1.0, n * BATCH)
            distill_students(
                students, teachers, index, slices, 784, nr, Recipe(1, 3e-4, BATCH, s), g
            )

        new_teachers(1)  # warm-up
        nt, nts = steady(new_teachers, nb)
        ns, nss = steady(new_students, nb)
        rows.append(
            (f"sublab now, {mode}", per_model_epoch(nt, nts, m), per_model_epoch(ns, nss, 4 * m))
        )

    print()
    print(f"{'seconds per model per epoch':<42} {'teacher':>8} {'student':>8} {'figure':>9}")
    for name, te, stu in rows:
        print(f"{name:<42} {te:8.3f} {stu:8.3f} {figure_minutes(te, stu):7.1f} min")
    base_fig = figure_minutes(base_t, base_s)
    print("\nratios (figure time; teacher, student per model-epoch):")
    for name, te, stu in rows[1:]:
        print(
            f"  baseline / {name}: {base_fig / figure_minutes(te, stu):.2f}x"
            f" (teacher {base_t / te:.2f}x, student {base_s / stu:.2f}x)"
        )
    for mode in ("shared batches", "independent batches"):
        prev = next(r for r in rows if r[0] == f"previous sublab, {mode}")
        now = next(r for r in rows if r[0] == f"sublab now, {mode}")
        print(
            f"  previous / now, {mode}: {figure_minutes(*prev[1:]) / figure_minutes(*now[1:]):.2f}x"
        )
    flop = 2 * sum(a * b for a, b in itertools.pairwise(SIZES))
    work = MODELS_PAPER * EPOCHS * N_IMAGES * flop * (3 + 4 * 3 + 1)
    for name, te, stu in (r for r in rows if r[0].startswith("sublab now")):
        rate = work / (figure_minutes(te, stu) * 60) / 1e12
        print(f"paper-scale work ≈ {work / 1e12:.0f} TFLOP ⇒ {name} sustains {rate:.3f} TFLOP/s")
    print("(target: the paper-scale figure in ≤ 5 min on this CPU)")

    # ---- float32 against bfloat16 on this CPU
    f32 = matmul_tflops(torch.float32, 512, 20)
    bf16 = matmul_tflops(torch.bfloat16, 128, 2)
    print(f"\nmatmul on this CPU: float32 {f32:.3f} TFLOP/s, bfloat16 {bf16:.5f} TFLOP/s")
    small = init_params(SIZES, 2, g)
    times = {}
    for name, dt in (("float32", None), ("bfloat16 autocast", torch.bfloat16)):
        recipe = Recipe(1, 3e-4, BATCH, True, dt)
        train_teachers(small, x[:BATCH], y[:BATCH], 10, recipe, g)
        t = time.perf_counter()
        train_teachers(small, x[:BATCH], y[:BATCH], 10, recipe, g)
        times[name] = time.perf_counter() - t
    print(
        f"one teacher step, 2 models: float32 {times['float32']:.3f} s, bfloat16 autocast"
        f" {times['bfloat16 autocast']:.3f} s ({times['bfloat16 autocast'] / times['float32']:.0f}x"
        " slower): float32 on this CPU"
    )


if __name__ == "__main__":
    main()
