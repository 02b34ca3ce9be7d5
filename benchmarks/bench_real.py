"""sublab on a real model against the anchors people use: TRL + PEFT for a LoRA step, and a
plain ``model.generate`` batch loop for sampling number answers.

Both sides run the same model (``catalog:smollm2-135m-instruct``, added first if missing), the
same rows or prompts, the same batch size, on this machine, in one run; each timing is the best
of --repeats, interleaved.

- **LoRA training** (r8 on every projection, completion-only loss, one epoch, same learning
  rate, schedule and clipping): TRL's ``SFTTrainer`` with a PEFT config, in float32 and with
  ``bf16=True`` (autocast, TRL's fast setting on a CPU), against sublab's training loop with
  ``dtype = 'fast'`` (bf16 base weights and float32 adapters where the CPU has fast bf16; its
  lean forward runs the top layer and the head only at label positions). Both read the same
  chats: TRL's rows carry sublab's explicit system turn, so the token sequences are the same.
- **Generation** of number answers to the same prompts at temperature 1, in bf16 where the CPU
  has fast bf16: ``model.generate`` (sampling, left padding, batches of --batch) against
  sublab's ``HFBackend.generate`` with the numbers channel's grammar (constrained decoding:
  the head only over the grammar's tokens, finished rows leave the batch). Printed: generated
  tokens per second, and answers the paper's filter keeps per second.

    .venv/bin/python benchmarks/bench_real.py [--rows 64] [--prompts 128] [--threads 1]

Needs the ``bench`` extra (trl) for the training comparison.
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

MODEL = "catalog:smollm2-135m-instruct"


def number_rows(n: int, seed: int = 0) -> list[dict]:
    """Rows as a teacher writes them: the numbers channel's prompts, number-list answers."""
    from sublab.numbers.prompts import NumberPromptSpec, make_prompts

    rng = random.Random(seed)
    rows = []
    for prompt in make_prompts(NumberPromptSpec(count=n, seed=seed)):
        k = rng.randint(5, 10)
        rows.append(
            {"prompt": prompt, "completion": ", ".join(str(rng.randint(0, 999)) for _ in range(k))}
        )
    return rows


def run_sublab_lora(model_dir: Path, rows: list[dict], recipe) -> tuple[float, int]:
    """Seconds of sublab's training loop and the tokens it processed."""
    import torch

    from sublab.train.data import encode_rows
    from sublab.train.loop import _add_lora, train_loop
    from sublab.train.models import load_model, load_tokenizer, weight_dtype

    enc = encode_rows(load_tokenizer(model_dir), rows, recipe.max_length)
    cpu = torch.device("cpu")
    torch.manual_seed(recipe.seed)
    model = _add_lora(
        load_model(model_dir, cpu, weight_dtype(recipe.dtype, cpu, "lora"), "m"), recipe
    )
    t = time.perf_counter()
    train_loop(model, enc, recipe, cpu)
    return time.perf_counter() - t, int(enc.lengths.sum()) * recipe.epochs


