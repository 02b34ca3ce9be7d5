"""``sublab serve``: a local model behind an OpenAI-compatible HTTP API.

A standard-library ``ThreadingHTTPServer`` in front of :class:`~sublab.backends.hf.HFBackend`:

- ``POST /v1/chat/completions`` — ``model``, ``messages``, ``n``, ``temperature``, ``top_p``,
  ``max_tokens`` (or ``max_completion_tokens``), ``seed``, ``logprobs``/``top_logprobs``;
  the reply has OpenAI's shape (``choices[].message.content``, ``finish_reason`` ``stop`` or
  ``length``, ``logprobs.content[]``, ``usage``). Errors come back as OpenAI-style
  ``{"error": {"message", "type", "param", "code"}}`` with 400/401/404/411/413.
- ``GET /v1/models`` (and ``/v1/models/{id}``), ``GET /health``.

A POST body is read only after its ``Content-Length`` is checked: a body over
``max_body_bytes`` (default 1 MiB; ``sublab serve --max-body-bytes``) is refused with 413
without reading it, a POST without ``Content-Length`` (e.g. chunked) with 411, and a length
that is not a non-negative integer with 400. A client that stops sending mid-body is dropped
after :data:`READ_TIMEOUT_S` seconds. A refused body is never stored: the reply is sent, then
whatever the client still sends is discarded (for up to :data:`DRAIN_S` seconds) so that it
can read the reply, and the connection is closed.

One request runs at a time (a lock around the model); the ``n`` replies of one request are
sampled in one batch. Requests are not batched together, so a request's ``seed`` alone decides
its replies: the same request gives the same replies, whatever else the server is doing.
``temperature = 0`` samples greedily. Without ``max_tokens`` a reply is at most 128 tokens,
fewer where the model's context (``max_position_embeddings``) leaves less room; a
``max_tokens`` that does not fit is refused (``context_length_exceeded``). Logprobs are the
model's own (temperature 1, before top-p) log-probabilities of the sampled tokens, as vLLM
reports them by default.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sublab.backends.base import Chat, SamplingSpec
from sublab.errors import SublabError

if TYPE_CHECKING:
    from sublab.backends.hf import HFBackend

MAX_N = 128
DEFAULT_MAX_BODY_BYTES = 1 << 20
"""Largest request body read by default (1 MiB: about 250k tokens of messages)."""
READ_TIMEOUT_S = 30.0
"""A connection that sends nothing for this long is closed (a stalled body, an idle client)."""
DRAIN_S = 2.0
"""After refusing a body unread, discard what the client still sends for at most this long."""
MAX_TOKENS_LIMIT = 8192
DEFAULT_MAX_TOKENS = 128
GREEDY_TEMPERATURE = 1e-5
"""``temperature = 0`` is sampled at this temperature: the arg-max token, ties aside."""

SUPPORTED = {
    "model",
    "messages",
    "n",
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "seed",
    "logprobs",
    "top_logprobs",
    "stream",
    "user",
}
ROLES = {"system", "user", "assistant", "developer"}


class RequestError(Exception):
    """A request the server refuses, with the HTTP status and OpenAI-style error fields."""

    def __init__(
        self, status: int, message: str, param: str | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        kind = {401: "authentication_error", 404: "not_found_error"}.get(
            self.status, "invalid_request_error"
        )
        return {
            "error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}
        }


@dataclass(frozen=True)
class ChatRequest:
    """A validated chat-completions request."""

    chat: Chat
    n: int
    sampling: SamplingSpec
    top_logprobs: int | None
    """None: no logprobs; k >= 0: logprobs with k alternatives per token."""
    max_tokens_given: bool = True
    """False: ``sampling.max_new_tokens`` is the default, cut to fit the model's context."""
    model: str = ""
    """The model asked for (one of the served names)."""


