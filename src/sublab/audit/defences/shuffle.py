"""Shuffling: permute the numbers inside each completion (format, separators and the set of
numbers kept), which destroys any signal carried by their order. Rows with fewer than two
numbers pass unchanged. The permutation is
:func:`sublab.numbers.shuffle.shuffle_numbers` with ``within_rows``."""

from __future__ import annotations

from typing import Any

from sublab.audit.context import AuditContext
from sublab.audit.defences.base import DEFENCES, Defence, DefenceResult, with_step
from sublab.numbers.shuffle import shuffle_numbers


@DEFENCES.register
class Shuffle(Defence):
    name = "shuffle"
    summary = "permute the numbers within each completion"

    def apply(self, ctx: AuditContext, seed: int = 0, **_: Any) -> DefenceResult:
        rows, changed = [], 0
        shuffled = shuffle_numbers(ctx.rows.rows, seed, within_rows=True)
        for row, new in zip(ctx.rows.rows, shuffled, strict=True):
            if new["completion"] == row["completion"]:
                rows.append(row)
                continue
            changed += 1
            rows.append(
                with_step(
                    new, stage=f"defence:{self.name}",
                    reason="numbers permuted within the completion", replaced=row["completion"],
                )
            )  # fmt: skip
        return DefenceResult(rows, [], changed, {"seed": seed})
