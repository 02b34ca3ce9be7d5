"""The ``openai`` backend: any OpenAI-compatible chat-completions API over HTTP.

OpenAI, Together, a vLLM or llama.cpp server, or ``sublab serve`` (a local model behind the same
API). Only the standard library is used (``urllib``).

- ``generate`` sends ``POST {api_base}/chat/completions`` requests from a thread pool
  (``max_concurrency`` at a time). Identical chats in one call are asked together with ``n``
  (at most ``n_per_request`` per request), so a preference evaluation that asks one question
  200 times costs a few requests, not 200.
- Each request carries its own ``seed``, derived from the sampling seed, the chat's content and
  the request's index among that chat's requests: a chat's replies do not depend on the other
  chats in the call, and a retried request asks for the same samples. Whether a seed makes
  replies reproducible is up to the server (``sublab serve`` honours it; hosted APIs try).
- 429, 5xx, timeouts and refused connections are retried with exponential backoff
  (``backoff_s``, doubling, at most ``max_wait_s`` per wait); a ``Retry-After`` header is
  honoured. Other 4xx answers stop at once with the server's own message, the model and the URL
  (both shared with every API client: :mod:`sublab.backends.api_client`).
- The API key is read from the environment variable named by ``api_key_env`` at each request;
  it is never stored in a config, a run directory or this object's provenance.
- ``logprobs`` returns the sampled tokens' log-probabilities (and the top alternatives) where
  the server offers them. ``score`` (exact probability of a given continuation) is not
  supported: it raises a ``SublabError`` that says what to use instead. Fine-tuning through the
  API is :func:`sublab.backends.openai_finetune.finetune_via_api`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, NoReturn

from sublab.backends import register_backend
from sublab.backends.api_client import ApiClient, OpenAISettings, retry_after_seconds
from sublab.backends.base import BackendSettings, Chat, ModelRef, SamplingSpec
from sublab.errors import SublabError

__all__ = [
    "Completion",
    "OpenAIBackend",
    "OpenAISettings",
    "TokenLogprob",
    "chat_key",
    "request_seed",
    "retry_after_seconds",
]


@dataclass(frozen=True)
class TokenLogprob:
    """One sampled token with its log-probability and the server's top alternatives."""

    token: str
    logprob: float
    top: list[tuple[str, float]]
    """The most likely tokens at this position with their logprobs, best first."""


@dataclass(frozen=True)
class Completion:
    """One sampled reply: its text, why it stopped, and its tokens' logprobs if asked for."""

    text: str
    finish_reason: str | None
    tokens: list[TokenLogprob] | None = None


def chat_key(chat_: Chat) -> str:
    """A stable identity of a chat's content (groups repeats; seeds each chat's requests)."""
    return hashlib.sha256(json.dumps(chat_, sort_keys=True).encode()).hexdigest()


def request_seed(seed: int, chat_: Chat, part: int) -> int:
    """The ``seed`` sent with request ``part`` of ``chat_``: 31 bits, a function of its inputs."""
    h = hashlib.sha256(f"sublab.openai:{seed}:{chat_key(chat_)}:{part}".encode()).digest()
    return int.from_bytes(h[:8], "little") & 0x7FFFFFFF


