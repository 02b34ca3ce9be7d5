"""Mean and t-interval across independent models."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Summary:
    """Mean with a two-sided t confidence interval across n independent values."""

    n: int
    mean: float
    low: float
    high: float
    std: float

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def t_interval(values: Sequence[float], level: float = 0.95) -> Summary:
    """Mean ± t_{(1+level)/2, n-1} · s/√n (a zero-width interval for n = 1)."""
    from scipy import stats

    n = len(values)
    if n == 0:
        raise ValueError("t_interval needs at least one value")
    mean = math.fsum(values) / n
    if n == 1:
        return Summary(1, mean, mean, mean, 0.0)
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(stats.t.ppf((1 + level) / 2, n - 1)) * std / math.sqrt(n)
    return Summary(n, mean, mean - half, mean + half, std)
