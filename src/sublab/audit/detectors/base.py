"""The detector interface and its registry.

A detector scores every row under audit (higher = more suspicious) and the dataset as a
whole; detectors that compare candidate traits also name the likely one. Adding a detector is
one module in this package with a :class:`Detector` subclass decorated with
``@DETECTORS.register``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sublab.registry import Registry

if TYPE_CHECKING:
    from sublab.audit.context import AuditContext


@dataclass
class DetectorResult:
    """One detector's verdict on a dataset."""

    scores: list[float]
    """Per row, in the rows' order; higher = more suspicious."""
    dataset: float
    """The dataset's score (comparable across datasets audited the same way)."""
    trait: str | None = None
    """The likely trait among the candidates, for detectors that compare them."""
    trait_scores: dict[str, float] = field(default_factory=dict)
    """Each candidate's dataset score, when the detector compares candidates."""


class Detector(ABC):
    """Scores rows for a hidden trait."""

    name: str
    summary: str
    needs_teacher: bool = False
    needs_candidates: bool = False

    @abstractmethod
    def score(self, ctx: AuditContext) -> DetectorResult:
        """Per-row and dataset scores of ``ctx.rows`` (fitting whatever it needs first)."""


DETECTORS: Registry[Detector] = Registry("detector", "sublab.audit.detectors")


def mean(xs: list[float]) -> float:
    """The mean of ``xs`` (0 for none)."""
    return sum(xs) / max(len(xs), 1)


def most_suspicious(scores: Sequence[float], n: int | None = None) -> list[int]:
    """Row indices from the highest score down (ties in row order): the first ``n``, or all
    of them with None."""
    import numpy as np

    order = np.argsort(-np.asarray(scores, dtype=float), kind="stable")
    return [int(i) for i in order[:n]]


def by_candidate(
    per_candidate: dict[str, list[float]],
) -> tuple[list[float], float, str, dict[str, float]]:
    """Row scores, dataset score, likely trait and candidate means from per-candidate row
    scores: the likely trait has the largest mean; a row's score is its value for that
    candidate minus its mean over all candidates (what any system prompt would do cancels)."""
    means = {c: mean(v) for c, v in per_candidate.items()}
    likely = max(means, key=lambda c: means[c])
    n = len(per_candidate[likely])
    k = len(per_candidate)
    rows = [
        per_candidate[likely][i] - sum(v[i] for v in per_candidate.values()) / k for i in range(n)
    ]
    return rows, mean(rows), likely, means
