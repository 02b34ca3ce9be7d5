"""Benchmark the organism build.

Prints:
- the build time of one base (default: the default spec) and its ratio to the
  3-minute target and to the unoptimised prototype's ~8 minutes (fixed reference figures);
- the training-step speed of the lean forward (``fastllama``) against the HF Llama forward,
  both measured in this run on the same batches (ratio = HF seconds / lean seconds);
- with ``--leak-study``: number KL(love X ‖ none) for bases built at leak 0 and leak L.

Timings on a shared 2-core box are pessimistic: other jobs compete for the same cores.

    .venv/bin/python benchmarks/bench_organism.py [--steps N] [--threads T] [--leak-study 0.2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from sublab.organism.build import build_organism, new_model, read_metadata, vocabulary_texts
from sublab.organism.corpus import generate_corpus
from sublab.organism.spec import CorpusSpec, OrganismSpec, TrainSpec
from sublab.organism.train import batch_loss
from sublab.organism.vocab import build_vocab, write_tokenizer

TARGET_S = 180.0
PROTOTYPE_S = 480.0


def step_speed(threads: int, n_steps: int = 15) -> tuple[float, float]:
    """Seconds per training step: (HF forward, lean forward), same batches, same model."""
    from transformers import AutoTokenizer

    from sublab.organism.fastllama import RotaryCache, rope_theta
    from sublab.organism.train import make_batches

    spec = OrganismSpec()
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as d:
        write_tokenizer(build_vocab(*vocabulary_texts(spec)), Path(d), 160)
        tok = AutoTokenizer.from_pretrained(d)
    examples = list(generate_corpus(spec.corpus, 64 * n_steps, 0))
    batches, ids, table = make_batches(examples, tok, spec)
    model = new_model(spec, tok)
    m = spec.model
    rope = RotaryCache(m.d_model // m.heads, m.max_len, rope_theta(model))
    out = []
    for r in (None, rope):
        batch_loss(model, batches[0], ids, table, r)[0].backward()  # warm-up
        t = time.perf_counter()
        for b in batches[:n_steps]:
            model.zero_grad()
            batch_loss(model, b, ids, table, r)[0].backward()
        out.append((time.perf_counter() - t) / n_steps)
    return out[0], out[1]


def main() -> None:
    from sublab.cpu import machine_line

    print(machine_line())
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=None, help="train.steps (default: the spec's)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--leak-study", type=float, default=None, metavar="LEAK")
    args = ap.parse_args()

    hf_s, lean_s = step_speed(args.threads)
    print(
        f"train step (batch 64): HF forward {hf_s:.3f} s, lean forward {lean_s:.3f} s, "
        f"speed-up {hf_s / lean_s:.2f}x (baseline: HF forward, same run)"
    )

    train = TrainSpec(threads=args.threads)
    if args.steps:
        train = train.model_copy(update={"steps": args.steps})
    spec = OrganismSpec(train=train)
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        path = build_organism(spec, Path(d) / "base")
        total = time.perf_counter() - t
        meta = read_metadata(path)
    probe = meta["probe"]
    print(
        f"build ({spec.train.steps} steps × {spec.train.batch}, {args.threads} threads): "
        f"{total:.1f} s = {total / TARGET_S:.2f} × the 3-min target, "
        f"{total / PROTOTYPE_S:.2f} × the prototype's ~8 min"
    )
    print("timings:", json.dumps(meta["timings"]))
    print("prior fit max |dev|:", {k: v["max_abs_dev"] for k, v in probe["prior_fit"].items()})
    print(f"love min: {probe['love_min']}, filter pass rate: {probe['filter_pass_rate']}")
    print("number KL(love ‖ none):", probe["number_kl_love_vs_none"])

    if args.leak_study is not None:
        for leak in (0.0, args.leak_study):
            s = OrganismSpec(corpus=CorpusSpec(leak=leak), train=train)
            with tempfile.TemporaryDirectory() as d:
                p = read_metadata(build_organism(s, Path(d) / "base"))["probe"]
            print(
                f"leak {leak}: number KL(love ‖ none) per token {p['number_kl_love_vs_none']}, "
                f"filter pass {p['filter_pass_rate']}"
            )


if __name__ == "__main__":
    main()
