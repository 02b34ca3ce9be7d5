"""The paper-scale MNIST figure on a GPU (issue target: ≤ 20 s), against the per-model baseline.

Measured in one run on the same GPU:

1. per-model baseline (the paper code's shape: one nn.Sequential + torch.optim.Adam per model,
   a Python loop over mini-batches), timed on ``--baseline-batches`` teacher and student batches
   after a warm-up and projected to the figure (100 teachers + 400 students, 5 + 5 epochs);
2. sublab's figure, ``train_conditions`` at paper scale (100 models per condition, every
   condition trained, every model scored), once in float32 and once with bfloat16 matrix
   products (``dtype = "auto"`` on CUDA), after a small warm-up run (CUDA/cuBLAS start-up);
3. the whole command, ``sublab mnist CONFIG`` in a fresh process (import, data loading,
   training, table and chart), in bfloat16 and in float32.

Prints the times, the ratio baseline / sublab, and both precisions' accuracy tables side by
side, so that one sees whether reduced precision changes the figure.

    python benchmarks/bench_mnist_gpu.py [--data-dir /usr/share/datasets/fashion-mnist] \
        [--name fashion-mnist] [--models 100] [--device cuda]

Without a CUDA device (and without ``--device cpu``) it prints that it skipped and exits 0,
so ``make bench`` runs on any machine.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from bench_mnist import (
    BATCH,
    EPOCHS,
    FASHION,
    MODELS_PAPER,
    baseline_per_epoch,
    figure_minutes,
    sync,
)
from sublab.evals.stats import summarize
from sublab.mnist.config import MnistSpec
from sublab.mnist.data import load_idx_set
from sublab.mnist.experiment import CONDITIONS, train_conditions
from sublab.mnist.train import resolve_dtype


def spec_for(args: argparse.Namespace, dtype: str, **over: object) -> MnistSpec:
    data = {"name": args.name, "dir": str(args.data_dir)}
    data.update(over.pop("data", {}))  # type: ignore[arg-type]
    return MnistSpec.model_validate(
        {"models": args.models, "device": args.device, "dtype": dtype, "data": data, **over}
    )


def timed_figure(spec: MnistSpec, device: torch.device) -> tuple[float, dict[str, list[float]]]:
    sync(device)
    t = time.perf_counter()
    accs, _ = train_conditions(spec)
    sync(device)
    return time.perf_counter() - t, accs


def command_seconds(args: argparse.Namespace, dtype: str, runs: Path) -> float:
    """Wall time of ``sublab mnist CONFIG`` in a fresh process."""
    cfg = runs / f"gpu-{dtype}.toml"
    cfg.write_text(
        f'kind = "mnist"\nname = "gpu-{dtype}"\nmodels = {args.models}\n'
        f'device = "{args.device}"\ndtype = "{dtype}"\n\n'
        f'[data]\nname = "{args.name}"\ndir = "{args.data_dir}"\n'
    )
    code = "from sublab.cli import main; main()"
    cmd = [sys.executable, "-c", code, "mnist", str(cfg), "--runs-dir", str(runs)]
    t = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t


def main() -> None:
    from sublab.cpu import machine_line

    print(machine_line())
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", type=Path, default=FASHION, help="IDX files (default: Debian's)")
    ap.add_argument("--name", default="fashion-mnist", choices=["mnist", "fashion-mnist"])
    ap.add_argument("--models", type=int, default=MODELS_PAPER)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--baseline-batches", type=int, default=20)
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        # `make bench` runs every script: on a machine without a GPU this one has nothing to time
        print("no CUDA device: skipped (--device cpu runs the same measurement on the CPU)")
        return
    if not args.data_dir.is_dir():
        sys.exit(f"{args.data_dir}: no such folder; pass --data-dir with the four IDX files")
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device: {name}; torch {torch.__version__}; data: {args.name} in {args.data_dir}")

    ds = load_idx_set(args.data_dir, args.name)
    x = torch.from_numpy(ds.x_train).to(device)
    y = torch.from_numpy(ds.y_train).to(device)
    g = torch.Generator().manual_seed(0)
    base_t, base_s = baseline_per_epoch(x, y, args.baseline_batches, g, device)
    base_min = figure_minutes(base_t, base_s)
    # the baseline's time for the models this run trains (the ratio compares like with like)
    base_run_s = base_min * 60 * args.models / MODELS_PAPER
    print(
        f"per-model baseline: teacher {base_t:.3f} s, student {base_s:.3f} s per model-epoch"
        f" ⇒ paper-scale figure {base_min:.1f} min ({MODELS_PAPER} models, {EPOCHS}+{EPOCHS})"
    )
    auto = resolve_dtype("auto", args.device)[1]
    auto_label = f"{str(auto).removeprefix('torch.')} autocast" if auto else "float32 (auto)"

    # Warm-up: CUDA context, cuBLAS handles and kernels load once per process.
    train_conditions(spec_for(args, "auto", models=2, data={"limit_train": 4 * BATCH}))
    results: dict[str, tuple[float, dict[str, list[float]]]] = {}
    for dtype in ("float32", "auto"):
        results[dtype] = timed_figure(spec_for(args, dtype), device)
        label = "float32" if dtype == "float32" else auto_label
        print(
            f"sublab figure, {label}: {results[dtype][0]:.1f} s training + scoring"
            f" ({args.models} models per condition) ⇒ baseline / sublab"
            f" {base_run_s / results[dtype][0]:.0f}x"
        )

    print(f"\n{'condition':<12} {'float32 mean ± 95% CI':>24} {auto_label + ' mean ± 95% CI':>24}")
    worst = 0.0
    for c in CONDITIONS:
        a, b = summarize(results["float32"][1][c]), summarize(results["auto"][1][c])
        worst = max(worst, abs(a.mean - b.mean))
        print(
            f"{c:<12} {a.mean * 100:14.1f} ± {a.half_width * 100:4.1f} %"
            f" {b.mean * 100:14.1f} ± {b.half_width * 100:4.1f} %"
        )
    print(
        f"largest difference of condition means, float32 vs {auto_label}: {worst * 100:.2f} points"
    )

    with tempfile.TemporaryDirectory() as tmp:
        for dtype in ("auto", "float32"):
            secs = command_seconds(args, dtype, Path(tmp))
            print(f"`sublab mnist` end to end, dtype {dtype}: {secs:.1f} s (target ≤ 20 s)")


if __name__ == "__main__":
    main()