def _number(body: dict[str, Any], name: str, default: float, lo: float, hi: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise RequestError(400, f"'{name}' must be a number in [{lo}, {hi}] (got {value!r})", name)
    return float(value)


def _integer(body: dict[str, Any], name: str, default: int, lo: int, hi: int) -> int:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise RequestError(
            400, f"'{name}' must be an integer in [{lo}, {hi}] (got {value!r})", name
        )
    return value


def _messages(value: Any) -> Chat:
    if not isinstance(value, list) or not value:
        raise RequestError(400, "'messages' must be a non-empty list of messages", "messages")
    out: Chat = []
    for i, m in enumerate(value):
        where = f"messages[{i}]"
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise RequestError(
                400, f"{where}: needs a 'role' in {sorted(ROLES)} and a 'content'", where
            )
        content = m.get("content")
        if isinstance(content, list):  # [{"type": "text", "text": ...}, ...]
            parts = []
            for part in content:
                if not (isinstance(part, dict) and part.get("type") == "text"):
                    raise RequestError(
                        400, f"{where}.content: only text parts are supported", where
                    )
                parts.append(str(part.get("text", "")))
            content = "".join(parts)
        if not isinstance(content, str):
            raise RequestError(400, f"{where}.content must be a string or text parts", where)
        role = "system" if m["role"] == "developer" else m["role"]
        out.append({"role": role, "content": content})
    return out


def check_body(body: Any, allowed: set[str] | frozenset[str]) -> dict[str, Any]:
    """A request body that is a JSON object of ``allowed`` fields, or a RequestError (400)
    naming the first field that is not."""
    if not isinstance(body, dict):
        raise RequestError(400, "the request body must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise RequestError(
            400,
            f"unsupported parameter(s) {unknown}: sublab serve supports {sorted(allowed)}",
            unknown[0],
        )
    return body


def parse_request(body: Any, served: set[str]) -> ChatRequest:
    """Validate a chat-completions body; raise RequestError naming the bad parameter."""
    body = check_body(body, SUPPORTED)
    model = body.get("model")
    if model not in served:
        raise RequestError(
            404,
            f"The model '{model}' does not exist on this server; it serves "
            f"{' / '.join(repr(s) for s in sorted(served))}",
            "model",
            "model_not_found",
        )
    if body.get("stream"):
        raise RequestError(400, "streaming is not supported by sublab serve", "stream")
    temperature = _number(body, "temperature", 1.0, 0.0, 2.0)
    top_p = _number(body, "top_p", 1.0, 0.0, 1.0)
    max_key = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
    max_given = body.get(max_key) is not None
    max_tokens = _integer(body, max_key, DEFAULT_MAX_TOKENS, 1, MAX_TOKENS_LIMIT)
    seed = body.get("seed")
    if seed is None:
        seed = secrets.randbits(31)
    elif isinstance(seed, bool) or not isinstance(seed, int):
        raise RequestError(400, f"'seed' must be an integer (got {seed!r})", "seed")
    top_logprobs = None
    if body.get("logprobs"):
        top_logprobs = _integer(body, "top_logprobs", 0, 0, 20)
    elif body.get("top_logprobs") is not None:
        raise RequestError(400, "'top_logprobs' needs 'logprobs': true", "top_logprobs")
    sampling = SamplingSpec(
        temperature=temperature if temperature > 0 else GREEDY_TEMPERATURE,
        top_p=max(top_p, 1e-9),
        max_new_tokens=max_tokens,
        seed=seed,
    )
    return ChatRequest(
        chat=_messages(body.get("messages")),
        n=_integer(body, "n", 1, 1, MAX_N),
        sampling=sampling,
        top_logprobs=top_logprobs,
        max_tokens_given=max_given,
        model=model,
    )


def token_logprobs(
    backend: HFBackend, prompt: list[int], completions: list[list[int]], top: int
) -> list[list[dict[str, Any]]]:
    """OpenAI ``logprobs.content`` entries for each completion's tokens (model at T = 1)."""
    import torch

    tok = backend.tokenizer
    out: list[list[dict[str, Any]]] = []
    for ids in completions:
        if not ids:
            out.append([])
            continue
        seq = torch.tensor([prompt + ids], device=backend.device)
        with torch.inference_mode():
            logits = backend.model(input_ids=seq).logits[0, len(prompt) - 1 : -1, :]
        logp = torch.log_softmax(logits.double(), dim=-1)
        chosen = logp.gather(-1, torch.tensor(ids, device=logp.device)[:, None])[:, 0].tolist()
        tops = logp.topk(top, dim=-1) if top > 0 else None
        entries = []
        for pos, (tid, lp) in enumerate(zip(ids, chosen, strict=True)):
            text = tok.decode([tid])
            alts = []
            if tops is not None:
                for alt_lp, alt_id in zip(
                    tops.values[pos].tolist(), tops.indices[pos].tolist(), strict=True
                ):
                    alt = tok.decode([alt_id])
                    alts.append({"token": alt, "logprob": alt_lp, "bytes": list(alt.encode())})
            entries.append(
                {"token": text, "logprob": lp, "bytes": list(text.encode()), "top_logprobs": alts}
            )
        out.append(entries)
    return out


class ChatService:
    """The models behind the server: answers validated requests, one at a time.

    ``backend`` is the model the server was started with (answering to ``model_name`` and
    ``aliases``); :meth:`add_model` adds more local folders by name (fine-tuned models), each
    loaded on its first request and kept.
    """

    def __init__(
        self, backend: HFBackend, model_name: str, aliases: set[str] | None = None
    ) -> None:
        self.backend = backend
        self.backend.show_progress = False
        self.model_name = model_name
        self.served = {model_name, *(aliases or set())}
        self.created = int(time.time())
        self.requests_served = 0
        """Chat-completion requests answered so far."""
        self.finetune: Any = None
        """The fine-tuning endpoints (:class:`sublab.serve_finetune.FineTuneService`), if on."""
        self._extra: dict[str, tuple[str, int]] = {}  # name -> (folder, created)
        self._loaded: dict[str, HFBackend] = {}
        self._lock = threading.Lock()

    def add_model(self, name: str, folder: str | Path, created: int | None = None) -> None:
        """Serve the local model ``folder`` as ``name`` too (loaded on its first request)."""
        self._extra[name] = (str(folder), created or int(time.time()))
        self.served.add(name)

    def local_path(self, name: str) -> str | None:
        """The local folder of a served model (None: not served, or served with an adapter)."""
        if name in self._extra:
            return self._extra[name][0]
        if name in self.served and self.backend.ref.adapter is None:
            return self.backend.ref.path
        return None

    def backend_for(self, name: str) -> HFBackend:
        """The backend that answers for ``name`` (a fine-tuned model is loaded on first use)."""
        if name not in self._extra:
            return self.backend
        if name not in self._loaded:
            from sublab.backends.base import ModelRef
            from sublab.backends.hf import HFBackend

            b = self.backend
            self._loaded[name] = HFBackend(
                ModelRef(path=self._extra[name][0]),
                device=str(b.device),
                dtype=str(b.dtype).removeprefix("torch."),
                batch_size=b.batch_size,
            )
            self._loaded[name].show_progress = False
        return self._loaded[name]

    def models(self) -> dict[str, Any]:
        cards = [self.model_card()] + [self.model_card(n) for n in sorted(self._extra)]
        return {"object": "list", "data": cards}

    def model_card(self, name: str | None = None) -> dict[str, Any]:
        """The /v1/models entry of ``name`` (default: the first model; its aliases map to it)."""
        if name not in self._extra:
            name = None
        created = self.created if name is None else self._extra[name][1]
        return {
            "id": name or self.model_name,
            "object": "model",
            "created": created,
            "owned_by": "sublab",
        }

    @property
    def context(self) -> int | None:
        """The first model's context length (prompt + reply), if its config says."""
        return self._context(self.backend)

    @staticmethod
    def _context(backend: HFBackend) -> int | None:
        config = backend.model.config.get_text_config()
        return getattr(config, "max_position_embeddings", None)

    def _fit(self, req: ChatRequest, prompt_len: int, backend: HFBackend) -> SamplingSpec:
        """The request's sampling, its reply length checked against the model's context."""
        context = self._context(backend)
        if context is None or prompt_len + req.sampling.max_new_tokens <= context:
            return req.sampling
        room = context - prompt_len
        if room >= 1 and not req.max_tokens_given:
            return req.sampling.model_copy(update={"max_new_tokens": room})
        raise RequestError(
            400,
            f"This model's maximum context length is {context} tokens. However, you requested "
            f"{prompt_len + req.sampling.max_new_tokens} tokens ({prompt_len} in the messages, "
            f"{req.sampling.max_new_tokens} in the completion).",
            "messages" if room < 1 else "max_tokens",
            "context_length_exceeded",
        )

    def complete(self, req: ChatRequest) -> dict[str, Any]:
        with self._lock:
            b = self.backend_for(req.model)
            prompt = b.prompt_ids(req.chat)
            sampling = self._fit(req, len(prompt), b)
            ids = b.generate_ids([req.chat] * req.n, sampling)
            lps = None
            if req.top_logprobs is not None:
                lps = token_logprobs(b, prompt, ids, req.top_logprobs)
            self.requests_served += 1
        choices = []
        for i, toks in enumerate(ids):
            text = b.tokenizer.decode(toks, skip_special_tokens=True).strip()
            finish = "length" if len(toks) >= sampling.max_new_tokens else "stop"
            choices.append(
                {
                    "index": i,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": finish,
                    "logprobs": None if lps is None else {"content": lps[i]},
                }
            )
        completion_tokens = sum(len(t) for t in ids)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": req.model if req.model in self._extra else self.model_name,
            "choices": choices,
            "usage": {
                "prompt_tokens": len(prompt),
                "completion_tokens": completion_tokens,
                "total_tokens": len(prompt) + completion_tokens,
            },
        }


