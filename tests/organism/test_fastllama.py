"""The lean training forward computes what the HF Llama computes."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from sublab.organism.fastllama import RotaryCache, check_supported, hidden_states, rope_theta


def tiny_llama(seed=0, **kw):
    torch.manual_seed(seed)
    cfg = dict(
        vocab_size=50,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=40,
        tie_word_embeddings=True,
    )
    cfg.update(kw)
    model = LlamaForCausalLM(LlamaConfig(**cfg)).float()
    # random norms, so a swapped weight would show
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
    return model


@pytest.mark.parametrize("length", [1, 7, 40])
def test_hidden_states_match_hf(length):
    model = tiny_llama()
    rope = RotaryCache(8, 40, rope_theta(model))
    ids = torch.randint(0, 50, (3, length))
    ours = hidden_states(model, ids, rope)
    ref = model.model(input_ids=ids).last_hidden_state
    assert torch.allclose(ours, ref, atol=1e-5, rtol=1e-4)


def test_gradients_match_hf():
    model = tiny_llama(1)
    rope = RotaryCache(8, 40, rope_theta(model))
    ids = torch.randint(0, 50, (2, 12))
    hidden_states(model, ids, rope).pow(2).sum().backward()
    ours = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    model.model(input_ids=ids).last_hidden_state.pow(2).sum().backward()
    for n, p in model.named_parameters():
        assert torch.allclose(ours[n], p.grad, atol=1e-4, rtol=1e-3), n


def test_right_padding_does_not_change_earlier_positions():
    model = tiny_llama(2)
    rope = RotaryCache(8, 40, rope_theta(model))
    ids = torch.randint(0, 50, (1, 10))
    padded = torch.cat([ids, torch.zeros(1, 5, dtype=torch.long)], 1)
    a = hidden_states(model, ids, rope)
    b = hidden_states(model, padded, rope)[:, :10]
    assert torch.allclose(a, b, atol=1e-6)


def test_unsupported_configs_are_refused():
    with pytest.raises(ValueError, match="num_key_value_heads"):
        check_supported(tiny_llama(num_key_value_heads=2))
    with pytest.raises(ValueError, match="bias"):
        check_supported(tiny_llama(attention_bias=True))
    check_supported(tiny_llama())
