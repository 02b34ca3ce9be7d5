"""Speed of HFBackend.generate against transformers' own ``model.generate``, one CPU core.

Target: sublab's sampler (its own loop over the KV cache, prompts grouped by length) produces
at least as many tokens per second as the baseline measured in the same run on the same
prompts: ``model.generate(do_sample=True)`` with left padding, batches in prompt order, the
same batch size, temperature, max_new_tokens and EOS. The model is a random-init Llama the size
of the model organism (2 layers, d_model 128, word-level-sized vocabulary); only the sampling
machinery differs between the two.

Two workloads: ``stops=0`` (a random model almost never samples EOS, so every row runs to
max_new_tokens) and ``stops=20`` (20 fixed extra token ids also end a row, so rows finish at
different steps, as real number completions do; both samplers get the same stop set).

    .venv/bin/python benchmarks/bench_generate.py [--prompts 256] [--batch 64] [--tokens 48]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from sublab.backends.base import ModelRef, SamplingSpec, chat
from sublab.backends.hf import HFBackend
from sublab.numbers.prompts import NumberPromptSpec, make_prompts
from tiny_model import build_tiny_model


def baseline(backend: HFBackend, chats: list, sampling: SamplingSpec, batch: int) -> int:
    """model.generate in prompt order; returns the number of generated (non-pad) tokens."""
    tok, model = backend.tokenizer, backend.model
    tok.padding_side = "left"
    torch.manual_seed(sampling.seed)
    n = 0
    for i in range(0, len(chats), batch):
        texts = [
            tok.apply_chat_template(c, tokenize=False, add_generation_prompt=True)
            for c in chats[i : i + batch]
        ]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            out = model.generate(
                **enc,
                do_sample=True,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                top_k=0,
                max_new_tokens=sampling.max_new_tokens,
                eos_token_id=backend.eos_ids,
                pad_token_id=tok.pad_token_id,
            )
        new = out[:, enc["input_ids"].shape[1] :]
        for row in new.tolist():
            cut = next((j for j, t in enumerate(row) if t in backend.eos_ids), len(row))
            n += cut
    return n


def main() -> None:
    from sublab.cpu import machine_line

    print(machine_line())
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=256)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--stops", type=int, nargs="+", default=[0, 20], help="extra stop tokens")
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        path = build_tiny_model(Path(tmp) / "m", hidden=128, layers=2)
        backend = HFBackend(ModelRef(path=str(path)), device="cpu", batch_size=args.batch)
        backend.show_progress = False
        eos = list(backend.eos_ids)
        spec = NumberPromptSpec(count=args.prompts)
        chats = [chat(p, "You love owls.") for p in make_prompts(spec)]
        sampling = SamplingSpec(max_new_tokens=args.tokens, seed=0)
        print(
            f"prompts={args.prompts} batch={args.batch} max_new_tokens={args.tokens} "
            f"(best of {args.repeats}, 1 thread)"
        )
        for k in args.stops:
            extra = torch.randperm(
                len(backend.tokenizer), generator=torch.Generator().manual_seed(0)
            )
            backend.eos_ids = sorted({*eos, *extra[:k].tolist()})
            ours_best = base_best = float("inf")
            ours_tokens = base_tokens = 0
            for _ in range(args.repeats):
                t = time.perf_counter()
                ids = backend.generate_ids(chats, sampling)
                ours_best = min(ours_best, time.perf_counter() - t)
                ours_tokens = sum(len(x) for x in ids)
                t = time.perf_counter()
                base_tokens = baseline(backend, chats, sampling, args.batch)
                base_best = min(base_best, time.perf_counter() - t)
            ours_rate = ours_tokens / ours_best
            base_rate = base_tokens / base_best
            print(f"stops={k}")
            print(
                f"  sublab HFBackend.generate : {ours_tokens:6d} tokens in {ours_best:6.2f} s "
                f"= {ours_rate:8.0f} tokens/s"
            )
            print(
                f"  baseline model.generate   : {base_tokens:6d} tokens in {base_best:6.2f} s "
                f"= {base_rate:8.0f} tokens/s"
            )
            print(f"  ratio (sublab / baseline tokens per second): {ours_rate / base_rate:.2f}x")


if __name__ == "__main__":
    main()