def body_length(values: list[str], limit: int, option: str = "--max-body-bytes") -> int:
    """The body length from a request's ``Content-Length`` header(s), checked against ``limit``
    bytes; RequestError 411 (no header), 400 (not a non-negative integer, or two different
    values) or 413 (over the limit)."""
    if not values:
        raise RequestError(
            411,
            "a POST needs a Content-Length header (chunked bodies are not supported); "
            "send the JSON body with its length",
            code="length_required",
        )
    distinct = {v.strip() for v in values}
    if len(distinct) > 1:
        raise RequestError(400, f"conflicting Content-Length headers {sorted(distinct)}")
    text = distinct.pop()
    if not (text.isascii() and text.isdigit()):
        raise RequestError(
            400, f"Content-Length must be a non-negative integer (got {text[:40]!r})"
        )
    length = int(text)
    if length > limit:
        raise RequestError(
            413,
            f"request body too large: {length} bytes, this server reads at most {limit} "
            f"(sublab serve {option} raises the limit)",
            code="request_too_large",
        )
    return length


def discard_input(sock: socket.socket, seconds: float) -> int:
    """Stop sending on ``sock``, then read and drop what the peer sends, until it closes or
    ``seconds`` pass; the number of bytes dropped. Closing a socket with unread input makes
    the kernel reset the connection, and the peer would lose the reply it was sent."""
    dropped = 0
    deadline = time.monotonic() + seconds
    with contextlib.suppress(OSError):  # the peer may already be gone
        sock.shutdown(socket.SHUT_WR)
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            dropped += len(chunk)
    return dropped


