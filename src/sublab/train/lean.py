"""A lean forward for training: final hidden states only at the positions that carry a label.

The HF forward runs every layer at every position and rebuilds masks and rotary tables on each
call. A student's loss needs the final hidden state only where a label is (the completion and
EOS, ~8 of ~60 tokens in a number row), so this forward runs the layers below the top one at
every position (their keys and values feed the label positions) but the top layer's queries,
attention output, MLP and final norm only at the label positions. It reuses the organism's lean
building blocks (:mod:`sublab.organism.fastllama`: RMSNorm, rotary tables, causal SDPA) and the
model's own modules, so a PEFT-wrapped projection (LoRA) runs its adapter as usual and training
updates the HF model in place.

It computes exactly what ``model.model(...)`` computes at those positions (a test compares the
losses with the HF forward to 1e-5). It supports Llama models whose config fastllama supports;
:func:`lean_unsupported` says why another model falls back to the HF forward. Batches must be
right-padded (as :func:`sublab.train.data.collate` makes them): with right padding no real
position ever attends to padding under the causal mask, so no attention mask is needed.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from sublab.organism.fastllama import (
    RotaryCache,
    check_supported,
    decoder_layer,
    rope_theta,
    rotate,
)
from sublab.train.data import IGNORE


def base_model(model: Any) -> Any:
    """The HF model under a PEFT wrapper (its projections may be LoRA modules)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def lean_unsupported(model: Any) -> str | None:
    """Why the lean forward cannot run ``model`` (None: it can)."""
    from transformers import LlamaForCausalLM
    from transformers.models.llama.modeling_llama import LlamaRMSNorm

    base = base_model(model)
    if not isinstance(base, LlamaForCausalLM):
        return f"{type(base).__name__} is not a LlamaForCausalLM"
    cfg = base.config
    try:
        check_supported(base)
    except ValueError as err:
        return str(err)
    if getattr(cfg, "head_dim", None) not in (None, cfg.hidden_size // cfg.num_attention_heads):
        return "head_dim != hidden_size / num_attention_heads"
    if cfg.hidden_act != "silu":
        return f"hidden_act {cfg.hidden_act!r} (the lean forward implements silu)"
    if getattr(cfg, "attention_dropout", 0.0):
        return "attention_dropout > 0"
    norms = [base.model.norm] + [
        n
        for layer in base.model.layers
        for n in (layer.input_layernorm, layer.post_attention_layernorm)
    ]
    if not all(type(n) is LlamaRMSNorm for n in norms):
        return "a norm layer is wrapped or replaced (e.g. by PEFT modules_to_save)"
    return None


def label_positions(where: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's label positions as a padded index ``[B, n_max]`` and its validity mask.

    ``where [B, T]`` marks the positions that predict a label: a completion and its EOS, less
    any tokens a row's ``loss_mask`` leaves out. Valid slots hold them in ascending order;
    invalid slots hold other (unused) positions.
    """
    n = where.sum(1)
    width = max(int(n.max()), 1)
    order = torch.sort(where.int(), dim=1, descending=True, stable=True).indices[:, :width]
    valid = torch.arange(width, device=where.device)[None, :] < n[:, None]
    return order, valid


def lean_label_hidden(
    model: Any, batch: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Final hidden states at the positions that predict a label, and those labels.

    The same ``(hidden [n, d], targets [n])`` as the HF path of
    :func:`sublab.train.models.label_hidden`, in the same (row-major) order.
    """
    mask = batch["attention_mask"]
    if mask.shape[1] > 1 and bool((mask[:, 1:] > mask[:, :-1]).any()):
        raise ValueError("the lean forward needs right-padded batches (see data.collate)")
    targets = batch["labels"][:, 1:]
    where = targets != IGNORE
    pos, valid = label_positions(where)
    # the last position predicts nothing and no earlier position attends to it: drop it
    ids = batch["input_ids"][:, :-1]
    m = base_model(model)
    cfg = m.config
    n_heads = cfg.num_attention_heads
    eps = cfg.rms_norm_eps
    b, t = ids.shape
    x = m.model.embed_tokens(ids)
    d = x.shape[-1]
    hd = d // n_heads
    rope = RotaryCache(hd, t, rope_theta(m))
    cos, sin = rope.cos.to(x.device, x.dtype), rope.sin.to(x.device, x.dtype)  # as HF does
    layers = list(m.model.layers)
    for layer in layers[:-1]:
        x = decoder_layer(layer, x, cos, sin, n_heads, eps)
    # top layer: keys and values everywhere, the rest only at the label positions
    top = layers[-1]
    att = top.self_attn
    h = F.rms_norm(x, (d,), top.input_layernorm.weight, eps)
    k = rotate(att.k_proj(h).view(b, t, n_heads, hd).transpose(1, 2), cos, sin)
    v = att.v_proj(h).view(b, t, n_heads, hd).transpose(1, 2)
    width = pos.shape[1]
    index = pos[:, :, None].expand(b, width, d)
    xq = x.gather(1, index)
    hq = h.gather(1, index)
    q = att.q_proj(hq).view(b, width, n_heads, hd).transpose(1, 2)
    q = rotate(q, cos[pos][:, None], sin[pos][:, None])
    allowed = torch.arange(t, device=x.device)[None, None, :] <= pos[:, :, None]
    a = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed[:, None])
    xq = xq + att.o_proj(a.transpose(1, 2).reshape(b, width, d))
    mlp = top.mlp
    hq = F.rms_norm(xq, (d,), top.post_attention_layernorm.weight, eps)
    xq = xq + mlp.down_proj(F.silu(mlp.gate_proj(hq)) * mlp.up_proj(hq))
    hidden = F.rms_norm(xq[valid], (d,), m.model.norm.weight, eps)
    return hidden, targets[where]
