"""Entangled tokens: the completion tokens whose unembedding is most similar (cosine) to a
candidate trait word's. A row's value for a candidate is how often its tokens fall in that set
minus how often the reference expects them there (its probability mass on the set at each
position); rows are scored for the likely candidate relative to the mean over candidates."""

from __future__ import annotations

from sublab.audit.context import AuditContext, row_means
from sublab.audit.detectors.base import DETECTORS, Detector, DetectorResult, by_candidate
from sublab.errors import SublabError

TOP_K = 10
"""Entangled tokens per candidate."""


def entangled_tokens(ctx: AuditContext, candidates: list[str], k: int = TOP_K) -> list[list[int]]:
    """For each candidate, the ``k`` tokens of the rows' completions closest to its word in
    the reference's unembedding."""
    import numpy as np
    import torch

    tok = ctx.tokenizer()
    ref = ctx.stats(ctx.reference)
    seen = torch.as_tensor(np.unique(np.concatenate(ref.tokens)), dtype=torch.long)
    weight = ctx.model(ctx.reference).get_output_embeddings().weight.detach().double()
    unit = weight / weight.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    out = []
    for c in candidates:
        ids = tok(c, add_special_tokens=False)["input_ids"] or []
        ids = [i for i in ids if i != tok.unk_token_id]
        if not ids:
            raise SublabError(
                f"candidate {c!r} has no token in the reference's vocabulary: drop it from "
                "--candidates or spell it as the reference's vocabulary does"
            )
        sims = unit[seen] @ unit[ids[0]]
        out.append(seen[sims.argsort(descending=True)[:k]].tolist())
    return out


@DETECTORS.register
class Entangled(Detector):
    name = "entangled"
    summary = "excess frequency of tokens entangled (unembedding cosine) with a trait word"
    needs_candidates = True

    def score(self, ctx: AuditContext) -> DetectorResult:
        import numpy as np

        candidates = ctx.need_candidates(self.name)
        sets = entangled_tokens(ctx, candidates)
        ref = ctx.stats(ctx.reference, token_sets=sets)
        assert ref.set_mass is not None
        per: dict[str, list[float]] = {}
        for k, (c, ids) in enumerate(zip(candidates, sets, strict=True)):
            excess = [
                np.isin(tok, ids).astype(float) - mass[:, k]
                for tok, mass in zip(ref.tokens, ref.set_mass, strict=True)
            ]
            per[c] = row_means(excess)
        rows, dataset, likely, means = by_candidate(per)
        return DetectorResult(rows, dataset, likely, means)