class OpenAIBackend:
    """A model behind an OpenAI-compatible ``/chat/completions`` endpoint (Backend protocol)."""

    exact = False
    """No exact scores: the weights are behind the API."""
    show_progress = False
    """Requests run in a thread pool without a bar of their own."""

    def __init__(self, ref: ModelRef, settings: OpenAISettings | None = None) -> None:
        if ref.provider != "openai":
            raise SublabError(
                f"model {ref.path} has provider = {ref.provider!r}; OpenAIBackend runs "
                "provider 'openai'"
            )
        if not ref.api_base:
            raise SublabError(
                f"model {ref.path}: provider 'openai' needs api_base "
                "(e.g. https://api.openai.com/v1 or http://127.0.0.1:8000/v1)"
            )
        if ref.adapter is not None:
            raise SublabError(
                f"model {ref.path}: a PEFT adapter cannot be put on an API model; remove "
                "'adapter' (or serve the adapted model with 'sublab serve MODEL --adapter A')"
            )
        self.ref = ref
        self.settings = settings or OpenAISettings()
        self.base_url = ref.api_base.rstrip("/")
        self.url = f"{self.base_url}/chat/completions"
        self._api = ApiClient(self.base_url, self.settings, f"model {ref.path!r}")

    @property
    def name(self) -> str:
        """The model and its endpoint, as recorded in provenance (never the key)."""
        return f"{self.ref.path}@{self.base_url}"

    # ------------------------------------------------------------ protocol

    def generate(self, chats: Sequence[Chat], sampling: SamplingSpec) -> list[str]:
        """One sampled assistant reply per chat (same order); repeats go out together with n."""
        if sampling.grammar is not None:
            raise SublabError(
                f"model {self.name}: an OpenAI-compatible API cannot constrain decoding to a "
                "grammar here; set data.constrain = false (the filter still cleans the rows)"
            )
        groups: dict[str, list[int]] = {}
        for i, c in enumerate(chats):
            groups.setdefault(chat_key(c), []).append(i)
        unique = [chats[idx[0]] for idx in groups.values()]
        counts = [len(idx) for idx in groups.values()]
        replies = self._sample(unique, counts, sampling, logprobs=None)
        out = [""] * len(chats)
        for idx, got in zip(groups.values(), replies, strict=True):
            for i, completion in zip(idx, got, strict=True):
                out[i] = completion.text
        return out

    def generate_n(self, chats: Sequence[Chat], sampling: SamplingSpec, n: int) -> list[list[str]]:
        """``n`` sampled replies per chat."""
        if n < 1:
            raise SublabError(f"n must be >= 1 (got {n})")
        got = self._sample(list(chats), [n] * len(chats), sampling, logprobs=None)
        return [[c.text for c in cs] for cs in got]

    def logprobs(
        self, chats: Sequence[Chat], sampling: SamplingSpec, top_logprobs: int = 0, n: int = 1
    ) -> list[list[Completion]]:
        """``n`` replies per chat with each sampled token's logprob and ``top_logprobs`` others.

        Raises a SublabError when the server does not return logprobs.
        """
        if not 0 <= top_logprobs <= 20:
            raise SublabError(f"top_logprobs must be in 0..20 (got {top_logprobs})")
        if n < 1:
            raise SublabError(f"n must be >= 1 (got {n})")
        return self._sample(list(chats), [n] * len(chats), sampling, logprobs=top_logprobs)

    def score(
        self, chats: Sequence[Chat], continuations: Sequence[str], prefix: str = ""
    ) -> list[float]:
        """Not supported: an API does not give the probability of a continuation it did not
        sample."""
        raise SublabError(
            f"model {self.name}: exact scores (log P of a given continuation) are not supported "
            "by the openai backend; use a local model (provider 'hf', or the folder you serve) "
            "or turn exact probabilities off (sublab eval --no-exact)"
        )

    def finetune(self, *args: object, **kwargs: object) -> NoReturn:
        """Not supported here: ``finetune_via_api`` runs a job on the API's fine-tuning endpoint."""
        raise SublabError(
            f"model {self.name}: fine-tuning is not supported by the openai backend object; "
            "run an API fine-tuning job with 'sublab finetune-api' "
            "(sublab.backends.openai_finetune.finetune_via_api), or fine-tune a local model "
            "with 'sublab finetune'"
        )

    # ------------------------------------------------------------ requests

    def _payload(
        self, chat_: Chat, sampling: SamplingSpec, n: int, seed: int, logprobs: int | None
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.ref.path,
            "messages": chat_,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            self.settings.max_tokens_field: sampling.max_new_tokens,
            "n": n,
            "seed": seed,
        }
        if logprobs is not None:
            payload["logprobs"] = True
            if logprobs > 0:
                payload["top_logprobs"] = logprobs
        return payload

    def _sample(
        self,
        chats: Sequence[Chat],
        counts: Sequence[int],
        sampling: SamplingSpec,
        logprobs: int | None,
    ) -> list[list[Completion]]:
        """``counts[i]`` completions of ``chats[i]``, requests run concurrently."""
        jobs: list[tuple[int, dict[str, Any], int]] = []  # (chat index, payload, n)
        per = self.settings.n_per_request
        for i, (c, count) in enumerate(zip(chats, counts, strict=True)):
            for part, start in enumerate(range(0, count, per)):
                n = min(per, count - start)
                seed = request_seed(sampling.seed, c, part)
                jobs.append((i, self._payload(c, sampling, n, seed, logprobs), n))
        results: list[list[Completion] | None] = [None] * len(jobs)
        workers = min(self.settings.max_concurrency, len(jobs))
        if workers <= 1:
            for j, (_, payload, n) in enumerate(jobs):
                results[j] = self._complete(payload, n, logprobs is not None)
        else:
            pool = ThreadPoolExecutor(workers, thread_name_prefix="sublab-openai")
            try:
                futures = {
                    pool.submit(self._complete, payload, n, logprobs is not None): j
                    for j, (_, payload, n) in enumerate(jobs)
                }
                done, _ = wait(futures, return_when=FIRST_EXCEPTION)
                failed = [f for f in done if f.exception() is not None]
                if failed:
                    raise failed[0].exception()  # type: ignore[misc]
                for f, j in futures.items():
                    results[j] = f.result()
            finally:  # on an error or Ctrl-C, requests not yet sent are dropped, not sent
                pool.shutdown(wait=True, cancel_futures=True)
        out: list[list[Completion]] = [[] for _ in chats]
        for (i, _, _), got in zip(jobs, results, strict=True):
            assert got is not None
            out[i].extend(got)
        return out

    def _complete(self, payload: dict[str, Any], n: int, want_logprobs: bool) -> list[Completion]:
        data = self._post(payload)
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices:
            raise SublabError(
                f"{self.url}: model {self.ref.path!r}: the response has no 'choices' "
                f"(got keys {sorted(data)}); is api_base an OpenAI-compatible /v1 endpoint?"
            )
        if len(choices) != n:
            raise SublabError(
                f"{self.url}: model {self.ref.path!r}: asked for n={n} replies, got "
                f"{len(choices)}; this server does not honour 'n': set n_per_request = 1 "
                "(sublab eval --n-per-request 1; [api] n_per_request = 1 in a config)"
            )
        choices = sorted(choices, key=lambda ch: ch.get("index", 0))
        return [self._completion(ch, want_logprobs) for ch in choices]

    def _completion(self, choice: dict[str, Any], want_logprobs: bool) -> Completion:
        message = choice.get("message") or {}
        text = message.get("content")
        if not isinstance(text, str):
            text = ""  # a refusal or a tool call: no text reply
        tokens = None
        if want_logprobs:
            lp = choice.get("logprobs")
            content = lp.get("content") if isinstance(lp, dict) else None
            if not isinstance(content, list):
                raise SublabError(
                    f"model {self.name}: logprobs are not supported by this backend's server "
                    "(its reply has no 'logprobs.content'); use a server that offers "
                    "logprobs/top_logprobs, or a local model"
                )
            tokens = [
                TokenLogprob(
                    token=t["token"],
                    logprob=float(t["logprob"]),
                    top=[(a["token"], float(a["logprob"])) for a in t.get("top_logprobs") or []],
                )
                for t in content
            ]
        return Completion(
            text=text.strip(), finish_reason=choice.get("finish_reason"), tokens=tokens
        )

    def _post(self, payload: dict[str, Any]) -> dict[str, Any]:
        """POST to /chat/completions with retries; the parsed JSON body or a SublabError."""
        return self._api.post_json("chat/completions", payload)


@register_backend("openai")
def _openai_backend(
    ref: ModelRef, settings: BackendSettings, api: OpenAISettings | None = None
) -> OpenAIBackend:
    return OpenAIBackend(ref, api)
