from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sublab.evals.stats import FEW_SEEDS_NOTE, compare, signed_rank_p, summarize

# t quantiles (0.975) by hand from tables: df 1: 12.706205, df 2: 4.302653, df 4: 2.776445


def test_summarize_hand_computed():
    s = summarize([1.0, 2.0, 3.0, 4.0, 5.0])
    assert s.n == 5 and s.mean == 3.0
    assert math.isclose(s.sd, math.sqrt(2.5))
    half = 2.776445 * math.sqrt(2.5) / math.sqrt(5)
    assert math.isclose(s.ci_low, 3 - half, rel_tol=1e-6)
    assert math.isclose(s.ci_high, 3 + half, rel_tol=1e-6)
    assert s.ci == (s.ci_low, s.ci_high)


def test_summarize_two_values():
    s = summarize([0.1, 0.3])
    assert math.isclose(s.mean, 0.2)
    assert math.isclose(s.sd, math.sqrt(0.02))
    half = 12.706205 * math.sqrt(0.02) / math.sqrt(2)
    assert math.isclose(s.ci_high - s.mean, half, rel_tol=1e-6)


def test_summarize_single_and_empty():
    s = summarize([0.045])
    assert s.mean == 0.045 and s.n == 1 and s.ci is None and s.sd is None
    with pytest.raises(ValueError):
        summarize([])
    with pytest.raises(ValueError, match="non-finite"):
        summarize([1.0, float("nan")])


def test_compare_hand_computed():
    control = {0: 0.04, 1: 0.05, 2: 0.045}
    treated = {0: 0.08, 1: 0.07, 2: 0.09, 9: 0.5}  # seed 9 has no control: left out
    c = compare(treated, control)
    diffs = [0.04, 0.02, 0.045]
    mean = sum(diffs) / 3
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 2)
    t = mean / (sd / math.sqrt(3))
    assert c.n_pairs == 3 and c.n_up == 3 and c.up_text == "3/3 up"
    assert math.isclose(c.diff_mean, mean)
    assert math.isclose(c.t, t)
    # two-sided p for t with 2 df: p = 1 - |t| / sqrt(t^2 + 2)
    assert math.isclose(c.p_value, 1 - abs(t) / math.sqrt(t * t + 2), rel_tol=1e-9)
    half = 4.302653 * sd / math.sqrt(3)
    assert math.isclose(c.ci[0], mean - half, rel_tol=1e-6)
    assert c.test == "paired t"
    assert "1 unpaired seed(s) left out" in c.note


def test_compare_fewer_than_three_seeds():
    c = compare({1: 0.2, 2: 0.1}, {1: 0.1, 2: 0.15})
    assert c.p_value is None and c.t is None
    assert FEW_SEEDS_NOTE in c.note
    assert c.n_up == 1 and c.up_text == "1/2 up"
    assert math.isclose(c.diff_mean, (0.1 - 0.05) / 2)
    one = compare({1: 0.2}, {1: 0.1})
    assert one.ci is None and one.p_value is None and one.up_text == "1/1 up"


def test_compare_no_common_seed_and_constant_shift():
    with pytest.raises(ValueError, match="no seed in common"):
        compare({1: 0.2}, {2: 0.1})
    c = compare({1: 0.2, 2: 0.3, 3: 0.4}, {1: 0.1, 2: 0.2, 3: 0.3})
    assert c.p_value is None and "same amount" in c.note
    assert math.isclose(c.diff_mean, 0.1) and c.n_up == 3
    same = compare({1: 0.2, 2: 0.3, 3: 0.4}, {1: 0.2, 2: 0.3, 3: 0.4})
    assert same.p_value is None and same.note.startswith("identical on every seed")
    assert same.diff_mean == 0 and same.n_up == 0


vals = st.floats(-1, 1, allow_nan=False)


@settings(deadline=None, max_examples=100)
@given(st.lists(vals, min_size=2, max_size=12))
def test_ci_contains_mean(xs):
    s = summarize(xs)
    assert s.ci_low <= s.mean + 1e-12 and s.mean - 1e-12 <= s.ci_high


@settings(deadline=None, max_examples=100)
@given(st.dictionaries(st.integers(0, 20), st.tuples(vals, vals), min_size=3, max_size=10))
def test_compare_is_antisymmetric(pairs):
    a = {k: v[0] for k, v in pairs.items()}
    b = {k: v[1] for k, v in pairs.items()}
    ab, ba = compare(a, b), compare(b, a)
    assert math.isclose(ab.diff_mean, -ba.diff_mean, abs_tol=1e-12)
    if ab.p_value is not None and ba.p_value is not None:
        assert math.isclose(ab.p_value, ba.p_value, rel_tol=1e-9, abs_tol=1e-15)
    assert ab.n_up + ba.n_up <= ab.n_pairs


def test_signed_rank_exact_values():
    # exact two-sided null distribution of W+ over 2^n sign patterns (n = 4: 16 patterns)
    # all four up: only one pattern is as extreme on each side -> 2/16
    assert math.isclose(signed_rank_p([0.1, 0.2, 0.3, 0.4]), 2 / 16)
    # one down with the smallest rank: W- = 1; patterns with W- <= 1 are 2 -> 2 * 2/16
    assert math.isclose(signed_rank_p([-0.1, 0.2, 0.3, 0.4]), 4 / 16)
    # a zero difference is left out: n = 3 all up -> 2/8
    assert math.isclose(signed_rank_p([0.0, 1.0, 2.0, 3.0]), 2 / 8)
    with pytest.raises(ValueError, match="non-zero"):
        signed_rank_p([0.0, 0.0, 0.0])


def test_compare_rank_p_ignores_how_far_one_seed_moved():
    control = {s: 0.04 for s in range(12)}
    small = {s: 0.05 + 0.001 * s for s in range(12)}
    wild = {**small, 6: 0.9}  # one seed moves far: the t-test widens, the rank test does not
    c_small, c_wild = compare(small, control), compare(wild, control)
    assert c_small.rank_p is not None and c_wild.rank_p is not None
    assert math.isclose(c_wild.rank_p, 2 / 4096) and math.isclose(c_small.rank_p, 2 / 4096)
    assert c_wild.p_value is not None and c_wild.p_value > 0.05 > c_small.p_value  # type: ignore[operator]
    assert compare({1: 0.2, 2: 0.1}, {1: 0.1, 2: 0.15}).rank_p is None
    assert compare({1: 0.2, 2: 0.3, 3: 0.4}, {1: 0.2, 2: 0.3, 3: 0.4}).rank_p is None
