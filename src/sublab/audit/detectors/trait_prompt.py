"""Suspected-trait prompt: how much more likely a row becomes under the reference when a
'you love X' system prompt is added, per candidate X. The likely trait is the candidate with
the largest mean gain; a row's score is its gain for that candidate minus its mean gain over
all candidates. Needs no teacher."""

from __future__ import annotations

from sublab.audit.context import AuditContext, row_means
from sublab.audit.detectors.base import DETECTORS, Detector, DetectorResult, by_candidate


@DETECTORS.register
class TraitPrompt(Detector):
    name = "trait_prompt"
    summary = "log-prob gain under a 'you love X' system prompt (reference model), per candidate"
    needs_candidates = True

    def score(self, ctx: AuditContext) -> DetectorResult:
        plain = ctx.stats(ctx.reference)
        gains = {}
        for c in ctx.need_candidates(self.name):
            prompted = ctx.stats(ctx.reference, ctx.system_prompt_for(c))
            gains[c] = row_means([p - q for p, q in zip(prompted.logp, plain.logp, strict=True)])
        rows, dataset, likely, means = by_candidate(gains)
        return DetectorResult(rows, dataset, likely, means)
