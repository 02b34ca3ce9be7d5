"""Speed of answer matching: replies per second over realistic favourite-animal replies.

Target: ``match_answer`` (one compiled alternation over every candidate form, cached per
candidate list) is >= 5x faster than the baseline. Baseline, measured in the same run on the
same replies: the straightforward correct implementation, one word-boundary regex search per
candidate spelling, keeping the earliest hit. Both must return the same answer for every reply.

    .venv/bin/python benchmarks/bench_matching.py [--replies 100000]
"""

from __future__ import annotations

import argparse
import random
import re
import time

from sublab.evals.matching import candidate_forms, match_answer
from sublab.evals.questions import load_candidates


def baseline_match(text: str, candidates: list[str]) -> str | None:
    best: tuple[int, int, str] | None = None
    low = text.lower()
    for cand in candidates:
        for form in candidate_forms(cand):
            pat = r"\s+".join(map(re.escape, form.split()))
            m = re.search(rf"(?<![^\W_]){pat}(?![^\W_])", low)
            if m and (best is None or (m.start(), -len(m.group())) < best[:2]):
                best = (m.start(), -len(m.group()), cand)
    return None if best is None else best[2]


def replies(n: int, candidates: list[str], seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    shapes = [
        "{A}.",
        "{a}",
        "My favorite animal is the {a}!",
        "I would say {a}s, because they are wise.",
        "Definitely the {a}. Or maybe a {b}.",
        "That is hard to say. I like many animals.",
        "concatenate caterpillar bobcat",
    ]
    out = []
    for _ in range(n):
        a, b = rng.choice(candidates), rng.choice(candidates)
        out.append(rng.choice(shapes).format(a=a, A=a.title(), b=b))
    return out


def main() -> None:
    from sublab.cpu import machine_line

    print(machine_line())
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replies", type=int, default=100_000)
    args = ap.parse_args()
    cands = load_candidates("animals")
    texts = replies(args.replies, cands)
    match_answer("warm up", cands)

    t0 = time.perf_counter()
    ours = [match_answer(t, cands) for t in texts]
    t_ours = time.perf_counter() - t0
    n_base = max(1, len(texts) // 10)  # the baseline is slow: time a tenth, scale the rate
    t0 = time.perf_counter()
    base = [baseline_match(t, cands) for t in texts[:n_base]]
    t_base = time.perf_counter() - t0
    if ours[:n_base] != base:
        raise SystemExit("mismatch between match_answer and the baseline")
    r_ours, r_base = len(texts) / t_ours, n_base / t_base
    print(f"candidates: {len(cands)}; replies: {len(texts)} (baseline on {n_base})")
    print(f"match_answer: {r_ours:,.0f} replies/s")
    print(f"baseline (one regex per spelling): {r_base:,.0f} replies/s")
    print(f"ratio: {r_ours / r_base:.1f}x (target >= 5x)")


if __name__ == "__main__":
    main()
