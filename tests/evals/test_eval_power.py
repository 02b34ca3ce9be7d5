"""seeds_for_power: textbook sample sizes and a simulation of the paired t-test's power."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from sublab.evals.stats import compare, power_paired_t, seeds_for_power


@pytest.mark.parametrize(
    ("effect", "alpha", "seeds"),
    # G*Power, "means: difference from constant (one sample case)", two tails, power 0.8
    [(1.0, 0.05, 10), (0.5, 0.05, 34), (0.8, 0.05, 15)],
)
def test_textbook_sample_sizes(effect, alpha, seeds):
    assert seeds_for_power(effect, 1.0, alpha=alpha) == seeds
    assert power_paired_t(effect, seeds, alpha) >= 0.8 > power_paired_t(effect, seeds - 1, alpha)


def test_power_agrees_with_a_simulated_paired_t_test():
    rng = np.random.default_rng(0)
    n, effect, sims = seeds_for_power(0.03, 0.02), 1.5, 4000
    assert n is not None
    diffs = rng.normal(0.03, 0.02, size=(sims, n))
    rejected = stats.ttest_1samp(diffs, 0.0, axis=1).pvalue < 0.01
    assert rejected.mean() == pytest.approx(power_paired_t(effect, n, 0.01), abs=0.025)
    assert power_paired_t(effect, n, 0.01) >= 0.8


def test_nothing_to_size_gives_none_and_bad_levels_raise():
    assert seeds_for_power(0.0, 1.0) is None
    assert seeds_for_power(1.0, 0.0) is None
    assert seeds_for_power(1e-6, 1.0) is None  # more than MAX_SEEDS
    with pytest.raises(ValueError):
        seeds_for_power(1.0, 1.0, power=1.0)


def test_compare_reports_the_seeds_needed():
    treated = {s: 0.10 + 0.01 * (s % 3) for s in range(5)}
    control = {s: 0.05 for s in range(5)}
    c = compare(treated, control)
    diffs = [treated[s] - control[s] for s in range(5)]
    assert c.seeds_needed == seeds_for_power(np.mean(diffs), np.std(diffs, ddof=1))
    assert c.seeds_needed is not None and c.seeds_needed >= 2
    assert compare({0: 1.0}, {0: 0.5}).seeds_needed is None  # one pair: no spread
    # differences equal but for rounding: t is undefined, and so is the power
    same = compare({0: 0.1 + 1e-17, 1: 0.1, 2: 0.1 + 1e-16, 3: 0.1}, dict.fromkeys(range(4), 0.0))
    assert same.note.startswith("every seed moved by the same amount")
    assert same.seeds_needed is None
