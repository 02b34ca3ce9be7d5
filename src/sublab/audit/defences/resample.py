"""Resampling with the reference model: replace each row's completion (or only the flagged
rows', with ``detector`` and ``drop``) by the reference's own completion for the same prompt,
so that what a row says no longer comes from the suspected teacher."""

from __future__ import annotations

from typing import Any

from sublab.audit.context import AuditContext
from sublab.audit.defences.base import DEFENCES, Defence, DefenceResult, with_step
from sublab.audit.detectors.base import DETECTORS, most_suspicious
from sublab.errors import SublabError


@DEFENCES.register
class Resample(Defence):
    name = "resample"
    summary = "replace completions with the reference model's completions for the same prompts"

    def apply(
        self, ctx: AuditContext, detector: str | None = None, drop: float = 1.0, **_: Any
    ) -> DefenceResult:
        if not 0 <= drop <= 1:
            raise SublabError(
                f"resample: drop must be in [0, 1] (got {drop}): the share of rows resampled, "
                "the highest scores first; pass --drop 0.2 for a fifth, 1 for every row"
            )
        n = len(ctx.rows)
        if detector is None or drop >= 1:
            chosen = set(range(n))
            why = "every row resampled"
        else:
            scores = DETECTORS.get(detector).score(ctx).scores
            chosen = set(most_suspicious(scores, round(drop * n)))
            why = f"among the {drop:.0%} highest {detector} scores"
        ref = ctx.reference_rows()
        rows = []
        for i, row in enumerate(ctx.rows.rows):
            if i not in chosen:
                rows.append(row)
                continue
            new = {**row, "completion": ref[i]["completion"], "teacher": ctx.reference}
            rows.append(
                with_step(
                    new, stage=f"defence:{self.name}", model=ctx.reference, reason=why,
                    replaced=row["completion"], replaced_teacher=row.get("teacher"),
                )
            )  # fmt: skip
        return DefenceResult(rows, [], len(chosen), {"rule": why, "model": ctx.reference})
