"""``finetune``: train a student on (prompt, completion) rows and save it as an HF folder.

The loop is plain PyTorch: rows are encoded once (``sublab.train.data``), batches are
length-grouped slices of one padded tensor, the LM head runs only at completion positions, and
each optimizer step divides the summed token loss by the label tokens of all its micro-batches
(so gradient accumulation gives the same update as one big batch). Deterministic given the seed.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from sublab.errors import SublabError
from sublab.progress import progress
from sublab.store import atomic_output, atomic_write_json, package_versions
from sublab.train.data import (
    Encoded,
    check_rows,
    collate,
    completion_vocab,
    encode_rows,
    encode_teacher_view,
    length_grouped_batches,
)
from sublab.train.distill import hard_loss_sum, kl_sum
from sublab.train.models import (
    autocast,
    check_same_vocab,
    head_logits,
    label_hidden,
    load_model,
    load_tokenizer,
    resolve_device,
    weight_dtype,
)
from sublab.train.recipe import StudentRecipe
from sublab.train.teacher import TeacherStates

TRAIN_JSON = "train.json"


@dataclass
class TrainResult:
    """What ``finetune`` did; the same facts are in ``<path>/train.json``."""

    path: Path
    rows_given: int
    rows_used: int
    steps: int
    losses: list[float] = field(repr=False)
    seconds: float
    tokens_per_s: float
    label_tokens: int


def lr_lambda(scheduler: str, warmup: int, total: int) -> Any:
    """The multiplier of the peak rate at optimizer step ``s`` (HF Trainer's formulas)."""

    def f(s: int) -> float:
        if s < warmup:
            return s / max(1, warmup)
        if scheduler == "constant":
            return 1.0
        frac = (s - warmup) / max(1, total - warmup)
        if scheduler == "linear":
            return max(0.0, 1.0 - frac)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * frac)))

    return f


def subsample_indices(n: int, subsample: int | None, seed: int) -> list[int]:
    """Sorted indices of the rows to train on, drawn with ``seed`` (all rows if too few)."""
    if subsample is None or subsample >= n:
        return list(range(n))
    return sorted(random.Random(seed).sample(range(n), subsample))


def _plan(enc: Encoded, recipe: StudentRecipe) -> list[list[list[int]]]:
    """All optimizer steps of all epochs, each a list of micro-batches (row indices)."""
    rng = random.Random(recipe.seed)
    steps: list[list[list[int]]] = []
    for _ in range(recipe.epochs):
        batches = length_grouped_batches(enc.lengths, recipe.batch_size, rng)
        steps.extend(
            batches[k : k + recipe.grad_accum] for k in range(0, len(batches), recipe.grad_accum)
        )
    return steps


