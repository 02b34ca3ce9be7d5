"""Speed of the MNIST auxiliary-logit experiment: sublab against two baselines, in one run.

1. per-model baseline: one nn.Sequential and one torch.optim.Adam per model, a Python loop over
   models and mini-batches (each student runs its teacher on every noise batch);
2. the paper's algorithm (sublab.mnist.baseline.official_train / official_distill): each
   condition's models as one [M, out, in] stack per layer through torch.einsum, autograd and
   one torch.optim.Adam; per-model shuffles gathered model by model; each of the four student
   conditions its own stack, running the teachers on every batch;
3. sublab (src/sublab/mnist/stack.py) with independent batches (as the paper: each model its
   own shuffle, each teacher its own noise, shared by its students), in float32 and with
   bfloat16 products (bf16 weights kept between steps, float32 master weights and Adam).

It prints which CPU features it found and what ``dtype = "auto"`` picks here, the rate of
float32 and bfloat16 matrix products at the MLP's shapes, seconds per model per epoch, the
projected paper-scale figure (100 models per condition: 100 teachers and 400 students, 5 + 5
epochs of 60,000 images), ratios against both baselines, and the share of the bf16 product
rate the bf16 step sustains.

Data: Fashion-MNIST from /usr/share/datasets/fashion-mnist if installed, else random images of
the same shape (60,000 × 784): the timing does not depend on pixel values. Each batched
implementation is timed on 1 batch and on 1 + ``--batches`` batches: the difference gives the
steady per-batch cost, the rest is one-off setup; an epoch is 59 batches (60,000 / 1024). The
paper code's one-off noise draw (a [models, 60000, 784] tensor) is not timed.

    .venv/bin/python benchmarks/bench_mnist.py [--models 20] [--batches 3] [--threads 2]
        [--shared]
"""

from __future__ import annotations