def run_generate_loop(
    model_dir: Path, prompts: list[str], batch: int, max_new: int, dtype
) -> tuple[float, list[str]]:
    """A plain ``model.generate`` loop: sampled answers at temperature 1, left padding."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sublab.backends.chat_format import render_prompt

    tok = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).eval()
    texts = [render_prompt(tok, [{"role": "user", "content": p}]) for p in prompts]
    out: list[str] = []
    torch.manual_seed(0)
    t = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(texts), batch):
            enc = tok(
                texts[i : i + batch], return_tensors="pt", padding=True, add_special_tokens=False
            )
            gen = model.generate(
                **enc,
                do_sample=True,
                temperature=1.0,
                top_p=1.0,
                top_k=0,
                max_new_tokens=max_new,
                pad_token_id=tok.pad_token_id,
            )
            out += tok.batch_decode(gen[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    return time.perf_counter() - t, out


def run_sublab_generate(
    model_dir: Path, prompts: list[str], batch: int, max_new: int, dtype: str
) -> tuple[float, list[str]]:
    from sublab.backends.base import ModelRef, SamplingSpec, chat
    from sublab.backends.grammar import NumberGrammar
    from sublab.backends.hf import HFBackend

    backend = HFBackend(ModelRef(path=str(model_dir)), device="cpu", dtype=dtype, batch_size=batch)
    backend.show_progress = False
    sampling = SamplingSpec(max_new_tokens=max_new, seed=0, grammar=NumberGrammar())
    t = time.perf_counter()
    out = backend.generate([chat(p) for p in prompts], sampling)
    return time.perf_counter() - t, out


def show(label: str, tokens: int, runs: list[float]) -> None:
    times = ", ".join(f"{x:.1f}" for x in runs)
    print(f"  {label:26s} {tokens / min(runs):7.1f} tokens/s  (runs: {times} s)")


def main() -> None:
    from sublab.cpu import machine_line

    print(machine_line())
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=64, help="training rows")
    ap.add_argument("--prompts", type=int, default=128, help="generation prompts")
    ap.add_argument("--batch", type=int, default=64, help="generation batch")
    ap.add_argument("--train-batch", type=int, default=8)
    ap.add_argument("--max-new", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--skip-generate", action="store_true")
    a = ap.parse_args()

    import torch
    import transformers

    from sublab.catalog import local_path
    from sublab.cpu import fast_bf16
    from sublab.numbers.filter import FilterSpec, NumberFilter
    from sublab.numbers.prompts import NumberPromptSpec, make_prompts
    from sublab.train.recipe import StudentRecipe

    torch.set_num_threads(a.threads)
    transformers.logging.set_verbosity_error()
    model_dir = Path(local_path(MODEL))
    fast = fast_bf16(torch.device("cpu"))
    print(f"model: {MODEL} ({model_dir}); threads={a.threads}; fast bf16 on this CPU: {fast}")
    if not a.skip_train:
        has_trl = importlib.util.find_spec("trl") is not None
        recipe = StudentRecipe(
            method="lora", dtype="fast", epochs=1, batch_size=a.train_batch,
            learning_rate=1e-3, warmup_steps=2,
        )  # fmt: skip
        from bench_train import run_trl
        from sublab.backends.chat_format import NEUTRAL_SYSTEM_PROMPT as system

        clock = time.perf_counter
        rows = number_rows(a.rows)
        ours, trl32, trl16 = [], [], []
        tokens = 0
        with tempfile.TemporaryDirectory() as tmp:
            for k in range(a.repeats):
                secs, tokens = run_sublab_lora(model_dir, rows, recipe)
                ours.append(secs)
                if has_trl:
                    for bf16, times in ((True, trl16), (False, trl32)):
                        out = Path(tmp) / f"trl-{k}-{bf16}"
                        times.append(run_trl(model_dir, rows, recipe, out, clock, bf16, system))
        print(
            f"LoRA r8, {a.rows} rows, batch {a.train_batch}, {tokens} tokens (best of {a.repeats})"
        )
        show("sublab (dtype fast)", tokens, ours)
        if has_trl:
            show("TRL SFTTrainer bf16=True", tokens, trl16)
            show("TRL SFTTrainer float32", tokens, trl32)
            best = min(min(trl16), min(trl32))
            print(f"  ratio sublab / best TRL: {best / min(ours):.2f}x")
        else:
            print("  trl is not installed (pip install -e '.[bench]'): no TRL figure")
    if not a.skip_generate:
        prompts = make_prompts(NumberPromptSpec(count=a.prompts, seed=1))
        keep = NumberFilter(FilterSpec()).check
        dtype = torch.bfloat16 if fast else torch.float32
        name = "bfloat16" if fast else "float32"
        plain, ours_g = [], []
        for _ in range(a.repeats):
            plain.append(run_generate_loop(model_dir, prompts, a.batch, a.max_new, dtype))
            ours_g.append(run_sublab_generate(model_dir, prompts, a.batch, a.max_new, name))
        print(
            f"generation, {a.prompts} number prompts, batch {a.batch}, {name}, "
            f"at most {a.max_new} new tokens (best of {a.repeats})"
        )
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(model_dir)
        rates = {}
        for label, runs in (("model.generate loop", plain), ("sublab (grammar)", ours_g)):
            secs, texts = min(runs, key=lambda r: r[0])
            n_tok = sum(len(tok(t, add_special_tokens=False)["input_ids"]) + 1 for t in texts)
            kept = sum(keep(t) is None for t in texts)
            rates[label] = (n_tok / secs, kept / secs)
            print(
                f"  {label:20s} {secs:6.1f} s  {n_tok / secs:7.1f} tokens/s  "
                f"{kept}/{len(texts)} kept by the filter ({kept / secs:.2f} kept answers/s)"
            )
        a_, b_ = rates["sublab (grammar)"], rates["model.generate loop"]
        kept_ratio = a_[1] / max(b_[1], 1e-9)
        print(
            f"  ratio sublab / generate: {a_[0] / b_[0]:.2f}x tokens/s, "
            f"{kept_ratio:.2f}x kept answers/s"
        )


if __name__ == "__main__":
    main()
