"""Models and tokenizers an audit loads once: one :class:`ModelCache` serves every detector and
defence of an audit context, and the benchmark shares one across the contexts of a seed (the
reference and each teacher score several datasets)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ModelCache:
    """Causal LMs (eval mode, float32) by (folder, device) and tokenizers by folder."""

    _models: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False)
    _tokenizers: dict[str, Any] = field(default_factory=dict, repr=False)

    def model(self, path: str, device: str = "cpu") -> Any:
        """The model in ``path`` on ``device`` ('cpu', 'cuda' or 'auto'), loaded on first use."""
        key = (path, device)
        if key not in self._models:
            import torch

            from sublab.train.models import load_model, resolve_device

            self._models[key] = load_model(
                path, resolve_device(device), torch.float32, "model"
            ).eval()
        return self._models[key]

    def tokenizer(self, path: str, what: str = "model") -> Any:
        """The tokenizer of ``path`` (``what`` names the model in errors), loaded on first
        use."""
        if path not in self._tokenizers:
            from sublab.train.models import load_tokenizer

            self._tokenizers[path] = load_tokenizer(path, what)
        return self._tokenizers[path]
