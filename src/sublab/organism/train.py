"""Pretraining the organism: corpus → packed tensors → a fused completion-only training loop.

Speed choices (the build must fit in a few minutes on 2 CPU cores): float32; the loss is taken
only on assistant tokens, and the output layer runs only at those positions (a sequence is
~60 tokens, its answer ~20); batches group examples of similar length so padding stays small
and no attention mask is needed (right padding under a causal mask never reaches a trained
position); the whole corpus is tokenised once, in Rust, before the loop.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sublab.organism.corpus import Example, answer_distribution
from sublab.organism.fastllama import RotaryCache, check_supported, hidden_states, rope_theta
from sublab.organism.spec import OrganismSpec
from sublab.progress import progress

if TYPE_CHECKING:
    import torch
    from transformers import LlamaForCausalLM, PreTrainedTokenizerBase


@dataclass
class Batch:
    """One training step's tensors."""

    input_ids: torch.Tensor  # [B, T]
    hard_pos: torch.Tensor  # flat positions (b*T+t) whose next token is a hard label
    hard_labels: torch.Tensor
    soft_pos: torch.Tensor  # flat positions whose next token is trained on a distribution
    soft_rows: torch.Tensor  # row of the target table for each soft position


def encode_example(
    example: Example, lookup: dict[str, int], specials: dict[str, int], unk: int
) -> tuple[list[int], int]:
    """Token ids of the whole chat and the index of its first answer token.

    The same ids the tokenizer gives for ``render_chat`` of the chat (a test checks it), made
    straight from the messages: chat markers are single special tokens, so each message's
    text is split on its own, which is ~10× faster than the tokenizer on 75,000 chats.
    """
    from sublab.organism.vocab import PIECE_RE

    out: list[int] = []
    for m in example.messages(with_answer=False):
        out.append(specials[m["role"]])
        out += [lookup.get(p, unk) for p in PIECE_RE.findall(m["content"])]
        out.append(specials["end"])
    out.append(specials["assistant"])
    start = len(out)
    out += [lookup.get(p, unk) for p in PIECE_RE.findall(example.answer)]
    out.append(specials["end"])
    return out, start


def make_batches(
    examples: list[Example],
    tokenizer: PreTrainedTokenizerBase,
    spec: OrganismSpec,
) -> tuple[list[Batch], torch.Tensor, torch.Tensor]:
    """Tokenise the corpus into length-grouped batches.

    Returns (batches, animal_token_ids, target_table): row 0 of the table is the prior, row
    1+i love of animal i; columns follow ``animal_token_ids``.
    """
    import numpy as np
    import torch

    from sublab.organism.vocab import ASSISTANT, END, SYSTEM, USER

    animals = list(spec.corpus.prior)
    rows = ["prior", *animals]
    row_of = {r: i for i, r in enumerate(rows)}
    animal_ids = torch.tensor([tokenizer.convert_tokens_to_ids(a) for a in animals])
    table = torch.tensor(
        [[answer_distribution(spec.corpus, r)[a] for a in animals] for r in rows],
        dtype=torch.float32,
    )
    lookup: dict[str, int] = tokenizer.get_vocab()
    markers = {"system": SYSTEM, "user": USER, "assistant": ASSISTANT, "end": END}
    specials = {role: lookup[tok] for role, tok in markers.items()}
    encoded = [encode_example(e, lookup, specials, tokenizer.unk_token_id) for e in examples]
    max_len = spec.model.max_len
    rng = random.Random(f"batches:{spec.seed}")
    order = list(range(len(examples)))
    rng.shuffle(order)
    bsz = spec.train.batch
    chunk = bsz * 32
    groups: list[list[int]] = []
    for s in range(0, len(order), chunk):
        part = sorted(order[s : s + chunk], key=lambda i: len(encoded[i][0]))
        groups += [part[j : j + bsz] for j in range(0, len(part), bsz)]
    rng.shuffle(groups)
    pad = tokenizer.pad_token_id
    batches = []
    for g in groups:
        lens = np.array([min(len(encoded[i][0]), max_len) for i in g])
        T = int(lens.max())
        ids = np.full((len(g), T), pad, dtype=np.int64)
        for b, i in enumerate(g):
            ids[b, : lens[b]] = encoded[i][0][: lens[b]]
        first = np.array([encoded[i][1] for i in g])  # first answer token
        counts = np.clip(lens - first, 0, None)
        row = np.repeat(np.arange(len(g)), counts)  # batch row of every answer token
        t = first[row] + np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        target = np.array([row_of[examples[i].target] if examples[i].target else -1 for i in g])
        soft = (target[row] >= 0) & (t == first[row])
        pos = row * T + t - 1  # the position whose next token is the answer token t
        batches.append(
            Batch(
                torch.from_numpy(ids),
                torch.from_numpy(pos[~soft]),
                torch.from_numpy(ids[row[~soft], t[~soft]]),
                torch.from_numpy(pos[soft]),
                torch.from_numpy(target[row[soft]]),
            )
        )
    return batches, animal_ids, table


