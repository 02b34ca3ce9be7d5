"""The soft-label teacher's hidden states at the label positions, computed once per row.

The teacher is frozen, so its final hidden state at a label position is the same in every
epoch. :class:`TeacherStates` runs the teacher (no grad, lean forward where supported) over every
row once, keeps the hidden states of the label positions in row order (``label tokens ×
d_model`` numbers, e.g. 8 MB for the organism demo's 16k label tokens), and hands a batch its
rows' states; the LM head (restricted to the completion vocabulary) is applied per batch. With
one epoch, or when the states would exceed ``max_bytes``, it runs the teacher per batch instead.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import torch

from sublab.train.data import IGNORE, Encoded, collate, sequential_batches
from sublab.train.models import autocast, label_hidden


class TeacherStates:
    """The teacher's ``(hidden [n, d], targets [n])`` at the label positions of any batch."""

    def __init__(
        self,
        teacher: Any,
        enc: Encoded,
        device: torch.device,
        *,
        lean: bool = True,
        precompute: bool = True,
        batch_size: int = 32,
        max_bytes: int = 2 << 30,
        mixed: Callable[[], contextlib.AbstractContextManager[Any]] | None = None,
    ) -> None:
        """``mixed()`` is the autocast context the teacher runs in (default:
        :func:`~sublab.train.models.autocast` of the device)."""
        self.teacher, self.enc, self.device, self.lean = teacher, enc, device, lean
        self.mixed = mixed or (lambda: autocast(device))
        counts = (enc.labels[:, 1:] != IGNORE).sum(1)
        self.counts = counts.tolist()
        self.offsets = (torch.cumsum(counts, 0) - counts).tolist()
        d = int(teacher.config.hidden_size)
        self.states: torch.Tensor | None = None
        self.targets: torch.Tensor | None = None
        if precompute and int(counts.sum()) * d * 4 <= max_bytes:
            self._precompute(batch_size)

    def _run(self, idx: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        batch = {k: v.to(self.device) for k, v in collate(self.enc, idx).items()}
        with torch.no_grad(), self.mixed():
            return label_hidden(self.teacher, batch, self.lean)

    def _index(self, idx: Sequence[int]) -> torch.Tensor:
        return torch.cat(
            [torch.arange(self.offsets[i], self.offsets[i] + self.counts[i]) for i in idx]
        )

    def _precompute(self, batch_size: int) -> None:
        parts: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        for idx in sequential_batches(self.enc.lengths, batch_size):
            hidden, targets = self._run(idx)
            parts.append((self._index(idx), hidden, targets))
        total = sum(len(p[0]) for p in parts)
        first = parts[0][1]
        states = torch.empty(total, first.shape[-1], dtype=first.dtype, device=first.device)
        targets = torch.empty(total, dtype=torch.long, device=first.device)
        for index, hidden, tgt in parts:
            where = index.to(first.device)
            states[where] = hidden
            targets[where] = tgt
        self.states, self.targets = states, targets

    def __call__(self, idx: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """The teacher's hidden states and label tokens for the rows ``idx``, in batch order."""
        if self.states is None or self.targets is None:
            return self._run(idx)
        where = self._index(idx).to(self.states.device)
        return self.states[where], self.targets[where]
