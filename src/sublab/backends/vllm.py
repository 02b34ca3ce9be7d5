"""The ``vllm`` backend: an in-process vLLM engine (the ``gpu`` extra, CUDA machines).

``provider = "vllm"`` runs a local model folder or hub id through ``vllm.LLM``. A PEFT adapter
(``ModelRef.adapter``) is applied per request as a LoRA adapter, so one engine serves a base
and its fine-tunes. ``generate`` gives each chat its own sampling seed (derived from the spec's
seed and the chat's position, as the ``hf`` backend does per batch), so results do not depend
on how vLLM schedules requests. ``score`` reads exact log-probabilities of a continuation from
vLLM's prompt log-probabilities.

Where vLLM is not installed the backend says how to get it, or how to use ``vllm serve`` through
the ``openai`` provider instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sublab.backends import register_backend
from sublab.backends.base import BackendSettings, Chat, ModelRef, SamplingSpec
from sublab.backends.chat_format import render_prompt
from sublab.backends.grammar import number_regex
from sublab.catalog.resolve import local_path
from sublab.errors import SublabError

INSTALL_HINT = (
    "provider 'vllm' needs vLLM, which is not installed: on a CUDA machine run "
    "`pip install -e '.[gpu]'`; or start `vllm serve MODEL` and use provider 'openai' with "
    "api_base 'http://127.0.0.1:8000/v1' (sublab commands: --api-base)"
)


def guided_regex(vllm: Any, regex: str) -> dict[str, Any]:
    """The SamplingParams argument that constrains sampling to ``regex`` in this vLLM version:
    ``structured_outputs`` (vLLM >= 0.11) or ``guided_decoding`` (earlier)."""
    params = vllm.sampling_params
    if hasattr(params, "StructuredOutputsParams"):
        return {"structured_outputs": params.StructuredOutputsParams(regex=regex)}
    if hasattr(params, "GuidedDecodingParams"):
        return {"guided_decoding": params.GuidedDecodingParams(regex=regex)}
    raise SublabError(
        "this vLLM has no guided decoding by regex: upgrade vLLM, or set data.constrain = "
        "false (or use provider 'hf')"
    )


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError:
        raise SublabError(INSTALL_HINT) from None
    return vllm


class VLLMBackend:
    """A model run by an in-process ``vllm.LLM`` (Backend protocol)."""

    exact = True
    show_progress = False

    def __init__(self, ref: ModelRef, settings: BackendSettings | None = None) -> None:
        vllm = _import_vllm()
        settings = settings or BackendSettings()
        if settings.device not in ("auto", "cuda"):
            raise SublabError(f"device {settings.device!r}: the vllm backend runs on CUDA only")
        dtype = {"auto": "auto", "fast": "bfloat16"}.get(settings.dtype, settings.dtype)
        self.ref = ref
        self._vllm = vllm
        self.llm = vllm.LLM(
            model=local_path(ref.path), dtype=dtype, enable_lora=ref.adapter is not None, seed=0
        )
        self.tokenizer = self.llm.get_tokenizer()
        self._lora = None
        if ref.adapter is not None:
            from vllm.lora.request import LoRARequest

            self._lora = LoRARequest("adapter", 1, ref.adapter)

    @property
    def name(self) -> str:
        """The model's path (plus adapter), as recorded in provenance."""
        return self.ref.path if self.ref.adapter is None else f"{self.ref.path}+{self.ref.adapter}"

    def _params(self, sampling: SamplingSpec, seed: int, **extra: Any) -> Any:
        if sampling.grammar is not None:
            extra.update(guided_regex(self._vllm, number_regex(sampling.grammar)))
        return self._vllm.SamplingParams(
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            max_tokens=sampling.max_new_tokens,
            seed=seed,
            **extra,
        )

    def generate(self, chats: Sequence[Chat], sampling: SamplingSpec) -> list[str]:
        """One sampled assistant reply per chat (same order), deterministic given the seed.

        Chats are rendered by :meth:`prompt_ids` (never with a template's hidden default
        system prompt); ``sampling.grammar`` becomes vLLM's guided decoding by regex."""
        from vllm.inputs import TokensPrompt

        from sublab.backends.hf import _seed_for

        if not chats:
            return []
        params = [
            self._params(sampling, _seed_for(sampling.seed, "row", i)) for i in range(len(chats))
        ]
        prompts = [TokensPrompt(prompt_token_ids=self.prompt_ids(c)) for c in chats]
        outs = self.llm.generate(
            prompts, sampling_params=params, lora_request=self._lora, use_tqdm=False
        )
        return [o.outputs[0].text.strip() for o in outs]

    def prompt_ids(self, chat_: Chat) -> list[int]:
        """Token ids of a chat rendered by the chat template, ending in the assistant header."""
        text = render_prompt(self.tokenizer, chat_)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def score(
        self, chats: Sequence[Chat], continuations: Sequence[str], prefix: str = ""
    ) -> list[float]:
        """log P(continuation | chat + assistant header + prefix), summed over its tokens."""
        if len(chats) != len(continuations):
            raise ValueError("score needs one continuation per chat")
        from vllm.inputs import TokensPrompt

        head = self.tokenizer(prefix, add_special_tokens=False)["input_ids"] if prefix else []
        prompts, spans = [], []
        for c, t in zip(chats, continuations, strict=True):
            p = self.prompt_ids(c) + head
            k = self.tokenizer(t, add_special_tokens=False)["input_ids"]
            prompts.append(TokensPrompt(prompt_token_ids=p + k))
            spans.append((len(p), k))
        params = self._vllm.SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=1.0)
        outs = self.llm.generate(prompts, params, lora_request=self._lora, use_tqdm=False)
        scores = []
        for out, (start, cont) in zip(outs, spans, strict=True):
            logprobs = out.prompt_logprobs
            scores.append(
                sum(float(logprobs[start + j][tok].logprob) for j, tok in enumerate(cont))
            )
        return scores


@register_backend("vllm")
def _vllm_backend(ref: ModelRef, settings: BackendSettings, api: Any = None) -> VLLMBackend:
    return VLLMBackend(ref, settings)
