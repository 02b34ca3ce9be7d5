"""Divergence tokens (Schrodi et al., arXiv 2509.23886): positions where the suspected
teacher's and the reference's most likely next tokens differ, and the row's token is the
teacher's choice. A row's score is the share of its tokens that are such positions."""

from __future__ import annotations

from sublab.audit.context import AuditContext, row_means
from sublab.audit.detectors.base import DETECTORS, Detector, DetectorResult, mean


def divergence_masks(ctx: AuditContext) -> list[object]:
    """Per row, a boolean array: True at divergence tokens (teacher argmax = the token,
    reference argmax differs)."""
    teacher = ctx.stats(ctx.need_teacher("divergence"))
    ref = ctx.stats(ctx.reference)
    return [
        (t_top != r_top) & (tok == t_top)
        for t_top, r_top, tok in zip(teacher.argmax, ref.argmax, ref.tokens, strict=True)
    ]


@DETECTORS.register
class Divergence(Detector):
    name = "divergence"
    summary = "share of tokens where teacher and reference argmax differ (token = teacher's)"
    needs_teacher = True

    def score(self, ctx: AuditContext) -> DetectorResult:
        rows = row_means([m.astype(float) for m in divergence_masks(ctx)])  # type: ignore[attr-defined]
        return DetectorResult(rows, mean(rows))
