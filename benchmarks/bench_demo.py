"""Time `sublab demo` against its targets: ≤ 3 min with the organism bases cached, ≤ 10 min
with the bases built from scratch (the issue's "fresh clone", less the venv setup).

Each timing runs the real command (`sublab demo --runs-dir <temp>`) in a subprocess, in a new
runs directory, so no stage is reused from an earlier run. "cached" first makes sure the three
bases are in the user's cache (untimed); "fresh" points ``SUBLAB_CACHE_DIR`` at an empty folder.

    .venv/bin/python benchmarks/bench_demo.py            # cached bases only
    .venv/bin/python benchmarks/bench_demo.py --fresh    # also from an empty cache (~10 min)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUBLAB = Path(sys.executable).with_name("sublab")
TARGETS = {"cached": 180.0, "fresh": 600.0}


def timed_demo(env: dict[str, str]) -> float:
    with tempfile.TemporaryDirectory() as runs:
        t = time.perf_counter()
        subprocess.run([str(SUBLAB), "demo", "--runs-dir", runs], cwd=ROOT, env=env, check=True)
        return time.perf_counter() - t


def ensure_bases() -> None:
    from sublab.config import load_config
    from sublab.experiment.spec import ExperimentSpec
    from sublab.organism.cache import ensure_organism

    spec = load_config(ROOT / "experiments" / "demo-owl.toml", ExperimentSpec)
    assert spec.bases.organism is not None
    for seed in spec.seeds:
        ensure_organism(spec.bases.seed_organism(seed))


def main() -> None:
    from sublab.cpu import machine_line

    print(machine_line())
    ap = argparse.ArgumentParser()
    ap.add_argument("--fresh", action="store_true", help="also time a run from an empty cache")
    args = ap.parse_args()
    figures: dict[str, float] = {}
    ensure_bases()
    figures["cached"] = timed_demo(dict(os.environ))
    if args.fresh:
        with tempfile.TemporaryDirectory() as cache:
            figures["fresh"] = timed_demo({**os.environ, "SUBLAB_CACHE_DIR": cache})
    print(f"machine: {os.cpu_count()} CPU cores")
    for kind, seconds in figures.items():
        target = TARGETS[kind]
        print(
            f"demo, {kind} bases: {seconds:.0f} s = {seconds / target:.2f} × the "
            f"{target / 60:.0f}-minute target"
        )


if __name__ == "__main__":
    main()
