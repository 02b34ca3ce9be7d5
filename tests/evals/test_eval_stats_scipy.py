"""summarize's t-interval agrees with scipy and covers the mean (MNIST uses it across models)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from sublab.evals.stats import summarize


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=2, max_size=60))
def test_summarize_matches_scipy_t_interval(values):
    s = summarize(values)
    assert s.n == len(values)
    assert s.mean - s.half_width <= s.mean <= s.mean + s.half_width
    if np.std(values) > 1e-9:
        lo, hi = stats.t.interval(0.95, len(values) - 1, np.mean(values), stats.sem(values))
        assert s.ci_low == pytest.approx(lo, abs=1e-9) and s.ci_high == pytest.approx(hi, abs=1e-9)


def test_single_value_has_zero_half_width_and_empty_is_an_error():
    assert summarize([0.3]).half_width == 0
    with pytest.raises(ValueError):
        summarize([])
