"""Backends talk to models: generate, score, fine-tune. See :class:`base.Backend`.

Backends are registered by the ``provider`` of a :class:`~sublab.backends.base.ModelRef`
(``hf``, ``openai``, ``vllm``); :func:`load_backend` is the one place that turns a reference
into a running backend. A new backend is a module with a factory decorated with
:func:`register_backend`, listed in :data:`BUILTIN_BACKEND_MODULES` or imported before use.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from sublab.errors import SublabError

if TYPE_CHECKING:
    from sublab.backends.base import Backend, BackendSettings, ModelRef
    from sublab.backends.openai import OpenAISettings

BackendFactory = Callable[["ModelRef", "BackendSettings", "OpenAISettings | None"], "Backend"]
"""``factory(ref, settings, api) -> Backend``: ``settings`` apply to local models, ``api``
(retries, concurrency, the key's variable name) to HTTP APIs."""

BACKENDS: dict[str, BackendFactory] = {}
"""provider -> factory."""

BUILTIN_BACKEND_MODULES: dict[str, str] = {
    "hf": "sublab.backends.hf",
    "openai": "sublab.backends.openai",
    "vllm": "sublab.backends.vllm",
}
"""Where each built-in provider's factory lives (imported on first use: torch, vllm and the
HTTP client are only loaded when a model needs them)."""

F = TypeVar("F", bound=BackendFactory)


def register_backend(provider: str) -> Callable[[F], F]:
    """Register ``factory(ref, settings, api)`` as the backend of ``provider``."""

    def register(factory: F) -> F:
        BACKENDS[provider] = factory
        return factory

    return register


def backend_factory(provider: str) -> BackendFactory:
    """The registered factory of ``provider`` (importing its built-in module if needed)."""
    if provider not in BACKENDS and provider in BUILTIN_BACKEND_MODULES:
        importlib.import_module(BUILTIN_BACKEND_MODULES[provider])
    if provider not in BACKENDS:
        known = ", ".join(sorted(set(BACKENDS) | set(BUILTIN_BACKEND_MODULES)))
        raise SublabError(f"provider {provider!r} has no backend (known: {known})")
    return BACKENDS[provider]


def load_backend(
    ref: ModelRef,
    settings: BackendSettings | None = None,
    api: OpenAISettings | None = None,
) -> Backend:
    """The backend that runs ``ref``, chosen by ``ref.provider``."""
    from sublab.backends.base import BackendSettings

    return backend_factory(ref.provider)(ref, settings or BackendSettings(), api)
