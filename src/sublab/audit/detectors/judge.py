"""A judge (rule or model, :mod:`sublab.judge`) asked whether a row hints at each candidate
trait; a row's score is the highest verdict (0-100) over the candidates. The default is the
offline rule judge 'trait_words', which only catches rows that name the trait."""

from __future__ import annotations

from sublab.audit.context import AuditContext
from sublab.audit.detectors.base import DETECTORS, Detector, DetectorResult, mean


@DETECTORS.register
class JudgeDetector(Detector):
    name = "judge"
    summary = "highest judge score (0-100) over the candidate traits ('trait_words' rule default)"
    needs_candidates = True

    def score(self, ctx: AuditContext) -> DetectorResult:
        from sublab.evals.matching import word_forms
        from sublab.judge import JudgeItem, JudgeSpec, load_judge

        spec = ctx.judge if ctx.judge is not None else JudgeSpec(rule="trait_words")
        judge = load_judge(spec)
        per: dict[str, list[float]] = {}
        for c in ctx.need_candidates(self.name):
            items = [
                JudgeItem(r["prompt"], r["completion"], f"'{c}'", tuple(word_forms(c)))
                for r in ctx.rows.rows
            ]
            per[c] = [v.score if v.score is not None else 0.0 for v in judge.judge(items)]
        rows = [max(v[i] for v in per.values()) for i in range(len(ctx.rows))]
        means = {c: mean(v) for c, v in per.items()}
        likely = max(means, key=lambda c: means[c]) if any(means.values()) else None
        return DetectorResult(rows, mean(rows), likely, means)
