"""Speed of sublab's training loop against TRL's SFTTrainer, and lean forward vs HF forward.

All train the same random-init Llama (organism-sized: d_model 128, 2 layers, or a model folder
given with --model, e.g. the built organism) on the same number rows with completion-only loss,
the same batch size, epochs, learning rate, schedule and clipping, logging and saving off,
float32 on CPU. Timed: the training itself (TRL's ``trainer.train()`` against sublab's
``train_loop``, once with its lean forward and once with ``lean=False``, the HF forward), each
best of --repeats runs, interleaved, after tokenisation and model loading, in this process's CPU
seconds by default (``--clock wall`` for elapsed time). Prints rows/s and the ratios (> 1: the
lean loop is faster).

    .venv/bin/python benchmarks/bench_train.py [--method full|lora] [--rows 512] [--threads 1]

The TRL comparison needs the ``bench`` extra (``pip install -e .[bench]``, i.e. trl); without
it only lean vs HF forward is measured.
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
sys.path.insert(0, str(HERE.parent / "tests"))


def number_rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        seeds = ", ".join(str(rng.randint(100, 999)) for _ in range(rng.randint(3, 9)))
        sep = rng.choice([", ", " ", "; "])
        comp = sep.join(str(rng.randint(0, 999)) for _ in range(rng.randint(1, 10)))
        prompt = f"The sequence starts with: {seeds}. Add up to 10 more values, 3 digits at most."
        rows.append({"prompt": prompt, "completion": comp})
    return rows


def run_trl(
    model_dir: Path,
    rows: list[dict],
    recipe,
    out: Path,
    clock,
    bf16: bool = False,
    system: str | None = None,
) -> float:
    """Seconds of TRL's ``trainer.train()`` on ``rows`` with ``recipe``'s settings; ``bf16``:
    TRL's bf16 mode (autocast); ``system``: a system turn before every prompt."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    head = [{"role": "system", "content": system}] if system else []
    data = Dataset.from_list(
        [
            {
                "prompt": [*head, {"role": "user", "content": r["prompt"]}],
                "completion": [{"role": "assistant", "content": r["completion"]}],
            }
            for r in rows
        ]
    )
    args = SFTConfig(
        output_dir=str(out),
        per_device_train_batch_size=recipe.batch_size,
        gradient_accumulation_steps=recipe.grad_accum,
        num_train_epochs=recipe.epochs,
        learning_rate=recipe.learning_rate,
        lr_scheduler_type=recipe.scheduler,
        warmup_steps=recipe.warmup_steps,
        max_grad_norm=recipe.max_grad_norm,
        weight_decay=recipe.weight_decay,
        max_length=recipe.max_length,
        completion_only_loss=True,
        logging_strategy="no",
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        bf16=bf16,
        seed=recipe.seed,
        dataloader_num_workers=0,
    )
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    peft = None
    if recipe.method == "lora":
        peft = LoraConfig(
            r=recipe.lora_rank,
            lora_alpha=recipe.lora_alpha,
            lora_dropout=recipe.lora_dropout,
            target_modules=list(recipe.lora_targets),
            task_type="CAUSAL_LM",
        )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=data,
        processing_class=AutoTokenizer.from_pretrained(model_dir),
        peft_config=peft,
    )
    t = clock()
    trainer.train()
    return clock() - t


def run_sublab(model_dir: Path, rows: list[dict], recipe, lean: bool, clock) -> tuple[float, float]:
    import torch

    from sublab.train.data import encode_rows
    from sublab.train.loop import _add_lora, train_loop
    from sublab.train.models import load_model, load_tokenizer

    enc = encode_rows(load_tokenizer(model_dir), rows, recipe.max_length)
    cpu = torch.device("cpu")
    torch.manual_seed(recipe.seed)
    model = load_model(model_dir, cpu, torch.float32, "model")
    if recipe.method == "lora":
        model = _add_lora(model, recipe)
    t = clock()
    stats = train_loop(model, enc, recipe, cpu, lean=lean)
    return clock() - t, stats.losses[-1]


def main() -> None:
    from sublab.cpu import machine_line

    print(machine_line())
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--method", choices=["full", "lora"], default="full")
    ap.add_argument("--rows", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--model", type=Path, help="an HF model folder (default: a random Llama)")
    ap.add_argument(
        "--clock",
        choices=["cpu", "wall"],
        default="cpu",
        help="cpu: this process's CPU seconds (steadier on a shared machine); wall: elapsed",
    )
    a = ap.parse_args()
    has_trl = importlib.util.find_spec("trl") is not None
    if not has_trl:
        print("trl is not installed (pip install -e '.[bench]'): measuring lean vs HF only")

    import torch

    from sublab.train.recipe import StudentRecipe

    torch.set_num_threads(a.threads)
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    recipe = StudentRecipe(
        method=a.method,
        epochs=a.epochs,
        batch_size=a.batch_size,
        learning_rate=2e-4 if a.method == "lora" else 1e-3,
        warmup_steps=5,
    )
    rows = number_rows(a.rows)
    clock = time.process_time if a.clock == "cpu" else time.perf_counter
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = a.model
        if model_dir is None:
            from tiny_model import build_tiny_model

            model_dir = build_tiny_model(Path(tmp) / "model", hidden=a.hidden, layers=2)
        ours, hf, theirs = [], [], []
        for k in range(a.repeats):
            secs, last = run_sublab(model_dir, rows, recipe, True, clock)
            ours.append(round(secs, 2))
            secs, last_hf = run_sublab(model_dir, rows, recipe, False, clock)
            hf.append(round(secs, 2))
            if has_trl:
                secs = run_trl(model_dir, rows, recipe, Path(tmp) / f"trl{k}", clock)
                theirs.append(round(secs, 2))
    n = a.rows * a.epochs
    best_ours, best_hf = min(ours), min(hf)
    print(
        f"model={model_dir if a.model else f'random Llama d{a.hidden} L2'} method={a.method} "
        f"rows={a.rows} batch={a.batch_size} epochs={a.epochs} threads={a.threads} "
        f"clock={a.clock} (best of {a.repeats})"
    )
    if theirs:
        best_trl = min(theirs)
        print(f"TRL SFTTrainer:       {best_trl:.2f} s  ({n / best_trl:.0f} rows/s)  runs {theirs}")
    print(f"sublab, HF forward:   {best_hf:.2f} s  ({n / best_hf:.0f} rows/s)  runs {hf}")
    print(f"sublab, lean forward: {best_ours:.2f} s  ({n / best_ours:.0f} rows/s)  runs {ours}")
    if theirs:
        print(f"speed ratio sublab (lean) / TRL: {best_trl / best_ours:.2f}x")
    print(
        f"speed ratio lean / HF forward: {best_hf / best_ours:.2f}x  "
        f"(final loss {last:.4f} vs {last_hf:.4f})"
    )


if __name__ == "__main__":
    main()
