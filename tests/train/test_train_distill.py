"""Properties of the per-token losses."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sublab.train.distill import hard_loss_sum, kl_sum, per_token_kl

logits = st.integers(0, 2**31 - 1).map(
    lambda seed: torch.randn(4, 7, generator=torch.Generator().manual_seed(seed)) * 3
)


@settings(max_examples=60, deadline=None)
@given(t=logits, s=logits, temp=st.floats(0.5, 4.0))
def test_kl_is_nonnegative_zero_on_equal_and_matches_float64(t, s, temp):
    assert float(kl_sum(t, s, temp)) >= -1e-5
    assert abs(float(kl_sum(t, t.clone(), temp))) < 1e-5
    exact = float(per_token_kl(t / temp, s / temp).sum()) * temp**2
    assert abs(float(kl_sum(t, s, temp)) - exact) < 1e-3 * max(1.0, exact)
    # shifting a row's logits by a constant changes neither distribution
    assert abs(float(kl_sum(t + 5.0, s - 2.0, temp)) - float(kl_sum(t, s, temp))) < 1e-3


@settings(max_examples=30, deadline=None)
@given(x=logits, target=st.lists(st.integers(0, 6), min_size=4, max_size=4))
def test_hard_loss_is_the_summed_negative_logprob(x, target):
    y = torch.tensor(target)
    want = -torch.log_softmax(x.double(), -1)[torch.arange(4), y].sum()
    assert abs(float(hard_loss_sum(x, y)) - float(want)) < 1e-4
