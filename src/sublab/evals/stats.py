"""Statistics across seeds.

The statistical unit is the **base seed** (for API models, the training seed): the variance of a
subliminal-learning effect lives between base models, so samples within one model are not
independent replicates. Summaries are 95% Student-t intervals over seeds; comparisons are paired
t-tests over the seeds present in both conditions, with a Wilcoxon signed-rank test on the same
pairs (it does not assume normal differences, so one seed that moved far counts only by its
rank), the count of seeds that moved up, and how many seeds a paired t-test would need to
detect the observed difference (:func:`seeds_for_power`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from pydantic import BaseModel, Field
from scipy import stats as sps

CONFIDENCE = 0.95
POWER = 0.8
POWER_ALPHA = 0.01
MAX_SEEDS = 10_000
MIN_PAIRS_FOR_P = 3
FEW_SEEDS_NOTE = "fewer than 3 seeds: no p-value"
# A spread of the differences this small (relative to their size) is rounding noise, not data.
_ZERO_SPREAD = 1e-12


class Summary(BaseModel):
    """Mean of per-seed values with a 95% t-interval."""

    mean: float = Field(description="Mean over seeds.")
    ci_low: float | None = Field(description="Lower end of the 95% t-interval (None if n = 1).")
    ci_high: float | None = Field(description="Upper end of the 95% t-interval (None if n = 1).")
    n: int = Field(description="Number of seeds.")
    sd: float | None = Field(description="Sample standard deviation, ddof 1 (None if n = 1).")

    @property
    def half_width(self) -> float:
        """Half the 95% interval's width (0 for a single seed)."""
        if self.ci_low is None or self.ci_high is None:
            return 0.0
        return (self.ci_high - self.ci_low) / 2

    @property
    def ci(self) -> tuple[float, float] | None:
        """(low, high), or None when there is a single seed."""
        if self.ci_low is None or self.ci_high is None:
            return None
        return (self.ci_low, self.ci_high)


class Comparison(BaseModel):
    """Treatment minus control, paired on seed."""

    diff_mean: float = Field(description="Mean of (treatment - control) over paired seeds.")
    ci: tuple[float, float] | None = Field(
        description="95% t-interval of the mean difference (None with a single pair)."
    )
    n_pairs: int = Field(description="Seeds present in both conditions.")
    t: float | None = Field(description="Paired t statistic (None below 3 pairs or zero spread).")
    p_value: float | None = Field(description="Two-sided p-value (None below 3 pairs).")
    test: str = Field("paired t", description="The test used.")
    rank_p: float | None = Field(
        None,
        description="Two-sided Wilcoxon signed-rank p-value on the same pairs (exact without "
        "ties or zero differences): a check on the t-test that does not assume normal "
        "differences (None below 3 pairs or when every difference is zero).",
    )
    n_up: int = Field(description="Paired seeds where treatment > control.")
    note: str = Field("", description="Caveats: too few seeds, unpaired seeds dropped, ...")
    seeds_needed: int | None = Field(
        None,
        description="Seeds a two-sided paired t-test needs for 80% power at alpha 0.01 if the "
        "true difference had the observed mean and sd (None: a single pair, no spread, no "
        f"difference, or more than {MAX_SEEDS}).",
    )

    @property
    def up_text(self) -> str:
        """Like '6/6 up'."""
        return f"{self.n_up}/{self.n_pairs} up"


def summarize(values: Sequence[float]) -> Summary:
    """Mean, sample sd and 95% t-interval of per-seed values (CI None when n = 1)."""
    xs = [float(v) for v in values]
    n = len(xs)
    if n == 0:
        raise ValueError("summarize needs at least one value")
    if not all(math.isfinite(x) for x in xs):
        raise ValueError(f"non-finite value among {xs}")
    mean = math.fsum(xs) / n
    if n == 1:
        return Summary(mean=mean, ci_low=None, ci_high=None, n=1, sd=None)
    sd = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))
    half = float(sps.t.ppf(0.5 + CONFIDENCE / 2, n - 1)) * sd / math.sqrt(n)
    return Summary(mean=mean, ci_low=mean - half, ci_high=mean + half, n=n, sd=sd)


def power_paired_t(effect: float, n: int, alpha: float = POWER_ALPHA) -> float:
    """Power of a two-sided paired (one-sample) t-test on ``n`` pairs at level ``alpha`` when
    the true standardised difference is ``effect`` (mean / sd of the differences).

    The statistic then follows a non-central t with ``n - 1`` degrees of freedom and
    non-centrality ``effect * sqrt(n)``; power is its mass beyond either critical value.
    """
    if n < 2:
        raise ValueError("a paired t-test needs at least 2 pairs")
    df = n - 1
    crit = float(sps.t.ppf(1 - alpha / 2, df))
    nc = effect * math.sqrt(n)
    return float(sps.nct.sf(crit, df, nc) + sps.nct.cdf(-crit, df, nc))


def seeds_for_power(
    diff_mean: float, diff_sd: float, power: float = POWER, alpha: float = POWER_ALPHA
) -> int | None:
    """The fewest seeds (pairs) a two-sided paired t-test needs to reach ``power`` at level
    ``alpha`` if the true differences have mean ``diff_mean`` and sd ``diff_sd``.

    None when there is nothing to detect (a zero mean), no spread to size the test with, or
    more than :data:`MAX_SEEDS` would be needed.
    """
    if not 0 < power < 1 or not 0 < alpha < 1:
        raise ValueError(f"power {power} and alpha {alpha} must lie in (0, 1)")
    if diff_mean == 0 or not diff_sd > 0 or not math.isfinite(diff_mean / diff_sd):
        return None
    effect = abs(diff_mean) / diff_sd
    # power grows with n: double to a bound that reaches it (large n with a large effect
    # overflows the non-central t), then bisect for the first n that does
    low, high = 2, 2
    while power_paired_t(effect, high, alpha) < power:
        if high >= MAX_SEEDS:
            return None
        low, high = high + 1, min(2 * high, MAX_SEEDS)
    while low < high:
        mid = (low + high) // 2
        if power_paired_t(effect, mid, alpha) >= power:
            high = mid
        else:
            low = mid + 1
    return low


def signed_rank_p(diffs: Sequence[float]) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired differences (zero differences are
    left out; exact when no two absolute differences tie, normal approximation otherwise)."""
    if not any(d != 0 for d in diffs):
        raise ValueError("signed_rank_p needs at least one non-zero difference")
    return float(sps.wilcoxon(list(diffs), zero_method="wilcox", alternative="two-sided").pvalue)


def compare(
    treatment_by_seed: Mapping[int, float], control_by_seed: Mapping[int, float]
) -> Comparison:
    """Paired comparison of two conditions over the seeds they share.

    Fewer than 3 shared seeds: no p-value (the note says so). Seeds present in only one
    condition are left out and the note counts them.
    """
    seeds = sorted(set(treatment_by_seed) & set(control_by_seed))
    if not seeds:
        raise ValueError(
            f"no seed in common: treatment {sorted(treatment_by_seed)}, "
            f"control {sorted(control_by_seed)}"
        )
    diffs = [float(treatment_by_seed[s]) - float(control_by_seed[s]) for s in seeds]
    summary = summarize(diffs)
    notes = []
    dropped = len(set(treatment_by_seed) ^ set(control_by_seed))
    if dropped:
        notes.append(f"{dropped} unpaired seed(s) left out")
    t: float | None = None
    p: float | None = None
    # a spread this small is rounding noise: it sizes neither a t-test nor a power estimate
    spread = summary.sd is not None and summary.sd > _ZERO_SPREAD * max(1.0, *map(abs, diffs))
    if len(seeds) < MIN_PAIRS_FOR_P:
        notes.insert(0, FEW_SEEDS_NOTE)
    elif all(d == 0 for d in diffs):
        notes.insert(0, "identical on every seed")
    elif not spread:
        notes.insert(0, "every seed moved by the same amount: t undefined")
    else:
        assert summary.sd is not None
        t = summary.mean / (summary.sd / math.sqrt(len(diffs)))
        p = float(2 * sps.t.sf(abs(t), len(diffs) - 1))
    testable = len(seeds) >= MIN_PAIRS_FOR_P and any(d != 0 for d in diffs)
    rank_p = signed_rank_p(diffs) if testable else None
    return Comparison(
        diff_mean=summary.mean,
        ci=summary.ci,
        n_pairs=len(seeds),
        t=t,
        p_value=p,
        rank_p=rank_p,
        n_up=sum(d > 0 for d in diffs),
        note="; ".join(notes),
        seeds_needed=seeds_for_power(summary.mean, summary.sd) if spread else None,
    )
