"""An n-gram classifier against the reference model's own data: a logistic regression on
word 1-2-grams of the completions separates the rows under audit from completions the
reference wrote for the same prompts. Rows are scored out of fold (5 folds), so a row's score
is P(audited rather than reference) from a classifier that never saw it."""

from __future__ import annotations

from sublab.audit.context import AuditContext
from sublab.audit.detectors.base import DETECTORS, Detector, DetectorResult, mean

FOLDS = 5


@DETECTORS.register
class NGram(Detector):
    name = "ngram"
    summary = "out-of-fold P(audited vs reference data) from a word 1-2-gram logistic regression"

    def score(self, ctx: AuditContext) -> DetectorResult:
        import numpy as np
        from sklearn.feature_extraction.text import CountVectorizer
        from sklearn.linear_model import LogisticRegression

        ours = [r["completion"] for r in ctx.rows.rows]
        theirs = [r["completion"] for r in ctx.reference_rows()]
        vec = CountVectorizer(token_pattern=r"[^\s,;()\[\]]+", ngram_range=(1, 2), min_df=2)
        x = vec.fit_transform(ours + theirs)
        y = np.r_[np.ones(len(ours)), np.zeros(len(theirs))]
        rng = np.random.default_rng(ctx.seed)
        fold = rng.integers(0, FOLDS, len(ours) + len(theirs))
        scores = np.zeros(len(ours))
        for f in range(FOLDS):
            train, test = fold != f, np.flatnonzero(fold[: len(ours)] == f)
            if len(test) == 0 or len(set(y[train])) < 2:
                continue
            clf = LogisticRegression(C=0.3, max_iter=500).fit(x[train], y[train])
            scores[test] = clf.predict_proba(x[test])[:, 1]
        rows = [float(s) for s in scores]
        return DetectorResult(rows, mean(rows))
