"""The t-interval across models agrees with scipy and covers the mean."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from sublab.mnist.stats import t_interval


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=2, max_size=60))
def test_t_interval_matches_scipy(values):
    s = t_interval(values)
    assert s.n == len(values)
    assert s.low <= s.mean <= s.high
    if np.std(values) > 1e-9:
        lo, hi = stats.t.interval(0.95, len(values) - 1, np.mean(values), stats.sem(values))
        assert s.low == pytest.approx(lo, abs=1e-9) and s.high == pytest.approx(hi, abs=1e-9)


def test_single_value_and_empty():
    assert t_interval([0.3]).half_width == 0
    with pytest.raises(ValueError):
        t_interval([])
