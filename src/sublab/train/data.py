"""Rows → token tensors with completion-only labels, and length-grouped batches.

A row is ``{"prompt": str, "completion": str, optional "system_prompt": str, optional
"loss_mask": [int]}``; ``loss_mask`` lists completion-token indices (0 = the first completion
token, the completion's length = EOS) whose labels are left out of the loss. The prompt side
is the tokenizer's chat template with the assistant header (``add_generation_prompt``; never a
hidden default system prompt: :func:`~sublab.backends.chat_format.render_prompt`), exactly
what the model sees when it generates; the completion side is the completion's own tokens plus
EOS, exactly what generation produces. Labels are the completion tokens and EOS; prompt and
padding positions are -100.

All rows are encoded once into one padded tensor, so a batch is a slice and an index, with no
per-example Python in the training loop.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sublab.backends.chat_format import render_prompt
from sublab.errors import DataError, SublabError
from sublab.jsonl import read_jsonl

IGNORE = -100


def row_problem(row: Any) -> str | None:
    """What is wrong with one row (``"<field>: <problem>"``), or None if it is usable."""
    if not isinstance(row, dict):
        return f": expected a dict with 'prompt' and 'completion', got {type(row).__name__}"
    for field in ("prompt", "completion"):
        if field not in row:
            keys = ", ".join(sorted(row)) or "none"
            return (
                f": missing {field!r}; every row needs 'prompt' and 'completion' "
                f"(keys present: {keys})"
            )
        if not isinstance(row[field], str):
            return f".{field}: must be a string, got {type(row[field]).__name__}"
    sp = row.get("system_prompt")
    if sp is not None and not isinstance(sp, str):
        return f".system_prompt: must be a string or absent, got {type(sp).__name__}"
    mask = row.get("loss_mask")
    if mask is not None and (
        not isinstance(mask, list) or not all(isinstance(k, int) and k >= 0 for k in mask)
    ):
        return (
            ".loss_mask: must be a list of completion-token indices (ints >= 0) left out of "
            "the loss, or absent"
        )
    return None


def check_rows(rows: Sequence[Any], what: str = "rows") -> None:
    """Raise SublabError naming the first bad row (``rows[i].field``) and the fix."""
    if len(rows) == 0:
        raise SublabError(f"{what}: no rows given; pass at least one {{prompt, completion}} row")
    for i, row in enumerate(rows):
        problem = row_problem(row)
        if problem is not None:
            raise SublabError(f"{what}[{i}]{problem}")


CHAT_SHAPES = (["user", "assistant"], ["system", "user", "assistant"])
"""The role orders a chat-format training row may have."""


@dataclass(frozen=True)
class ChatProblem:
    """Why a list of chat messages is not one prompt/completion pair: ``index`` is the message
    with no valid role or no string content, or None when the roles' order is wrong."""

    roles: list[Any]
    index: int | None = None


def chat_row(
    msgs: list[Any], system_roles: frozenset[str] = frozenset({"system"})
) -> dict[str, Any] | ChatProblem:
    """A prompt/completion row from chat messages (optionally one system turn, then one user
    turn and one assistant turn; ``system_roles`` name the system turn, e.g. also 'developer'),
    or what is wrong with them."""
    allowed = {"user", "assistant", *system_roles}
    roles = [m.get("role") if isinstance(m, dict) else None for m in msgs]
    for i, m in enumerate(msgs):
        if roles[i] not in allowed or not isinstance(m.get("content"), str):
            return ChatProblem(roles, i)
    roles = ["system" if r in system_roles else r for r in roles]
    if roles not in CHAT_SHAPES:
        return ChatProblem(roles)
    out = {"prompt": msgs[-2]["content"], "completion": msgs[-1]["content"]}
    if roles[0] == "system":
        out["system_prompt"] = msgs[0]["content"]
    return out


def from_messages(row: dict[str, Any]) -> dict[str, Any] | str:
    """A row in chat format (``{"messages": [system?, user, assistant]}``, as OpenAI
    fine-tuning files and the emergent-misalignment datasets hold them) as a prompt/completion
    row, or what is wrong with it."""
    msgs = row["messages"]
    if not isinstance(msgs, list):
        return ".messages: must be a list of {role, content} objects"
    out = chat_row(msgs)
    if not isinstance(out, ChatProblem):
        return out
    if out.index is not None:
        return (
            f".messages[{out.index}]: needs a 'role' in ['assistant', 'system', 'user'] and a "
            "string 'content'"
        )
    return (
        f".messages: roles {out.roles}; expected one user turn then one assistant turn "
        "(optionally after one system turn)"
    )


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Training rows from a JSONL file of prompt/completion rows or chat-format rows
    (:func:`from_messages`); a bad row raises DataError naming its line and field."""
    rows = []
    for line, row in read_jsonl(path):
        if isinstance(row, dict) and "messages" in row and "prompt" not in row:
            row = from_messages(row)
            if isinstance(row, str):
                raise DataError(path, line, f"row{row}")
        problem = row_problem(row)
        if problem is not None:
            raise DataError(path, line, f"row{problem}")
        rows.append(row)
    if not rows:
        raise DataError(path, None, "no rows; expected JSON lines of {prompt, completion}")
    return rows


def prompt_messages(row: dict[str, Any], use_system_prompt: bool = True) -> list[dict[str, str]]:
    """The chat before the assistant's turn; the row's system prompt only if asked and present."""
    msgs = []
    if use_system_prompt and row.get("system_prompt"):
        msgs.append({"role": "system", "content": row["system_prompt"]})
    msgs.append({"role": "user", "content": row["prompt"]})
    return msgs


def eos_id(tokenizer: Any) -> int:
    """The tokenizer's EOS id (the token that ends an assistant turn); an error if it has none."""
    eid = tokenizer.eos_token_id
    if eid is None:
        raise SublabError(
            "the tokenizer has no eos_token; set eos_token in tokenizer_config.json to the token "
            "that ends an assistant turn"
        )
    return int(eid)


@dataclass
class Encoded:
    """Every row as one right-padded id tensor, with completion-only labels."""

    input_ids: torch.Tensor  # [N, L] long, padded with pad_id
    labels: torch.Tensor  # [N, L] long, IGNORE outside completion + EOS
    lengths: torch.Tensor  # [N] long, tokens per row before padding
    kept: list[int]  # index in the given rows of each encoded row
    dropped: list[int]  # rows left without any completion token after truncation
    truncated: int  # rows cut at max_length

    def __len__(self) -> int:
        return len(self.kept)

    @property
    def label_tokens(self) -> int:
        return int((self.labels != IGNORE).sum())


def encode_rows(
    tokenizer: Any,
    rows: Sequence[dict[str, Any]],
    max_length: int,
    use_system_prompt: bool = True,
) -> Encoded:
    """Tokenise rows: chat-template prompt + completion tokens + EOS, labels on the completion."""
    check_rows(rows)
    if getattr(tokenizer, "chat_template", None) is None:
        raise SublabError(
            "the tokenizer has no chat_template; use a chat model folder whose "
            "tokenizer_config.json (or chat_template.jinja) defines one"
        )
    eos = eos_id(tokenizer)
    prompts = [render_prompt(tokenizer, prompt_messages(r, use_system_prompt)) for r in rows]
    p_ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    c_ids = tokenizer([r["completion"] for r in rows], add_special_tokens=False)["input_ids"]
    seqs: list[list[int]] = []
    n_prompt: list[int] = []
    kept: list[int] = []
    dropped: list[int] = []
    truncated = 0
    for i, (p, c) in enumerate(zip(p_ids, c_ids, strict=True)):
        full = [*p, *c, eos]
        if len(full) > max_length:
            truncated += 1
            full = full[:max_length]
        if len(full) <= len(p):
            dropped.append(i)
            continue
        seqs.append(full)
        n_prompt.append(len(p))
        kept.append(i)
    if not seqs:
        raise SublabError(
            f"all {len(rows)} rows are longer than max_length = {max_length} before their "
            "completion starts; raise max_length"
        )
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    labels = torch.full((len(seqs), width), IGNORE, dtype=torch.long)
    for j, (s, npr) in enumerate(zip(seqs, n_prompt, strict=True)):
        t = torch.tensor(s, dtype=torch.long)
        ids[j, : len(s)] = t
        labels[j, npr : len(s)] = t[npr:]
        for k in rows[kept[j]].get("loss_mask") or ():
            if npr + k < len(s):
                labels[j, npr + k] = IGNORE
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    return Encoded(ids, labels, lengths, kept, dropped, truncated)