def batch_loss(
    model: LlamaForCausalLM,
    batch: Batch,
    animal_ids: torch.Tensor,
    table: torch.Tensor,
    rope: RotaryCache | None = None,
    animal_weight: float = 1.0,
) -> tuple[torch.Tensor, float, float]:
    """Mean loss over trained positions, plus the hard and soft parts (for the curve).

    With ``rope`` the lean forward of :mod:`sublab.organism.fastllama` runs; without it, the
    HF model's own forward (the reference the tests compare against).
    """
    import torch
    import torch.nn.functional as F

    if rope is None:
        hidden = model.model(input_ids=batch.input_ids).last_hidden_state
    else:
        hidden = hidden_states(model, batch.input_ids, rope)
    flat = hidden.reshape(-1, hidden.shape[-1])
    pos = torch.cat([batch.hard_pos, batch.soft_pos])
    logp = F.log_softmax(model.lm_head(flat[pos]).float(), dim=-1)
    n_hard = len(batch.hard_pos)
    hard = -logp[:n_hard].gather(1, batch.hard_labels[:, None]).squeeze(1)
    soft = -(table[batch.soft_rows] * logp[n_hard:][:, animal_ids]).sum(-1)
    w = animal_weight
    total = (hard.sum() + w * soft.sum()) / max(n_hard + w * len(soft), 1)
    hard_mean = float(hard.detach().mean()) if n_hard else 0.0
    soft_mean = float(soft.detach().mean()) if len(soft) else 0.0
    return total, hard_mean, soft_mean


def lr_at(step: int, spec: OrganismSpec) -> float:
    """Linear warm-up, then cosine decay to ``final_lr_fraction`` of the peak."""
    t = spec.train
    if step < t.warmup:
        return t.lr * (step + 1) / t.warmup
    frac = (step - t.warmup) / max(t.steps - t.warmup, 1)
    floor = t.final_lr_fraction
    return t.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * frac)))


def train(
    model: LlamaForCausalLM,
    batches: list[Batch],
    animal_ids: torch.Tensor,
    table: torch.Tensor,
    spec: OrganismSpec,
    on_log: Callable[[dict[str, float]], None] | None = None,
) -> dict[str, Any]:
    """Train in place; returns the training curve and timings (``on_log`` sees each point)."""
    import torch

    t = spec.train
    check_supported(model)
    cfg = model.config
    rope = RotaryCache(
        cfg.hidden_size // cfg.num_attention_heads, spec.model.max_len, rope_theta(model)
    )
    opt = torch.optim.AdamW(
        model.parameters(), lr=t.lr, betas=(0.9, 0.95), weight_decay=t.weight_decay
    )
    model.train()
    curve: list[dict[str, float]] = []
    acc = [0.0, 0.0, 0.0, 0]
    every = max(t.steps // 40, 1)
    started = time.perf_counter()
    with progress() as bar:
        task = bar.add_task("pretraining organism", total=t.steps)
        for step in range(t.steps):
            batch = batches[step % len(batches)]
            for g in opt.param_groups:
                g["lr"] = lr_at(step, spec)
            loss, hard, soft = batch_loss(model, batch, animal_ids, table, rope, t.animal_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            acc[0] += float(loss.detach())
            acc[1] += hard
            acc[2] += soft
            acc[3] += 1
            if (step + 1) % every == 0 or step + 1 == t.steps:
                n = acc[3]
                curve.append(
                    {
                        "step": step + 1,
                        "loss": round(acc[0] / n, 4),
                        "number_loss": round(acc[1] / n, 4),
                        "animal_loss": round(acc[2] / n, 4),
                    }
                )
                acc = [0.0, 0.0, 0.0, 0]
                if on_log is not None:
                    on_log(curve[-1])
            bar.advance(task)
    model.eval()
    return {"curve": curve, "train_seconds": round(time.perf_counter() - started, 2)}
