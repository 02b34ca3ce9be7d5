"""The backend protocol and the specs every backend shares.

A backend turns chats into completions (``generate``) and, where it can see the weights,
scores continuations exactly (``score``). Implementations, registered by ``provider`` in
:mod:`sublab.backends`: ``hf`` (transformers + PEFT, CPU or GPU), ``openai`` (any
OpenAI-compatible HTTP API), ``vllm`` (in-process vLLM, the ``gpu`` extra).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from pydantic import Field, model_validator

from sublab.config import Spec

SAMPLER_VERSION = 2
"""Version of the ``hf`` sampler's random draws (2: counter-based Gumbel-max draws per chat,
step and token, shared by every model sampled with the same seed; see
:mod:`sublab.backends.draws`). The stages that sample carry it in their artifact keys, so rows
sampled under another version are never reused."""

Chat = list[dict[str, str]]
"""A chat: ``[{"role": "system"|"user"|"assistant", "content": "..."}, ...]``."""


class ModelRef(Spec):
    """Where weights come from (never the weights themselves)."""

    path: str = Field(
        description="Local HF model folder, or a hub id where the hub is reachable; for "
        "provider = 'openai', the API's model name."
    )
    adapter: str | None = Field(None, description="Optional PEFT adapter folder on top of path.")
    provider: Literal["hf", "openai", "vllm"] = Field("hf", description="Which backend runs it.")
    api_base: str | None = Field(
        None, description="Base URL for provider = 'openai', e.g. 'https://api.openai.com/v1'."
    )

    @model_validator(mode="after")
    def _api_base_is_a_url_for_openai(self) -> ModelRef:
        if self.api_base is not None and not self.api_base.startswith(("http://", "https://")):
            raise ValueError(f"api_base {self.api_base!r} must start with http:// or https://")
        if self.provider == "hf" and self.api_base is not None:
            raise ValueError("api_base is only used with provider = 'openai': set provider")
        return self


class SamplingSpec(Spec):
    """How completions are sampled."""

    temperature: float = Field(1.0, gt=0, description="Softmax temperature (the paper uses 1).")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling mass.")
    max_new_tokens: int = Field(48, ge=1, description="Longest completion, in tokens.")
    seed: int = Field(0, description="Seed; the same seed gives the same completions.")


def chat(user: str, system: str | None = None) -> Chat:
    """A one-turn chat, with an optional system prompt."""
    msgs: Chat = [{"role": "system", "content": system}] if system else []
    msgs.append({"role": "user", "content": user})
    return msgs


class BackendSettings(Spec):
    """Where and how a local model runs (these change the samples, so they are in the key)."""

    device: str = Field("auto", description="'auto' (cuda if available, else cpu), 'cpu', 'cuda'.")
    dtype: str = Field(
        "auto", description="'auto' (bf16 on cuda, float32 on cpu), 'float32', 'bfloat16'."
    )
    batch_size: int = Field(64, ge=1, description="Prompts sampled together in one batch.")


@runtime_checkable
class Backend(Protocol):
    """What every backend offers to its callers.

    ``exact`` says whether ``score`` is available (local weights); ``show_progress`` turns the
    backend's own progress bar on or off (callers with a bar of their own turn it off).
    """

    exact: bool
    show_progress: bool

    @property
    def name(self) -> str:
        """The model's name as recorded in provenance."""
        ...

    def generate(self, chats: Sequence[Chat], sampling: SamplingSpec) -> list[str]:
        """One sampled assistant reply per chat (same order), deterministic given the seed."""
        ...

    def score(self, chats: Sequence[Chat], continuations: Sequence[str]) -> list[float]:
        """log P(continuation | chat + assistant header), summed over its tokens.

        Exact for local models; a multi-token continuation is the sum of its tokens' logprobs.
        """
        ...


@dataclass(frozen=True)
class Model:
    """A model a stage uses: how to load it, the key of its weights, and a short label.

    The key identifies the weights (an organism spec hash, a sha256 of the weight files, or the
    key of the artifact that trained them), so every artifact computed from a model is keyed
    by that model.
    """

    ref: ModelRef
    key: str
    label: str
