"""A causal LM as its decoder and its head, so logits are computed only where and for the
tokens a caller needs (a loss's label positions, a constrained sampler's grammar)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F


def model_parts(model: Any) -> tuple[Any, Any, float | None]:
    """``(decoder, output embeddings, final logit soft-cap or None)`` of a causal LM (or of the
    model under a PEFT wrapper; its adapters stay in the decoder's layers)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    cap = getattr(base.config, "final_logit_softcapping", None)
    return base.get_decoder(), base.get_output_embeddings(), cap


def head_logits(model: Any, hidden: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
    """LM-head logits for ``hidden``, all vocabulary or only the ids in ``rows`` (float32)."""
    _, head, cap = model_parts(model)
    if rows is not None and type(head) is torch.nn.Linear:
        bias = head.bias[rows] if head.bias is not None else None
        logits = F.linear(hidden, head.weight[rows], bias)
    else:
        logits = head(hidden)
        if rows is not None:
            logits = logits[:, rows]
    logits = logits.float()
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits
