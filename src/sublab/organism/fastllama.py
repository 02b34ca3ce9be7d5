"""A lean forward pass over a ``LlamaForCausalLM``'s own parameters, for pretraining on CPU.

It computes exactly what the HF model computes (RMSNorm, rotary embeddings, causal SDPA,
SwiGLU; a test checks the hidden states match) but without the per-call work the general
implementation does (mask construction, rotary tables rebuilt every call, unfused norms): on a
tiny model those small ops cost as much as the matrix products. Training updates the HF
model's parameters in place, so the saved checkpoint is an ordinary HF model.

Supports what the organism uses: no attention mask (right padding only), no KV cache,
``num_key_value_heads == num_attention_heads``, default rotary scaling.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from transformers import LlamaForCausalLM


class RotaryCache:
    """cos/sin tables for positions ``0..max_len-1``, built once."""

    def __init__(self, head_dim: int, max_len: int, theta: float) -> None:
        inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        freqs = torch.outer(torch.arange(max_len, dtype=torch.float32), inv)
        emb = torch.cat([freqs, freqs], dim=-1)
        self.cos, self.sin = emb.cos(), emb.sin()

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Rotate ``x`` of shape [B, H, T, D] by position."""
        t = x.shape[-2]
        return rotate(x, self.cos[:t], self.sin[:t])


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding of ``x`` [..., D] with tables ``cos``/``sin`` broadcast against it."""
    half = x.shape[-1] // 2
    rot = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rot * sin


def rope_theta(model: LlamaForCausalLM) -> float:
    cfg = model.config
    params = getattr(cfg, "rope_parameters", None) or {}
    if isinstance(params, dict) and "rope_theta" in params:
        return float(params["rope_theta"])
    return float(getattr(cfg, "rope_theta", 10000.0))


def hidden_states(model: LlamaForCausalLM, ids: torch.Tensor, rope: RotaryCache) -> torch.Tensor:
    """Final (normed) hidden states [B, T, d] of ``model`` for ``ids`` under a causal mask."""
    cfg = model.config
    n_heads = cfg.num_attention_heads
    eps = cfg.rms_norm_eps
    t = ids.shape[1]
    x = model.model.embed_tokens(ids)
    d = x.shape[-1]
    for layer in model.model.layers:
        x = decoder_layer(layer, x, rope.cos[:t], rope.sin[:t], n_heads, eps)
    return F.rms_norm(x, (d,), model.model.norm.weight, eps)


def decoder_layer(
    layer: torch.nn.Module,
    x: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    n_heads: int,
    eps: float,
) -> torch.Tensor:
    """One Llama decoder layer over every position of ``x`` [B, T, d] under a causal mask;
    ``cos``/``sin`` are the rotary tables for positions ``0..T-1``."""
    b, t, d = x.shape
    hd = d // n_heads
    att = layer.self_attn
    h = F.rms_norm(x, (d,), layer.input_layernorm.weight, eps)
    q = att.q_proj(h).view(b, t, n_heads, hd).transpose(1, 2)
    k = att.k_proj(h).view(b, t, n_heads, hd).transpose(1, 2)
    v = att.v_proj(h).view(b, t, n_heads, hd).transpose(1, 2)
    a = F.scaled_dot_product_attention(rotate(q, cos, sin), rotate(k, cos, sin), v, is_causal=True)
    x = x + att.o_proj(a.transpose(1, 2).reshape(b, t, d))
    mlp = layer.mlp
    h = F.rms_norm(x, (d,), layer.post_attention_layernorm.weight, eps)
    return x + mlp.down_proj(F.silu(mlp.gate_proj(h)) * mlp.up_proj(h))


def check_supported(model: LlamaForCausalLM) -> None:
    """Raise if the model uses a feature this forward does not implement."""
    cfg = model.config
    if cfg.num_key_value_heads != cfg.num_attention_heads:
        raise ValueError("fastllama needs num_key_value_heads == num_attention_heads")
    params = getattr(cfg, "rope_parameters", None) or getattr(cfg, "rope_scaling", None) or {}
    kind = params.get("rope_type", "default") if isinstance(params, dict) else "default"
    if kind != "default":
        raise ValueError("fastllama supports only default rotary embeddings")
    if getattr(cfg, "attention_bias", False) or getattr(cfg, "mlp_bias", False):
        raise ValueError("fastllama supports only bias-free projections")
