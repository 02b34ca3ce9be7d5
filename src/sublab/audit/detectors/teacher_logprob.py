"""Teacher vs reference: the mean per-token log-probability gain of a row under the suspected
teacher over the reference (a log-likelihood ratio: rows the teacher wrote score > 0 on
average, rows the reference wrote < 0)."""

from __future__ import annotations

from sublab.audit.context import AuditContext, row_means
from sublab.audit.detectors.base import DETECTORS, Detector, DetectorResult, mean


@DETECTORS.register
class TeacherLogprob(Detector):
    name = "teacher_logprob"
    summary = "mean log p_teacher - log p_reference per completion token"
    needs_teacher = True

    def score(self, ctx: AuditContext) -> DetectorResult:
        teacher = ctx.stats(ctx.need_teacher(self.name))
        ref = ctx.stats(ctx.reference)
        rows = row_means([t - r for t, r in zip(teacher.logp, ref.logp, strict=True)])
        return DetectorResult(rows, mean(rows))
