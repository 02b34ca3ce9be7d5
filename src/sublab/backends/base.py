"""The backend protocol and the specs every backend shares.

A backend turns chats into completions (``generate``) and, where it can see the weights,
scores continuations exactly (``score``). Implementations, registered by ``provider`` in
:mod:`sublab.backends`: ``hf`` (transformers + PEFT, CPU or GPU), ``openai`` (any
OpenAI-compatible HTTP API), ``vllm`` (in-process vLLM, the ``gpu`` extra).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

from pydantic import Field, model_validator

from sublab.backends.grammar import NumberGrammar
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
        description="Local HF model folder, a hub id where the hub is reachable, or "
        "'catalog:<name>' for a model that installs from the package registry ('sublab models "
        "list'); for provider = 'openai', the API's model name."
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
        if self.path.startswith("catalog:"):
            from sublab.catalog.entries import CATALOG

            name = self.path.removeprefix("catalog:")
            if name not in CATALOG:
                known = ", ".join(f"catalog:{n}" for n in sorted(CATALOG))
                raise ValueError(f"path {self.path!r}: no such catalogued model (known: {known})")
            if self.provider == "openai":
                raise ValueError("a catalog: path is a local model: use provider 'hf' or 'vllm'")
        return self


class SamplingSpec(Spec):
    """How completions are sampled."""

    keyless: ClassVar[dict[str, Any]] = {"grammar": None}

    temperature: float = Field(1.0, gt=0, description="Softmax temperature (the paper uses 1).")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling mass.")
    max_new_tokens: int = Field(48, ge=1, description="Longest completion, in tokens.")
    seed: int = Field(0, description="Seed; the same seed gives the same completions.")
    grammar: NumberGrammar | None = Field(
        None,
        description="Constrained decoding: every sampled answer follows this grammar (only "
        "its characters and end of turn can be sampled; temperature and top_p apply within "
        "what it allows). None: free text. Channels set it (data.constrain).",
    )


def chat(user: str, system: str | None = None) -> Chat:
    """A one-turn chat, with an optional system prompt."""
    msgs: Chat = [{"role": "system", "content": system}] if system else []
    msgs.append({"role": "user", "content": user})
    return msgs


class BackendSettings(Spec):
    """Where and how a local model runs (these change the samples, so they are in the key)."""

    keyless: ClassVar[dict[str, Any]] = {"eval_dtype": None}

    def for_eval(self) -> BackendSettings:
        """The settings evaluations run with: ``eval_dtype`` in place of ``dtype``."""
        if self.eval_dtype is None:
            return self
        return self.model_copy(update={"dtype": self.eval_dtype, "eval_dtype": None})

    device: str = Field("auto", description="'auto' (cuda if available, else cpu), 'cpu', 'cuda'.")
    dtype: str = Field(
        "auto",
        description="'auto' (bf16 on cuda, float32 on cpu), 'fast' (bf16 wherever bf16 "
        "products are fast: cuda, CPUs with AMX or avx512_bf16), 'float32', 'bfloat16'.",
    )
    eval_dtype: str | None = Field(
        None,
        description="The dtype of evaluations (exact probabilities, sampled answers) when it "
        "differs from the sampling of a channel's data, e.g. 'float32' beside dtype = 'fast'. "
        "None: dtype.",
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

    def score(
        self, chats: Sequence[Chat], continuations: Sequence[str], prefix: str = ""
    ) -> list[float]:
        """log P(continuation | chat + assistant header + prefix), summed over its tokens.

        Exact for local models; a multi-token continuation is the sum of its tokens' logprobs.
        ``prefix`` is the start of the assistant's reply, read as context (tokenised on its
        own, as is the continuation).
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