def _add_lora(model: Any, recipe: StudentRecipe) -> Any:
    from peft import LoraConfig, get_peft_model

    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    missing = [t for t in recipe.lora_targets if t not in names]
    if missing:
        linear = sorted(
            {
                n.rsplit(".", 1)[-1]
                for n, m in model.named_modules()
                if isinstance(m, torch.nn.Linear)
            }
        )
        raise SublabError(
            f"lora_targets: {missing} are not modules of this model; its linear layers are {linear}"
        )
    config = LoraConfig(
        r=recipe.lora_rank,
        lora_alpha=recipe.lora_alpha,
        lora_dropout=recipe.lora_dropout,
        target_modules=list(recipe.lora_targets),
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def _to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


@dataclass
class LoopStats:
    """The training loop's record: one loss and learning rate per optimizer step."""

    losses: list[float]
    lrs: list[float]
    tokens: int
    seconds: float

    @property
    def steps(self) -> int:
        return len(self.losses)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / max(self.seconds, 1e-9)


def make_optimizer(groups: list[dict[str, Any]], recipe: StudentRecipe) -> torch.optim.Optimizer:
    """The recipe's optimizer over parameter ``groups`` (each with its weight decay)."""
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(
            groups, lr=recipe.learning_rate, momentum=recipe.momentum, foreach=True
        )
    return torch.optim.AdamW(groups, lr=recipe.learning_rate, foreach=True)


def train_loop(
    model: Any,
    enc: Encoded,
    recipe: StudentRecipe,
    device: torch.device,
    *,
    teacher_model: Any = None,
    vocab: torch.Tensor | None = None,
    teacher_enc: Encoded | None = None,
    lean: bool = True,
    on_step: Callable[[int], None] | None = None,
) -> LoopStats:
    """Train ``model`` in place on ``enc`` (its trainable parameters only) and return the record.

    Hard labels when ``teacher_model`` is None; otherwise KL(teacher ‖ student) over the ids in
    ``vocab``, the teacher reading ``teacher_enc`` (the same rows with its system prompt, from
    :func:`~sublab.train.data.encode_teacher_view`) when given, else ``enc``; with several
    epochs its hidden states are computed once (:class:`~sublab.train.teacher.TeacherStates`).
    The loss of a step is the mean over the label tokens of all its micro-batches. ``lean`` runs
    the lean forward (:mod:`sublab.train.lean`) where the model supports it; ``False`` forces
    the HF forward. ``on_step(s)`` is called after optimizer step ``s`` (1, 2, ...).
    """
    if (teacher_model is None) != (vocab is None):
        raise ValueError("soft labels need both teacher_model and vocab")
    if teacher_enc is not None and (teacher_model is None or len(teacher_enc) != len(enc)):
        raise ValueError("teacher_enc needs a teacher_model and one row per row of enc")
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    # like HF Trainer: no weight decay on biases and norm weights (1-d parameters)
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": recipe.weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    optimizer = make_optimizer([g for g in groups if g["params"]], recipe)
    plan = _plan(enc, recipe)
    t_loop = time.perf_counter()  # includes the teacher's precomputed states

    def mixed() -> contextlib.AbstractContextManager[Any]:
        return autocast(device, recipe.dtype, recipe.method)

    teacher_states = None
    if teacher_model is not None:
        teacher_states = TeacherStates(
            teacher_model,
            enc if teacher_enc is None else teacher_enc,
            device,
            lean=lean,
            precompute=recipe.epochs > 1,
            batch_size=recipe.batch_size,
            mixed=mixed,
        )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(recipe.scheduler, recipe.warmup_steps, len(plan))
    )
    losses: list[float] = []
    lrs: list[float] = []
    seen_tokens = 0
    with progress() as bar:
        task = bar.add_task("finetune", total=len(plan))
        for micro in plan:
            n_labels = sum(int((enc.labels[b] != -100).sum()) for b in micro)
            step_loss = torch.zeros((), device=device)
            for idx in micro:
                cpu_batch = collate(enc, idx)
                seen_tokens += int(cpu_batch["attention_mask"].sum())
                batch = _to(cpu_batch, device)
                with mixed():
                    hidden, targets = label_hidden(model, batch, lean)
                    if teacher_states is None:
                        loss = hard_loss_sum(head_logits(model, hidden), targets)
                    else:
                        t_hidden, t_targets = teacher_states(idx)
                        with torch.no_grad():
                            t_logits = head_logits(teacher_model, t_hidden, vocab)
                        if not torch.equal(t_targets, targets):
                            raise SublabError(
                                "internal: teacher and student label tokens are misaligned"
                            )
                        s_logits = head_logits(model, hidden, vocab)
                        loss = kl_sum(t_logits, s_logits, recipe.soft_temperature)
                (loss / n_labels).backward()
                step_loss += loss.detach()
            if recipe.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(params, recipe.max_grad_norm)
            lrs.append(scheduler.get_last_lr()[0])
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(float(step_loss) / n_labels)
            bar.update(task, advance=1, description=f"finetune loss {losses[-1]:.4f}")
            if on_step is not None:
                on_step(len(losses))
    seconds = time.perf_counter() - t_loop
    if not all(math.isfinite(x) for x in losses):
        raise SublabError(
            f"training diverged (loss {losses[-1]}); lower learning_rate or use dtype float32"
        )

    return LoopStats(losses, lrs, seen_tokens, seconds)


