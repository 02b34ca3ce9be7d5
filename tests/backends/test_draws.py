"""Counter-based draws: uniform, reproducible, and a Gumbel-max sample of the softmax."""

from __future__ import annotations

import torch

from sublab.backends.draws import chat_keys, gumbel_sample, mix, step_keys, uniforms


def test_uniforms_are_uniform_and_depend_only_on_their_counter():
    keys = chat_keys(123, torch.arange(2000))
    u = uniforms(keys, 50)
    assert u.shape == (2000, 50) and u.dtype == torch.float64
    assert float(u.min()) > 0 and float(u.max()) < 1
    # mean, variance and decile counts of 100k uniforms
    assert abs(float(u.mean()) - 0.5) < 0.005
    assert abs(float(u.var()) - 1 / 12) < 0.002
    counts = torch.histc(u.float(), bins=10, min=0, max=1) / u.numel()
    assert torch.allclose(counts, torch.full((10,), 0.1), atol=0.005)
    # no correlation between neighbouring chats or tokens
    assert abs(float(torch.corrcoef(torch.stack([u[:-1, 0], u[1:, 0]]))[0, 1])) < 0.06
    assert abs(float(torch.corrcoef(torch.stack([u[:, 0], u[:, 1]]))[0, 1])) < 0.06
    # a chat's draws depend on its own counter only
    assert torch.equal(uniforms(keys[[7, 3]], 50), u[[7, 3]])
    assert not torch.equal(uniforms(chat_keys(124, torch.arange(2)), 50), u[:2])
    assert not torch.equal(step_keys(keys, 0), step_keys(keys, 1))


def test_mix_wraps_instead_of_overflowing():
    x = torch.tensor([0, 1, -1, 2**62, -(2**63)])
    h = mix(x)
    assert h.dtype == torch.int64 and len(set(h.tolist())) == 5
    # SplitMix64 of 0 (reference value of the published algorithm)
    assert h[0].item() % 2**64 == 0xE220A8397B1DCDAF


def test_gumbel_sample_follows_the_softmax_and_skips_masked_tokens():
    logits = torch.log(torch.tensor([0.0, 0.5, 0.0, 0.2, 0.3, 0.0]))  # -inf where 0
    n = 40_000
    keys = chat_keys(0, torch.arange(n))
    draws = gumbel_sample(logits.expand(n, -1), keys)
    freq = torch.bincount(draws, minlength=6).double() / n
    assert freq[logits == float("-inf")].sum() == 0
    assert torch.allclose(freq, logits.exp().double(), atol=0.01)  # 4 standard errors
    # the same counters give the same tokens
    assert torch.equal(draws, gumbel_sample(logits.expand(n, -1), keys.clone()))


def test_close_distributions_mostly_draw_the_same_token():
    """The coupling: 1,000 flat distributions over 1,000 tokens, each perturbed slightly,
    agree on most draws; an inverse-CDF coupling would agree on few."""
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn((1000, 1000), generator=gen)
    near = logits + 0.05 * torch.randn((1000, 1000), generator=gen)
    keys = chat_keys(5, torch.arange(1000))
    same = (gumbel_sample(logits, keys) == gumbel_sample(near, keys)).double().mean()
    assert float(same) > 0.9
    other = (gumbel_sample(logits, keys) == gumbel_sample(near, keys + 1)).double().mean()
    assert float(other) < 0.05
