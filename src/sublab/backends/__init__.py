"""Backends talk to models: generate, score, fine-tune. See base.Backend."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sublab.errors import SublabError

if TYPE_CHECKING:
    from sublab.backends.base import Backend, ModelRef


def load_backend(
    ref: ModelRef, device: str = "auto", dtype: str = "auto", batch_size: int = 64
) -> Backend:
    """The backend that runs ``ref`` (by ``ref.provider``); imports torch only when needed."""
    if ref.provider == "hf":
        from sublab.backends.hf import HFBackend

        return HFBackend(ref, device=device, dtype=dtype, batch_size=batch_size)
    raise SublabError(
        f"model {ref.path}: provider {ref.provider!r} has no backend in this version "
        "(available: 'hf')"
    )
