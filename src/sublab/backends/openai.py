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
  honoured. Other 4xx answers stop at once with the server's own message, the model and the URL.
- The API key is read from the environment variable named by ``api_key_env`` at each request;
  it is never stored in a config, a run directory or this object's provenance.
- ``logprobs`` returns the sampled tokens' log-probabilities (and the top alternatives) where
  the server offers them. ``score`` (exact probability of a given continuation) and fine-tuning
  are not supported: both raise a ``SublabError`` that says what to use instead.
"""

from __future__ import annotations

import email.utils
import hashlib
import http.client
import json
import os
import random
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Literal, NoReturn

from pydantic import Field, field_validator

from sublab.backends import register_backend
from sublab.backends.base import BackendSettings, Chat, ModelRef, SamplingSpec
from sublab.config import Spec
from sublab.errors import SublabError

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class OpenAISettings(Spec):
    """How the openai backend talks to its server (none of it changes what is sampled)."""

    api_key_env: str = Field(
        "OPENAI_API_KEY",
        description="NAME of the environment variable that holds the API key (never the key "
        "itself). When it is unset no Authorization header is sent (fine for local servers).",
    )
    max_concurrency: int = Field(16, ge=1, description="Requests in flight at once.")
    max_retries: int = Field(
        5, ge=0, description="Retries of one request after 429, 5xx, a timeout or no connection."
    )
    backoff_s: float = Field(
        1.0, ge=0, description="Wait before the first retry; doubles at each further retry."
    )
    max_wait_s: float = Field(
        60.0, ge=0, description="Longest single wait between retries (Retry-After included)."
    )
    timeout_s: float = Field(120.0, gt=0, description="Seconds to wait for one response.")
    n_per_request: int = Field(
        16,
        ge=1,
        le=128,
        description="Most replies asked of one request with 'n' when a chat repeats; "
        "1 for servers that ignore 'n'.",
    )
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = Field(
        "max_tokens",
        description="Request field that carries sampling.max_new_tokens ('max_completion_tokens' "
        "for OpenAI's reasoning models).",
    )

    @field_validator("api_key_env")
    @classmethod
    def _a_name_not_a_key(cls, value: str) -> str:
        if not _ENV_NAME.match(value):
            raise ValueError(
                "give the NAME of an environment variable (e.g. OPENAI_API_KEY), not the key; "
                "letters, digits and '_' only"
            )
        return value


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


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` header as seconds (delta-seconds or an HTTP date); None if absent."""
    if value is None or not value.strip():
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _server_message(body: bytes) -> str:
    """The ``error.message`` of an OpenAI-style error body, else the body's start."""
    text = body.decode("utf-8", errors="replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text[:500] or "(empty body)"
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return err["message"]
        if isinstance(err, str):
            return err
    return text[:500]


class _Retryable(Exception):
    """A failed attempt worth retrying (429, 5xx, timeout, no connection)."""

    def __init__(self, what: str, wait_s: float | None = None) -> None:
        super().__init__(what)
        self.what = what
        self.wait_s = wait_s


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
        self._jitter = random.Random()
        self._jitter_lock = threading.Lock()

    @property
    def name(self) -> str:
        """The model and its endpoint, as recorded in provenance (never the key)."""
        return f"{self.ref.path}@{self.base_url}"

    # ------------------------------------------------------------ protocol

    def generate(self, chats: Sequence[Chat], sampling: SamplingSpec) -> list[str]:
        """One sampled assistant reply per chat (same order); repeats go out together with n."""
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

    def score(self, chats: Sequence[Chat], continuations: Sequence[str]) -> list[float]:
        """Not supported: an API does not give the probability of a continuation it did not
        sample."""
        raise SublabError(
            f"model {self.name}: exact scores (log P of a given continuation) are not supported "
            "by the openai backend; use a local model (provider 'hf', or the folder you serve) "
            "or turn exact probabilities off (sublab eval --no-exact)"
        )

    def finetune(self, *args: object, **kwargs: object) -> NoReturn:
        """Not supported: train locally (``sublab finetune``) and serve the result."""
        raise SublabError(
            f"model {self.name}: fine-tuning is not supported by the openai backend; fine-tune "
            "a local model with 'sublab finetune' (and 'sublab serve' it if you want an API)"
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

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = os.environ.get(self.settings.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _post(self, payload: dict[str, Any]) -> dict[str, Any]:
        """POST with retries; returns the parsed JSON body or raises a SublabError."""
        body = json.dumps(payload).encode("utf-8")
        s = self.settings
        last = ""
        for attempt in range(s.max_retries + 1):
            try:
                return self._attempt(body)
            except _Retryable as err:
                last = err.what
                if attempt == s.max_retries:
                    break
                time.sleep(self._wait_s(attempt, err.wait_s))
        raise SublabError(
            f"{self.url}: model {self.ref.path!r}: gave up after {s.max_retries + 1} attempt(s); "
            f"last error: {last}. Check that the server is up and api_base is right "
            "(or raise max_retries / timeout_s)"
        )

    def _wait_s(self, attempt: int, retry_after: float | None) -> float:
        s = self.settings
        if retry_after is not None:
            return min(retry_after, s.max_wait_s)
        with self._jitter_lock:  # full jitter between half and all of the backoff
            frac = 0.5 + 0.5 * self._jitter.random()
        return min(s.backoff_s * 2**attempt * frac, s.max_wait_s)

    def _attempt(self, body: bytes) -> dict[str, Any]:
        req = urllib.request.Request(self.url, data=body, headers=self._headers(), method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.settings.timeout_s) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as err:
            message = _server_message(err.read())
            if err.code == 429 or err.code >= 500:
                wait_s = retry_after_seconds(err.headers.get("Retry-After"))
                raise _Retryable(f"HTTP {err.code}: {message}", wait_s) from None
            self._client_error(err.code, message)
        except urllib.error.URLError as err:
            raise _Retryable(f"cannot connect: {err.reason}") from None
        except (TimeoutError, ConnectionError, http.client.HTTPException) as err:
            raise _Retryable(f"{type(err).__name__}: {err}") from None
        try:
            data = json.loads(raw)
        except ValueError:
            raise SublabError(
                f"{self.url}: model {self.ref.path!r}: the response is not JSON "
                f"({raw[:200]!r}); is api_base an OpenAI-compatible /v1 endpoint?"
            ) from None
        if not isinstance(data, dict):
            raise SublabError(f"{self.url}: the response is not a JSON object ({raw[:200]!r})")
        return data

    def _client_error(self, code: int, message: str) -> NoReturn:
        hint = ""
        env = self.settings.api_key_env
        if code in (401, 403):
            sent = "was sent" if os.environ.get(env) else "was not sent: it is not set"
            hint = f" (the key from ${env} {sent}; set it, or name another with api_key_env)"
        elif code == 404:
            hint = " (check the model name and that api_base ends in the API's version, e.g. /v1)"
        raise SublabError(f"{self.url}: model {self.ref.path!r}: HTTP {code}: {message}{hint}")


@register_backend("openai")
def _openai_backend(
    ref: ModelRef, settings: BackendSettings, api: OpenAISettings | None = None
) -> OpenAIBackend:
    return OpenAIBackend(ref, api)
