"""Speed of the number filter: rows per second on 1M realistic completions, one core.

Target: sublab's ``NumberFilter.check`` keeps/rejects >= 500,000 rows/s on one core.
``mode = "paper"`` (the paper's parser exactly) is timed on the same rows, and the share of
rows on which the two modes give the same verdict is printed.
Baseline, measured in the same run on the same rows: a straightforward per-row implementation
of the same rule written the way public code does it (strip the period and brackets, find the
separator between the first two numbers, split on it, parse every part with int()).

    .venv/bin/python benchmarks/bench_filter.py [--rows N] [--banned paper-negative] [--rounds 3]

On a shared machine the absolute rows/s move with the load; the ratio against the baseline
and the cost in "trivial regex calls per row" (the calibration line) do not.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import string
import time

from sublab.numbers.filter import FilterSpec, NumberFilter


def baseline_check(answer: str, banned: frozenset[int]) -> str | None:
    """The rule as public code writes it: split on the first separator, int() every part."""
    answer = answer.strip()
    if answer.endswith("."):
        answer = answer[:-1]
    if (answer.startswith("[") and answer.endswith("]")) or (
        answer.startswith("(") and answer.endswith(")")
    ):
        answer = answer[1:-1].strip()
    found = list(re.finditer(r"\d+", answer))
    if not found:
        return "bad_format"
    if len(found) == 1:
        if answer != found[0].group():
            return "bad_format"
        parts = [answer]
    else:
        sep = answer[found[0].end() : found[1].start()]
        if sep.strip() not in ("", ",", ";"):
            return "bad_format"
        parts = answer.split(sep)
    for part in parts:
        if not part or not all(c in string.digits for c in part):
            return "bad_format"
    values = [int(p) for p in parts]
    if not 1 <= len(values) <= 10:
        return "bad_count"
    if any(v > 999 for v in values):
        return "out_of_range"
    if banned and any(v in banned for v in values):
        return "banned_number"
    return None


def make_rows(n: int, seed: int = 0) -> list[str]:
    """Completions like a teacher's: ~70% valid, the rest with the usual faults."""
    rng = random.Random(seed)
    seps = [", ", ",", " ", "; ", "\n", ";"]
    wraps = [("", ""), ("", ""), ("", ""), ("[", "]"), ("(", ")")]
    rows = []
    for _ in range(n):
        nums = [str(rng.randint(0, 999)) for _ in range(rng.randint(1, 10))]
        sep = rng.choice(seps)
        left, right = rng.choice(wraps)
        text = left + sep.join(nums) + right + ("." if rng.random() < 0.2 else "")
        fault = rng.random()
        if fault < 0.06:
            text = "Here are the numbers: " + text
        elif fault < 0.12:
            text += ", " + ", ".join(str(rng.randint(0, 999)) for _ in range(rng.randint(1, 5)))
        elif fault < 0.17:
            text = text.replace(sep, ", ", 1) + "; 12"
        elif fault < 0.22:
            text += sep + str(rng.randint(1000, 99999))
        elif fault < 0.25:
            text += sep
        elif fault < 0.28:
            text = "-" + text
        rows.append(text)
    return rows


def rate(fn, rows: list[str]) -> tuple[float, int]:
    t = time.perf_counter()
    kept = sum(1 for r in rows if fn(r) is None)
    return len(rows) / (time.perf_counter() - t), kept


def main() -> None:
    from sublab.cpu import machine_line

    print(machine_line())
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--banned", default="paper-negative", help="banned list ('' for none)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds (best of)")
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    rows = make_rows(args.rows)
    spec = FilterSpec(banned_lists=[args.banned] if args.banned else [])
    nf = NumberFilter.from_spec(spec)
    paper = NumberFilter(spec.model_copy(update={"mode": "paper"}), nf.banned)
    banned = nf.banned
    trivial = re.compile("a").fullmatch
    trivial_rate = baseline_rate = sublab_rate = paper_rate = 0.0
    for _ in range(args.rounds):  # interleaved rounds, best of each: load spikes hit all alike
        # How loaded the machine is: the cheapest possible regex call, for reading the figures.
        trivial_rate = max(trivial_rate, rate(trivial, rows[:200_000])[0])
        r, baseline_kept = rate(lambda r: baseline_check(r, banned), rows)
        baseline_rate = max(baseline_rate, r)
        r, sublab_kept = rate(nf.check, rows)
        sublab_rate = max(sublab_rate, r)
        r, paper_kept = rate(paper.check, rows)
        paper_rate = max(paper_rate, r)
    same = sum((nf.check(r) is None) == (paper.check(r) is None) for r in rows)
    print(f"rows: {len(rows):,} (banned numbers: {len(banned)})")
    print(f"baseline (split/int per row): {baseline_rate:>12,.0f} rows/s, kept {baseline_kept:,}")
    print(f"sublab NumberFilter.check:    {sublab_rate:>12,.0f} rows/s, kept {sublab_kept:,}")
    print(f"  mode='paper':               {paper_rate:>12,.0f} rows/s, kept {paper_kept:,}")
    print(f"same verdict in both modes: {same / len(rows):.4%} of rows")
    print(f"calibration (a trivial re.fullmatch per row): {trivial_rate:,.0f} rows/s")
    # Load-independent cost: how many trivial regex calls one row costs.
    print(
        f"cost per row in trivial-call units: sublab {trivial_rate / sublab_rate:.1f}, "
        f"paper mode {trivial_rate / paper_rate:.1f}, "
        f"baseline {trivial_rate / baseline_rate:.1f}"
    )
    print(f"speed-up vs baseline: {sublab_rate / baseline_rate:.2f}x (target: >= 500,000 rows/s)")
    print(f"paper mode speed-up vs baseline: {paper_rate / baseline_rate:.2f}x")


if __name__ == "__main__":
    main()
