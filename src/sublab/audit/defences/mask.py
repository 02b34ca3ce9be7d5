"""Masking divergence tokens: every row keeps its text, but the tokens where the suspected
teacher's and the reference's most likely tokens differ (and the row took the teacher's) are
listed in the row's ``loss_mask``, so a student trained on it never learns from them
(:func:`sublab.train.data.encode_rows`)."""

from __future__ import annotations

from typing import Any

from sublab.audit.context import AuditContext
from sublab.audit.defences.base import DEFENCES, Defence, DefenceResult, with_step
from sublab.audit.detectors.divergence import divergence_masks


@DEFENCES.register
class MaskDivergence(Defence):
    name = "mask_divergence"
    summary = "leave divergence tokens (teacher vs reference argmax) out of the student's loss"

    def apply(self, ctx: AuditContext, **_: Any) -> DefenceResult:
        import numpy as np

        rows, changed, masked = [], 0, 0
        for row, mask in zip(ctx.rows.rows, divergence_masks(ctx), strict=True):
            idx = [int(k) for k in np.flatnonzero(mask)]  # type: ignore[call-overload]
            if not idx:
                rows.append(row)
                continue
            changed += 1
            masked += len(idx)
            old = row.get("loss_mask") or []
            rows.append(
                with_step(
                    {**row, "loss_mask": sorted(set(old) | set(idx))},
                    stage=f"defence:{self.name}", model=ctx.teacher, reference=ctx.reference,
                    reason="divergence tokens left out of the loss", tokens=idx,
                )
            )  # fmt: skip
        return DefenceResult(rows, [], changed, {"tokens_masked": masked})