def finetune(
    base: str | Path,
    rows: Sequence[dict[str, Any]],
    recipe: StudentRecipe,
    out_dir: str | Path,
    *,
    teacher: str | Path | None = None,
    teacher_system_prompt: str | None = None,
) -> TrainResult:
    """Fine-tune ``base`` on ``rows`` with ``recipe``; write an HF model folder to ``out_dir``.

    Rows are ``{"prompt", "completion", optional "system_prompt"}``; a row's system prompt is
    used when present (students are normally trained without one: leave it out of the rows).
    Soft labels need ``teacher``, a local model folder with the same tokenizer. With
    ``teacher_system_prompt`` the teacher reads each row with that system prompt (a prompted
    teacher) while the student reads it without; the soft targets are aligned on the
    completion tokens. ``out_dir`` must not exist or be empty; it appears only when complete.
    """
    check_rows(rows)
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SublabError(f"{out}: output folder exists and is not empty; pass a new folder")
    if recipe.labels == "soft" and teacher is None:
        raise SublabError("labels = 'soft' needs a teacher: pass teacher=<local model folder>")
    if teacher_system_prompt is not None and recipe.labels != "soft":
        raise SublabError(
            "teacher_system_prompt is for soft labels (the teacher's distributions); with "
            "labels = 'hard' the teacher's system prompt is already in how its rows were sampled"
        )
    t_start = time.perf_counter()
    used = subsample_indices(len(rows), recipe.subsample, recipe.seed)
    tokenizer = load_tokenizer(base, "base")
    used_rows = [rows[i] for i in used]
    enc = encode_rows(tokenizer, used_rows, recipe.max_length)
    device = resolve_device(recipe.device)
    dtype = weight_dtype(recipe.dtype, device, recipe.method)

    if recipe.checkpoints and recipe.checkpoints[-1] > (total := planned_steps(enc, recipe)):
        raise SublabError(
            f"checkpoints: step {recipe.checkpoints[-1]} is beyond this run's {total} optimizer "
            "steps; drop it or train longer"
        )
    torch.manual_seed(recipe.seed)
    model = load_model(base, device, dtype, "base")
    saved_dtype = model.dtype
    if recipe.method == "lora":
        model = _add_lora(model, recipe)
    teacher_model = None
    vocab = None
    teacher_enc = None
    if recipe.labels == "soft":
        assert teacher is not None
        check_same_vocab(tokenizer, load_tokenizer(teacher, "teacher"), teacher)
        teacher_model = load_model(teacher, device, dtype, "teacher").eval()
        teacher_model.requires_grad_(False)
        vocab = completion_vocab(enc).to(device)
        if teacher_system_prompt is not None:
            teacher_enc = encode_teacher_view(tokenizer, used_rows, enc, teacher_system_prompt)
    staging = out.with_name(f".{out.name}.checkpoints-{os.getpid()}")
    wanted = set(recipe.checkpoints)

    def save_checkpoint(step: int) -> None:
        if step in wanted:
            _save_checkpoint(model, tokenizer, recipe, staging / checkpoint_name(step), saved_dtype)

    try:
        stats = train_loop(
            model,
            enc,
            recipe,
            device,
            teacher_model=teacher_model,
            vocab=vocab,
            teacher_enc=teacher_enc,
            on_step=save_checkpoint,
        )
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    losses = stats.losses

    info = {
        "recipe": recipe.model_dump(mode="json"),
        "base": str(base),
        "teacher": None if teacher is None else str(teacher),
        "teacher_system_prompt": teacher_system_prompt,
        "rows_given": len(rows),
        "rows_used": len(enc),
        "row_indices": [used[i] for i in enc.kept],
        "rows_dropped_too_long": [used[i] for i in enc.dropped],
        "rows_truncated": enc.truncated,
        "subsample_short": recipe.subsample is not None and recipe.subsample > len(rows),
        "label_tokens": enc.label_tokens,
        "completion_vocab_size": None if vocab is None else len(vocab),
        "seed": recipe.seed,
        "steps": stats.steps,
        "loss": losses,
        "learning_rate": stats.lrs,
        "train_seconds": stats.seconds,
        "tokens_per_s": stats.tokens_per_s,
        "device": str(device),
        "dtype": str(dtype).removeprefix("torch."),
        "versions": package_versions(),
    }
    try:
        with atomic_output(out) as tmp:
            tmp.mkdir(parents=True)
            _save(model, tokenizer, recipe, tmp, saved_dtype)
            if wanted:
                staging.rename(tmp / CHECKPOINTS)
            info["checkpoints"] = recipe.checkpoints
            info["seconds"] = time.perf_counter() - t_start
            atomic_write_json(tmp / TRAIN_JSON, info)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return TrainResult(
        path=out,
        rows_given=len(rows),
        rows_used=len(enc),
        steps=stats.steps,
        losses=losses,
        seconds=info["seconds"],
        tokens_per_s=stats.tokens_per_s,
        label_tokens=enc.label_tokens,
    )


CHECKPOINTS = "checkpoints"
"""The folder of a trained model that holds its dose checkpoints (``step-<n>``)."""


def checkpoint_name(step: int) -> str:
    return f"step-{step}"


def checkpoint_steps(model_dir: Path) -> list[int]:
    """The steps of the checkpoints saved in a trained model's folder, in order."""
    folder = Path(model_dir) / CHECKPOINTS
    if not folder.is_dir():
        return []
    return sorted(int(p.name.removeprefix("step-")) for p in folder.glob("step-*"))


def planned_steps(enc: Encoded, recipe: StudentRecipe) -> int:
    """How many optimizer steps training ``enc`` with ``recipe`` takes."""
    return len(_plan(enc, recipe))


def _save_checkpoint(
    model: Any, tokenizer: Any, recipe: StudentRecipe, out: Path, dtype: torch.dtype
) -> None:
    """A dose checkpoint: the adapter alone (LoRA) or the whole model (full); training goes
    on afterwards, so nothing is merged or cast in place."""
    out.mkdir(parents=True)
    if recipe.method == "lora":
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
    else:
        state = {k: v.detach().to(dtype) for k, v in model.state_dict().items()}
        model.save_pretrained(out, state_dict=state)
        tokenizer.save_pretrained(out)
    model.train()


def _save(model: Any, tokenizer: Any, recipe: StudentRecipe, out: Path, dtype: torch.dtype) -> None:
    """Write safetensors weights + tokenizer: merged model, adapter alone, or both."""
    model.eval()
    if recipe.method == "lora" and recipe.save in ("adapter", "both"):
        model.save_pretrained(out if recipe.save == "adapter" else out / "adapter")
    if recipe.method == "lora" and recipe.save == "adapter":
        tokenizer.save_pretrained(out)
        return
    if recipe.method == "lora":
        model = model.merge_and_unload()
    model.to(dtype).save_pretrained(out)
    tokenizer.save_pretrained(out)
