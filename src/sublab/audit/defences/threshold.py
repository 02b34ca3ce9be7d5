"""Threshold sampling: drop the rows a detector scores most suspicious (the top ``drop``
share, or every row scoring at least ``threshold``)."""

from __future__ import annotations

from typing import Any

from sublab.audit.context import AuditContext
from sublab.audit.defences.base import DEFENCES, Defence, DefenceResult
from sublab.audit.detectors.base import DETECTORS, most_suspicious
from sublab.errors import SublabError


@DEFENCES.register
class Threshold(Defence):
    name = "threshold"
    summary = "remove the rows a detector scores most suspicious"

    def apply(
        self,
        ctx: AuditContext,
        detector: str = "teacher_logprob",
        drop: float = 0.2,
        threshold: float | None = None,
        **_: Any,
    ) -> DefenceResult:
        import numpy as np

        if not 0 <= drop < 1:
            raise SublabError(
                f"threshold: drop must be in [0, 1) (got {drop}): the share of rows removed; "
                "pass --drop 0.2 for a fifth"
            )
        scores = np.asarray(DETECTORS.get(detector).score(ctx).scores)
        if threshold is None:
            cut = set(most_suspicious(scores, round(drop * len(scores))))
            why = f"among the {drop:.0%} highest {detector} scores"
        else:
            cut = set(np.flatnonzero(scores >= threshold).tolist())
            why = f"{detector} score >= {threshold}"
        kept, removed = [], []
        for i, row in enumerate(ctx.rows.rows):
            if i in cut:
                removed.append(
                    {**row, "removed_by": f"defence:{self.name}", "reason": why,
                     "score": float(scores[i])}
                )  # fmt: skip
            else:
                kept.append(row)
        return DefenceResult(kept, removed, 0, {"detector": detector, "rule": why})