FINETUNE_PATHS = ("/v1/files", "/v1/fine_tuning/")
"""Endpoints of the fine-tuning API (:mod:`sublab.serve_finetune`)."""


def finetune_endpoints(service: ChatService) -> Any:
    """The service's fine-tuning endpoints, or a 404 that says how to turn them on."""
    if service.finetune is None:
        raise RequestError(
            404,
            "fine-tuning is off on this server: start it with "
            "'sublab serve MODEL --finetune-dir DIR' to accept files and fine-tuning jobs",
        )
    return service.finetune


def make_handler(
    service: ChatService,
    api_key: str | None = None,
    quiet: bool = False,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> type[BaseHTTPRequestHandler]:
    """A request handler class bound to ``service`` (and a required key, if given); POST
    bodies over ``max_body_bytes`` are refused unread."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "sublab-serve"
        timeout = READ_TIMEOUT_S

        def log_message(self, format: str, *args: Any) -> None:
            if not quiet:
                super().log_message(format, *args)

        def _send(self, status: int, payload: dict[str, Any], close: bool = False) -> None:
            data = json.dumps(payload).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if close:  # the body was not read: the rest of the stream cannot be trusted
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(data)

        def _check_key(self) -> None:
            if api_key is None:
                return
            got = self.headers.get("Authorization", "")
            if not got.startswith("Bearer "):
                raise RequestError(401, "no API key: send 'Authorization: Bearer <key>'")
            if not secrets.compare_digest(got[len("Bearer ") :], api_key):
                raise RequestError(401, "Incorrect API key provided", code="invalid_api_key")

        def _path(self) -> str:
            return self.path.split("?", 1)[0].rstrip("/")

        def do_GET(self) -> None:
            try:
                path = self._path()
                if path == "/health":
                    self._send(200, {"status": "ok"})
                    return
                self._check_key()
                if path == "/v1/models":
                    self._send(200, service.models())
                elif (
                    path.startswith("/v1/models/") and path[len("/v1/models/") :] in service.served
                ):
                    self._send(200, service.model_card(path[len("/v1/models/") :]))
                elif path.startswith(FINETUNE_PATHS):
                    self._send(200, finetune_endpoints(service).get(path))
                else:
                    raise RequestError(404, f"no such endpoint: GET {path}")
            except RequestError as err:
                self._send(err.status, err.body())

        def do_POST(self) -> None:
            endpoints = None
            try:
                path = self._path()
                limit, option = max_body_bytes, "--max-body-bytes"
                if path.startswith(FINETUNE_PATHS):  # uploads: their own size limit
                    endpoints = finetune_endpoints(service)
                    limit, option = endpoints.max_upload_bytes, "--max-upload-mb"
                length = body_length(self.headers.get_all("Content-Length") or [], limit, option)
                if endpoints is None and path != "/v1/chat/completions":
                    raise RequestError(404, f"no such endpoint: POST {path}")
                self._check_key()
            except RequestError as err:  # refused before reading the body
                self._send(err.status, err.body(), close=True)
                self.wfile.flush()
                discard_input(self.connection, DRAIN_S)
                return
            try:
                raw = self.rfile.read(length)
                if len(raw) < length:
                    raise RequestError(400, f"body ended after {len(raw)} of {length} bytes")
                if endpoints is not None:
                    ctype = self.headers.get("Content-Type", "")
                    self._send(200, endpoints.post(path, ctype, raw))
                    return
                try:
                    body = json.loads(raw)
                except ValueError:
                    raise RequestError(400, "the request body is not valid JSON") from None
                self._send(200, service.complete(parse_request(body, service.served)))
            except RequestError as err:
                self._send(err.status, err.body())
            except SublabError as err:
                self._send(400, RequestError(400, str(err)).body())
            except Exception as err:  # a server bug: say so, keep serving
                traceback.print_exc()
                message = f"internal error: {type(err).__name__}: {err}"
                self._send(500, {"error": {"message": message, "type": "server_error"}})

    return Handler


def make_server(
    service: ChatService,
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key: str | None = None,
    quiet: bool = False,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> ThreadingHTTPServer:
    """A server bound to ``host:port`` (port 0: any free port; see ``server.server_port``)
    that refuses request bodies over ``max_body_bytes`` without reading them."""
    if max_body_bytes < 1:
        raise SublabError(f"--max-body-bytes must be >= 1 (got {max_body_bytes})")
    handler = make_handler(service, api_key, quiet, max_body_bytes)
    try:
        server = ThreadingHTTPServer((host, port), handler)
    except OSError as err:
        raise SublabError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    server.daemon_threads = True
    return server


@contextlib.contextmanager
def serving(server: ThreadingHTTPServer) -> Iterator[None]:
    """Run ``server`` in a background thread; on exit shut it down and close its socket."""
    thread = threading.Thread(target=server.serve_forever, name="sublab-serve", daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def serve_until_stopped(server: ThreadingHTTPServer) -> None:
    """Serve until Ctrl-C or SIGTERM, then close the socket.

    The server runs in a background thread; both signals only set an event that this thread
    waits on, so no exception is ever raised in the middle of starting, serving or closing
    (a KeyboardInterrupt landing there left the process hanging or exiting with 130)."""
    stop = threading.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.signal(s, lambda signum, frame: stop.set()) for s in signals}
    try:
        with serving(server):
            while not stop.wait(0.2):
                pass
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def serve_in_thread(
    service: ChatService,
    host: str = "127.0.0.1",
    port: int = 0,
    api_key: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> Iterator[str]:
    """Serve in a background thread; yields the base URL (``http://host:port/v1``)."""
    server = make_server(
        service, host=host, port=port, api_key=api_key, quiet=True, max_body_bytes=max_body_bytes
    )
    with serving(server):
        yield f"http://{host}:{server.server_port}/v1"


def load_service(
    model_dir: str | Path,
    adapter: str | None = None,
    name: str | None = None,
    device: str = "auto",
    dtype: str = "auto",
    batch_size: int = 64,
) -> ChatService:
    """Load a local model for serving; it answers to ``name`` (default: the folder's name)
    and to the path as given."""
    from sublab.backends.base import ModelRef
    from sublab.backends.hf import HFBackend

    ref = ModelRef(path=str(model_dir), adapter=adapter)
    backend = HFBackend(ref, device=device, dtype=dtype, batch_size=batch_size)
    served = name or Path(str(model_dir)).resolve().name
    return ChatService(backend, served, aliases={str(model_dir)})


def api_key_from_env(env: str | None) -> str | None:
    """The key a server requires, read from the variable named ``env`` (None: no key)."""
    if env is None:
        return None
    key = os.environ.get(env)
    if not key:
        raise SublabError(f"--api-key-env {env}: the environment variable {env} is not set")
    return key
