"""AUROC of detector scores, per row and per dataset (subsamples of rows), with bootstrap
95% intervals over rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def auroc(positive: Sequence[float], negative: Sequence[float]) -> float:
    """P(a positive scores above a negative), ties counted half (Mann-Whitney U / n1 n2)."""
    from scipy.stats import rankdata

    pos, neg = np.asarray(positive, float), np.asarray(negative, float)
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError("auroc needs at least one positive and one negative score")
    ranks = rankdata(np.r_[pos, neg])
    u = ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2
    return float(u / (len(pos) * len(neg)))


def subsample_means(
    scores: np.ndarray, size: int, count: int, rng: np.random.Generator
) -> np.ndarray:
    """Means of ``count`` subsamples of ``size`` rows drawn without replacement from
    ``scores`` (each subsample is one simulated dataset)."""
    if size > len(scores):
        raise ValueError(f"subsample of {size} rows from {len(scores)}")
    idx = np.argsort(rng.random((count, len(scores))), axis=1)[:, :size]
    return scores[idx].mean(1)


@dataclass
class Separation:
    """How well a detector's scores separate trait rows (positives) from control rows."""

    row_auroc: float
    row_ci: tuple[float, float]
    dataset_auroc: float
    dataset_ci: tuple[float, float]
    subsample: int


def separation(
    positive: Sequence[float],
    negative: Sequence[float],
    subsample: int,
    subsamples: int = 200,
    bootstrap: int = 200,
    seed: int = 0,
) -> Separation:
    """Row-level and dataset-level AUROC (datasets = ``subsample``-row subsamples, scored by
    their mean), each with a 95% percentile bootstrap interval over the rows."""
    rng = np.random.default_rng(seed)
    pos, neg = np.asarray(positive, float), np.asarray(negative, float)

    def both(p: np.ndarray, n: np.ndarray, count: int) -> tuple[float, float]:
        ds = auroc(
            subsample_means(p, subsample, count, rng), subsample_means(n, subsample, count, rng)
        )
        return auroc(p, n), ds

    row, ds = both(pos, neg, subsamples)
    boots = np.array(
        [
            both(rng.choice(pos, len(pos)), rng.choice(neg, len(neg)), max(subsamples // 4, 20))
            for _ in range(bootstrap)
        ]
    )
    lo, hi = np.percentile(boots, [2.5, 97.5], axis=0)
    return Separation(
        row, (float(lo[0]), float(hi[0])), ds, (float(lo[1]), float(hi[1])), subsample
    )
