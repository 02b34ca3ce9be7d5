"""Teacher strength: how far a teacher's number outputs moved from its base.

``number_kl(teacher, base, rows)`` is the mean per-token KL(teacher ‖ base) over the completion
tokens (and EOS) of number rows, teacher-forced, over the full vocabulary, with the same chat
construction as training. In the model organism it predicts transmission better than the
teacher's own trait probability. ``mean_logprob(model, rows)`` is the mean per-token log
probability of the rows' completions; :func:`label_logprobs` gives them per token (the audit's
statistics, :func:`sublab.audit.context.token_stats`, read them too).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from sublab.train.data import check_rows, collate, encode_rows, sequential_batches
from sublab.train.distill import per_token_kl
from sublab.train.models import (
    check_same_vocab,
    head_logits,
    label_hidden,
    load_model,
    load_tokenizer,
    resolve_device,
)


def _encode(
    path: str | Path, rows: Sequence[dict[str, Any]], use_system_prompt: bool, max_length: int
) -> tuple[Any, Any]:
    check_rows(rows)
    tok = load_tokenizer(path)
    return tok, encode_rows(tok, rows, max_length, use_system_prompt=use_system_prompt)


def encoded_batches(
    enc: Any, batch_size: int, dev: torch.device
) -> Iterator[tuple[list[int], dict[str, torch.Tensor]]]:
    """The encoded rows in order, ``batch_size`` at a time, on ``dev``: each batch's row
    indices into ``enc`` and its tensors."""
    for idx in sequential_batches(enc.lengths, batch_size):
        yield idx, {k: v.to(dev) for k, v in collate(enc, idx).items()}


def label_logprobs(model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """``model``'s log-probabilities (float64, over the vocabulary) at every label position
    of ``batch`` (the completion tokens and EOS, row after row), and the label tokens."""
    hidden, targets = label_hidden(model, batch)
    return torch.log_softmax(head_logits(model, hidden).double(), dim=-1), targets


@torch.no_grad()
def number_kl(
    teacher: str | Path,
    base: str | Path,
    rows: Sequence[dict[str, Any]],
    *,
    use_system_prompt: bool = False,
    batch_size: int = 32,
    max_length: int = 500,
    device: str = "auto",
) -> float:
    """Mean per-token KL(teacher ‖ base) on the rows' completion tokens (nats per token).

    ``use_system_prompt``: whether a row's ``system_prompt`` is put in the chat (default: no,
    like a student's training chats).
    """
    tok, enc = _encode(base, rows, use_system_prompt, max_length)
    check_same_vocab(tok, load_tokenizer(teacher, "teacher"), teacher)
    dev = resolve_device(device)
    t_model = load_model(teacher, dev, torch.float32, "teacher").eval()
    b_model = load_model(base, dev, torch.float32, "base").eval()
    total = torch.zeros((), dtype=torch.float64)
    count = 0
    for _, batch in encoded_batches(enc, batch_size, dev):
        t_hidden, _ = label_hidden(t_model, batch)
        b_hidden, _ = label_hidden(b_model, batch)
        kl = per_token_kl(head_logits(t_model, t_hidden), head_logits(b_model, b_hidden))
        total += kl.sum().cpu()
        count += kl.numel()
    return float(total / count)


@torch.no_grad()
def mean_logprob(
    model: str | Path,
    rows: Sequence[dict[str, Any]],
    *,
    use_system_prompt: bool = False,
    batch_size: int = 32,
    max_length: int = 500,
    device: str = "auto",
) -> float:
    """Mean per-token log P(completion tokens + EOS | chat) of ``model`` over the rows."""
    _, enc = _encode(model, rows, use_system_prompt, max_length)
    dev = resolve_device(device)
    m = load_model(model, dev, torch.float32, "model").eval()
    total = torch.zeros((), dtype=torch.float64)
    count = 0
    for _, batch in encoded_batches(enc, batch_size, dev):
        logp, targets = label_logprobs(m, batch)
        total += logp.gather(1, targets.unsqueeze(1)).sum().cpu()
        count += targets.numel()
    return float(total / count)
