"""Backends talk to models: generate, score, fine-tune. See base.Backend."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sublab.errors import SublabError

if TYPE_CHECKING:
    from sublab.backends.base import Backend, ModelRef
    from sublab.backends.openai import OpenAISettings


def load_backend(
    ref: ModelRef,
    device: str = "auto",
    dtype: str = "auto",
    batch_size: int = 64,
    api: OpenAISettings | None = None,
) -> Backend:
    """The backend that runs ``ref`` (by ``ref.provider``); imports torch only when needed.

    ``device``, ``dtype`` and ``batch_size`` apply to local models; ``api`` (retries,
    concurrency, the API key's variable name) to ``provider = "openai"``.
    """
    if ref.provider == "hf":
        from sublab.backends.hf import HFBackend

        return HFBackend(ref, device=device, dtype=dtype, batch_size=batch_size)
    if ref.provider == "openai":
        from sublab.backends.openai import OpenAIBackend

        return OpenAIBackend(ref, api)
    raise SublabError(
        f"model {ref.path}: provider {ref.provider!r} has no backend in this version "
        "(available: 'hf', 'openai')"
    )