def encode_teacher_view(
    tokenizer: Any, rows: Sequence[dict[str, Any]], enc: Encoded, system_prompt: str
) -> Encoded:
    """The student's encoded rows as a prompted teacher sees them: ``system_prompt`` first.

    ``rows`` and ``enc`` are the arguments and result of :func:`encode_rows` for the student.
    Teacher row j is ``[system + prompt + completion]`` of student row j (the row's own system
    prompt, if any, is replaced); its labels are the same completion tokens as the student's
    (only as many as the student kept after truncation), so label k of teacher row j and label
    k of student row j are the same token, and the teacher's next-token distribution there is
    the soft target of that student position. An empty ``system_prompt`` gives the student's
    own encoding.
    """
    view = [{**rows[i], "system_prompt": system_prompt} for i in enc.kept]
    wide = encode_rows(tokenizer, view, max_length=int(enc.lengths.max()) + 100_000)
    n_student = (enc.labels != IGNORE).sum(1)
    start = (wide.labels != IGNORE).int().argmax(1)
    lengths = start + n_student
    width = int(lengths.max())
    cols = torch.arange(width)[None, :]
    labels = wide.labels[:, :width].masked_fill(cols >= lengths[:, None], IGNORE)
    ids = wide.input_ids[:, :width]
    if not torch.equal(labels[labels != IGNORE], enc.labels[enc.labels != IGNORE]):
        raise SublabError(
            "the teacher's view of the rows tokenises the completions differently from the "
            "student's; the system prompt must not change how a completion is tokenised"
        )
    return Encoded(ids, labels, lengths, list(enc.kept), [], 0)


def completion_vocab(enc: Encoded) -> torch.Tensor:
    """Sorted ids of every token that is a label somewhere (the completions' tokens and EOS)."""
    return torch.unique(enc.labels[enc.labels != IGNORE])


def length_grouped_batches(
    lengths: torch.Tensor, batch_size: int, rng: random.Random, group: int = 64
) -> list[list[int]]:
    """Shuffle, then sort by length within windows of ``group`` batches, then shuffle batches.

    Rows of similar length share a batch (little padding) while the order stays random.
    """
    order = list(range(len(lengths)))
    rng.shuffle(order)
    lens = lengths.tolist()
    window = batch_size * group
    batches: list[list[int]] = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: -lens[i])
        batches.extend(chunk[k : k + batch_size] for k in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def sequential_batches(lengths: torch.Tensor, batch_size: int) -> list[list[int]]:
    """Length-sorted batches in a fixed order (for scoring, where order does not matter)."""
    order = sorted(range(len(lengths)), key=lambda i: -int(lengths[i]))
    return [order[k : k + batch_size] for k in range(0, len(order), batch_size)]


def collate(enc: Encoded, idx: Sequence[int]) -> dict[str, torch.Tensor]:
    """One batch, padded only to its own longest row."""
    index = torch.tensor(idx, dtype=torch.long)
    width = int(enc.lengths[index].max())
    ids = enc.input_ids[index, :width]
    mask = torch.arange(width).unsqueeze(0) < enc.lengths[index].unsqueeze(1)
    return {
        "input_ids": ids,
        "attention_mask": mask.long(),
        "labels": enc.labels[index, :width],
    }


def iter_batches(enc: Encoded, batches: list[list[int]]) -> Iterator[dict[str, torch.Tensor]]:
    for b in batches:
        yield collate(enc, b)