import argparse
import itertools
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from sublab.cpu import cpu_features, machine_line
from sublab.mnist import baseline
from sublab.mnist.data import load_idx_set
from sublab.mnist.mlp import init_params
from sublab.mnist.train import (
    NoiseRecipe,
    Recipe,
    batch_orders,
    distill_students,
    resolve_dtype,
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


def matmul_tflops(dtype: torch.dtype, reps: int = 3) -> dict[str, float]:
    """Best-of-``reps`` TFLOP/s of the MLP's two product shapes (batch 1024) in ``dtype``."""
    shapes = {
        "[1024,784]@[784,1024]": ((1, BATCH, 784), (1, 784, 1024)),
        "20×[1024,256]@[256,256]": ((20, BATCH, 256), (20, 256, 256)),
    }
    rates = {}
    for name, (sa, sb) in shapes.items():
        a, b = torch.randn(sa, dtype=dtype), torch.randn(sb, dtype=dtype)
        out = torch.bmm(a, b)
        best = math.inf
        for _ in range(reps):
            t = time.perf_counter()
            torch.bmm(a, b, out=out)
            best = min(best, time.perf_counter() - t)
        rates[name] = 2 * sa[0] * sa[1] * sa[2] * sb[2] / best / 1e12
    return rates


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


def official_per_epoch(
    x: torch.Tensor, y: torch.Tensor, m: int, nb: int, g: torch.Generator
) -> tuple[float, float]:
    """Seconds per model per epoch (teacher, student) of the paper's algorithm, ``m`` models."""
    init = init_params(SIZES, m, g)

    def train(n: int) -> list[torch.Tensor]:
        orders = itertools.islice(batch_orders(N_IMAGES, m, BATCH, False, g), n)
        return baseline.official_train(baseline.official_layout(init), x, y, 10, orders, 3e-4)

    def teachers(n: int) -> None:
        train(n)

    n_noise = (1 + nb) * BATCH
    noise = torch.rand(m, n_noise, 784, generator=g) * 2 - 1  # drawn once, as the paper's code
    trained = [p.detach() for p in train(1)]  # also the warm-up: torch.optim's first use imports

    def students(n: int) -> None:
        orders = itertools.islice(batch_orders(n_noise, m, BATCH, False, g), n)
        student = baseline.official_layout(init)
        baseline.official_distill(student, trained, slice(10, 13), noise, orders, 3e-4)

    t, ts = steady(teachers, nb)
    st, ss = steady(students, nb)
    return per_model_epoch(t, ts, m), per_model_epoch(st, ss, m)


def sublab_per_epoch(
    x: torch.Tensor,
    y: torch.Tensor,
    m: int,
    nb: int,
    g: torch.Generator,
    shared: bool,
    dtype: torch.dtype | None,
) -> tuple[float, float]:
    """Seconds per model per epoch (teacher, student) of sublab: m teachers, 4m students."""
    params, teachers = init_params(SIZES, m, g), init_params(SIZES, m, g)
    students = init_params(SIZES, 4 * m, g)
    index = torch.arange(m).repeat(4)
    aux, every = slice(10, 13), slice(0, 13)
    slices = [aux] * m + [every] * m + [aux] * m + [every] * m
    recipe = Recipe(1, 3e-4, BATCH, shared, dtype)

    def run_teachers(n: int) -> None:
        train_teachers(params, x[: n * BATCH], y[: n * BATCH], 10, recipe, g)

    def run_students(n: int) -> None:
        nr = NoiseRecipe("uniform", -1.0, 1.0, 1.0, n * BATCH)
        distill_students(students, teachers, index, slices, 784, nr, recipe, g)

    run_teachers(1)  # warm-up
    t, ts = steady(run_teachers, nb)
    st, ss = steady(run_students, nb)
    return per_model_epoch(t, ts, m), per_model_epoch(st, ss, 4 * m)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=int, default=20, help="teachers per stack (4× students)")
    ap.add_argument("--batches", type=int, default=3, help="steady batches timed per run")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--shared", action="store_true", help="also time sublab, shared batches")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    features = cpu_features()
    choice = resolve_dtype("auto", "cpu", features)
    print(f"CPU: {features.summary()}")
    print(machine_line())
    auto = "bfloat16" if choice.compute else "float32"
    print(f'dtype = "auto" here: {auto} ({choice.reason})')
    rates = {dt: matmul_tflops(dt) for dt in (torch.float32, torch.bfloat16)}
    for shape in rates[torch.float32]:
        f32, bf16 = rates[torch.float32][shape], rates[torch.bfloat16][shape]
        print(
            f"products {shape}: float32 {f32:.3f} TFLOP/s, bfloat16 {bf16:.3f} TFLOP/s"
            f" ({bf16 / f32:.2f}x)"
        )

    x, y, source = images()
    m, nb = args.models, args.batches
    g = torch.Generator().manual_seed(0)
    print(f"\ndata: {source}; MLP {SIZES}; batch {BATCH}; {args.threads} threads; {m} teachers,")
    print(f"{4 * m} students per stack; 1 + {nb} batches timed; epoch = {PER_EPOCH} batches")

    rows: list[tuple[str, float, float]] = []
    rows.append(("per-model baseline (float32)", *baseline_per_epoch(x, y, nb, g)))
    rows.append(("paper's algorithm (float32)", *official_per_epoch(x, y, m, nb, g)))
    modes = [False, True] if args.shared else [False]
    for shared in modes:
        for name, dt in (("float32", None), ("bfloat16", torch.bfloat16)):
            mode = ", shared batches" if shared else ""
            rows.append((f"sublab {name}{mode}", *sublab_per_epoch(x, y, m, nb, g, shared, dt)))

    print()
    print(f"{'seconds per model per epoch':<36} {'teacher':>8} {'student':>8} {'figure':>9}")
    for name, te, stu in rows:
        print(f"{name:<36} {te:8.3f} {stu:8.3f} {figure_minutes(te, stu):7.1f} min")
    figures = {name: figure_minutes(te, stu) for name, te, stu in rows}
    print("\nratios of projected figure times (higher: sublab faster):")
    for base in ("paper's algorithm (float32)", "per-model baseline (float32)"):
        for name in (n for n in figures if n.startswith("sublab")):
            print(f"  {base} / {name}: {figures[base] / figures[name]:.2f}x")
    for shared in modes:
        mode = ", shared batches" if shared else ""
        ratio = figures[f"sublab float32{mode}"] / figures[f"sublab bfloat16{mode}"]
        print(f"  sublab float32 / bfloat16{mode}: {ratio:.2f}x")
    flop = 2 * sum(a * b for a, b in itertools.pairwise(SIZES))
    work = MODELS_PAPER * EPOCHS * N_IMAGES * flop * (3 + 4 * 3 + 1)
    print(f"\npaper-scale work ≈ {work / 1e12:.0f} TFLOP (products only):")
    for name, minutes in figures.items():
        if not name.startswith("sublab"):
            continue
        rate = work / (minutes * 60) / 1e12
        peak = min(rates[torch.bfloat16 if "bfloat16" in name else torch.float32].values())
        print(f"  {name} sustains {rate:.3f} TFLOP/s = {rate / peak:.0%} of its product rate")


if __name__ == "__main__":
    main()
