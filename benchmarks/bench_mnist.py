"""Speed of the MNIST auxiliary-logit experiment: batched models against a per-model loop.

Baseline, measured in the same run on the same data: the straightforward per-model fp32
implementation as the paper's code does it (one nn.Sequential and one torch.optim.Adam per model,
a Python loop over models and shuffled mini-batches; each student runs its teacher on every
noise batch). sublab: all models of a condition as one stack of [models, in, out] weights, a
batched Adam, and the four student conditions trained as one stack that shares each teacher
forward pass on the (shared) noise batch.

Data: Fashion-MNIST from /usr/share/datasets/fashion-mnist if installed, else random images of
the same shape (60,000 × 784): the timing does not depend on pixel values.
To keep the run short each epoch is timed over ``--batches`` batches and scaled to a full epoch
(60,000 images / 1024 per batch = 59 batches).

    .venv/bin/python benchmarks/bench_mnist.py [--models 10] [--batches 6] [--threads 2]

Prints seconds per model per epoch for both (teachers and students), the ratio, and the
projected time of the paper-scale figure: 100 models per condition, 5 teacher epochs and 5 student
epochs, 60,000 images and 60,000 noise images per epoch (100 teachers + 400 students).
It also times one fp32 and one bf16 matrix product so the dtype choice is measured, not assumed.
"""

from __future__ import annotations

import argparse
import itertools
import math
import time
from pathlib import Path

import numpy as np
import torch

from sublab.mnist import baseline
from sublab.mnist.data import load_idx_set
from sublab.mnist.mlp import init_params
from sublab.mnist.train import NoiseRecipe, Recipe, distill_students, train_teachers

FASHION = Path("/usr/share/datasets/fashion-mnist")
N_IMAGES, BATCH, EPOCHS, MODELS_PAPER = 60_000, 1024, 5, 100
SIZES = [784, 256, 256, 13]


def images() -> tuple[torch.Tensor, torch.Tensor, str]:
    if FASHION.is_dir():
        ds = load_idx_set(FASHION, "fashion-mnist")
        return torch.from_numpy(ds.x_train), torch.from_numpy(ds.y_train), "fashion-mnist"
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (N_IMAGES, 784)).astype(np.float32)
    y = rng.integers(0, 10, N_IMAGES)
    return torch.from_numpy(x), torch.from_numpy(y), "random 60000×784"


def matmul_tflops(dtype: torch.dtype, n: int, reps: int) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e12


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=int, default=10, help="models per condition to time")
    ap.add_argument("--batches", type=int, default=6, help="batches timed per epoch")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    x, y, source = images()
    per_epoch = math.ceil(N_IMAGES / BATCH)
    n_timed = args.batches * BATCH
    scale = per_epoch / args.batches
    g = torch.Generator().manual_seed(0)
    print(f"data: {source}; MLP {SIZES}; batch {BATCH}; {args.threads} threads")

    # ---- baseline: per-model loop (after one warm-up step: torch.optim's first use imports a lot)
    init = init_params(SIZES, 2, g)
    order = torch.randperm(N_IMAGES, generator=g)[:n_timed]
    batches = list(order.split(BATCH))
    warm = baseline.train_teacher(baseline.sequential_from(init, 0), x, y, 10, batches[:1], 3e-4)
    baseline.distill(baseline.sequential_from(init, 1), warm, slice(10, 13), [x[:BATCH]], 3e-4)
    t = time.perf_counter()
    teacher = baseline.train_teacher(baseline.sequential_from(init, 0), x, y, 10, batches, 3e-4)
    base_teacher = (time.perf_counter() - t) * scale
    noise = [torch.rand(BATCH, 784, generator=g) * 2 - 1 for _ in range(args.batches)]
    t = time.perf_counter()
    baseline.distill(baseline.sequential_from(init, 1), teacher, slice(10, 13), noise, 3e-4)
    base_student = (time.perf_counter() - t) * scale
    base_total = MODELS_PAPER * EPOCHS * (base_teacher + 4 * base_student)
    print(
        f"baseline  per model per epoch: teacher {base_teacher:.2f} s, student {base_student:.2f} s"
    )

    # ---- sublab: batched stacks
    m = args.models
    params = init_params(SIZES, m, g)
    recipe = Recipe(epochs=1, lr=3e-4, batch_size=BATCH)
    xs, ys = x[order], y[order]
    train_teachers(params, xs[:BATCH], ys[:BATCH], 10, recipe, g)  # warm-up
    t = time.perf_counter()
    teachers = train_teachers(params, xs, ys, 10, recipe, g)
    ours_teacher = (time.perf_counter() - t) * scale / m
    students = init_params(SIZES, 4 * m, g)
    idx = torch.arange(m).repeat(4)
    slices = [slice(10, 13)] * m + [slice(0, 13)] * m + [slice(10, 13)] * m + [slice(0, 13)] * m
    nr = NoiseRecipe("uniform", -1.0, 1.0, 1.0, n_timed)
    t = time.perf_counter()
    distill_students(students, teachers, idx, slices, 784, nr, recipe, g)
    ours_student = (time.perf_counter() - t) * scale / (4 * m)
    ours_total = MODELS_PAPER * EPOCHS * (ours_teacher + 4 * ours_student)
    print(
        f"sublab    per model per epoch: teacher {ours_teacher:.2f} s, student {ours_student:.2f} s"
        f" ({m} teachers / {4 * m} students per stack)"
    )
    print(
        f"ratio (baseline / sublab): teacher {base_teacher / ours_teacher:.2f}x, "
        f"student {base_student / ours_student:.2f}x, figure {base_total / ours_total:.2f}x"
    )
    print(
        f"projected paper-scale figure (100 teachers + 400 students, 5+5 epochs, 60k per epoch):"
        f" baseline {base_total / 60:.1f} min, sublab {ours_total / 60:.1f} min"
        f" (target 5 min: {'met' if ours_total <= 300 else 'NOT met'})"
    )
    flop = 2 * sum(a * b for a, b in itertools.pairwise(SIZES))
    work = MODELS_PAPER * EPOCHS * N_IMAGES * flop * (3 + 4 * 3 + 1)
    rate = work / ours_total / 1e12
    print(f"paper-scale work ≈ {work / 1e12:.0f} TFLOP ⇒ sublab sustains {rate:.3f} TFLOP/s")
    f32 = matmul_tflops(torch.float32, 512, 20)
    bf16 = matmul_tflops(torch.bfloat16, 128, 2)
    print(f"matmul on this CPU: float32 {f32:.3f} TFLOP/s, bfloat16 {bf16:.5f} TFLOP/s")


if __name__ == "__main__":
    main()
