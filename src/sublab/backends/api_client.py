"""HTTP requests to an OpenAI-style API, with the retries and error messages every client shares.

Only the standard library is used (``urllib``). :class:`ApiClient` sends JSON (or
multipart/form-data) requests to ``{api_base}/{path}`` and returns the parsed JSON object:

- 429, 5xx, timeouts and refused connections are retried with exponential backoff
  (``backoff_s``, doubling, at most ``max_wait_s`` per wait, full jitter between half and all of
  it); a ``Retry-After`` header is honoured.
- Other 4xx answers stop at once with a SublabError that carries the server's own message, the
  subject (e.g. the model) and the URL; 401/403 say whether the key was sent.
- The API key is read from the environment variable named by ``api_key_env`` at each request.
- Requests that create something can carry an ``Idempotency-Key`` so a retried request after a
  lost reply does not create it twice, where the server honours the header.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import os
import random
import re
import threading
import time
import urllib.error
import urllib.request
import uuid
from typing import Any, Literal, NoReturn

from pydantic import Field, field_validator

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


def server_message(body: bytes) -> str:
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


def multipart_body(
    fields: dict[str, str], files: dict[str, tuple[str, bytes, str]]
) -> tuple[bytes, str]:
    """A multipart/form-data body and its Content-Type (``files``: name -> filename, data, type)."""
    boundary = f"sublab-{uuid.uuid4().hex}"
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + value.encode()
            + b"\r\n"
        )
    for name, (filename, data, ctype) in files.items():
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: {ctype}\r\n\r\n'
        )
        parts.append(head.encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


class _Retryable(Exception):
    """A failed attempt worth retrying (429, 5xx, timeout, no connection)."""

    def __init__(self, what: str, wait_s: float | None = None) -> None:
        super().__init__(what)
        self.what = what
        self.wait_s = wait_s


class ApiClient:
    """Requests to one API base URL, retried and explained the same way for every caller."""

    def __init__(
        self,
        base_url: str,
        settings: OpenAISettings,
        subject: str,
        not_found_hint: str = "check the model name and that api_base ends in the API's "
        "version, e.g. /v1",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.settings = settings
        self.subject = subject
        """What the requests are about, named in every error (e.g. ``model 'gpt-4.1'``)."""
        self.not_found_hint = not_found_hint
        self._jitter = random.Random()
        self._jitter_lock = threading.Lock()

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def get(self, path: str) -> dict[str, Any]:
        """GET ``path`` with retries; the parsed JSON object."""
        return self.request("GET", path)

    def post_json(
        self, path: str, payload: dict[str, Any], idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """POST ``payload`` as JSON with retries; the parsed JSON object."""
        body = json.dumps(payload).encode("utf-8")
        return self.request("POST", path, body, "application/json", idempotency_key)

    def post_multipart(
        self,
        path: str,
        fields: dict[str, str],
        files: dict[str, tuple[str, bytes, str]],
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """POST a multipart/form-data body with retries; the parsed JSON object."""
        body, ctype = multipart_body(fields, files)
        return self.request("POST", path, body, ctype, idempotency_key)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str = "application/json",
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Send with retries; the parsed JSON object, or a SublabError that says what to fix."""
        url = self.url(path)
        s = self.settings
        last = ""
        for attempt in range(s.max_retries + 1):
            try:
                return self._attempt(method, url, body, content_type, idempotency_key)
            except _Retryable as err:
                last = err.what
                if attempt == s.max_retries:
                    break
                time.sleep(self.wait_s(attempt, err.wait_s))
        raise SublabError(
            f"{url}: {self.subject}: gave up after {s.max_retries + 1} attempt(s); "
            f"last error: {last}. Check that the server is up and api_base is right "
            "(or raise max_retries / timeout_s)"
        )

    def wait_s(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before retry ``attempt`` + 1."""
        s = self.settings
        if retry_after is not None:
            return min(retry_after, s.max_wait_s)
        with self._jitter_lock:  # full jitter between half and all of the backoff
            frac = 0.5 + 0.5 * self._jitter.random()
        return min(s.backoff_s * 2**attempt * frac, s.max_wait_s)

    def headers(self, content_type: str = "application/json") -> dict[str, str]:
        """Content-Type, Accept and (when its variable is set) the API key."""
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        key = os.environ.get(self.settings.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _attempt(
        self,
        method: str,
        url: str,
        body: bytes | None,
        content_type: str,
        idempotency_key: str | None,
    ) -> dict[str, Any]:
        headers = self.headers(content_type)
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        req = urllib.request.Request(url, data=body, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=self.settings.timeout_s) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as err:
            message = server_message(err.read())
            if err.code == 429 or err.code >= 500:
                wait_s = retry_after_seconds(err.headers.get("Retry-After"))
                raise _Retryable(f"HTTP {err.code}: {message}", wait_s) from None
            self._client_error(url, err.code, message)
        except urllib.error.URLError as err:
            raise _Retryable(f"cannot connect: {err.reason}") from None
        except (TimeoutError, ConnectionError, http.client.HTTPException) as err:
            raise _Retryable(f"{type(err).__name__}: {err}") from None
        try:
            data = json.loads(raw)
        except ValueError:
            raise SublabError(
                f"{url}: {self.subject}: the response is not JSON "
                f"({raw[:200]!r}); is api_base an OpenAI-compatible /v1 endpoint?"
            ) from None
        if not isinstance(data, dict):
            raise SublabError(f"{url}: the response is not a JSON object ({raw[:200]!r})")
        return data

    def _client_error(self, url: str, code: int, message: str) -> NoReturn:
        hint = ""
        env = self.settings.api_key_env
        if code in (401, 403):
            sent = "was sent" if os.environ.get(env) else "was not sent: it is not set"
            hint = f" (the key from ${env} {sent}; set it, or name another with api_key_env)"
        elif code == 404:
            hint = f" ({self.not_found_hint})"
        raise SublabError(f"{url}: {self.subject}: HTTP {code}: {message}{hint}")
