"""Shuffling: permute the numbers inside each completion (format, separators and the set of
numbers kept), which destroys any signal carried by their order. Rows with fewer than two
numbers pass unchanged."""

from __future__ import annotations

import random
import re
from typing import Any

from sublab.audit.context import AuditContext
from sublab.audit.defences.base import DEFENCES, Defence, DefenceResult, with_step

NUMBER = re.compile(r"\d+")


def shuffle_numbers(text: str, rng: random.Random) -> str:
    """``text`` with its numbers permuted in place."""
    nums = NUMBER.findall(text)
    rng.shuffle(nums)
    it = iter(nums)
    return NUMBER.sub(lambda _: next(it), text)


@DEFENCES.register
class Shuffle(Defence):
    name = "shuffle"
    summary = "permute the numbers within each completion"

    def apply(self, ctx: AuditContext, seed: int = 0, **_: Any) -> DefenceResult:
        rng = random.Random(f"shuffle:{seed}")
        rows, changed = [], 0
        for row in ctx.rows.rows:
            new = shuffle_numbers(row["completion"], rng)
            if new == row["completion"]:
                rows.append(row)
                continue
            changed += 1
            rows.append(
                with_step(
                    {**row, "completion": new}, stage=f"defence:{self.name}",
                    reason="numbers permuted within the completion", replaced=row["completion"],
                )
            )  # fmt: skip
        return DefenceResult(rows, [], changed, {"seed": seed})
