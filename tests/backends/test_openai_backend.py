"""The openai backend against real servers on free local ports.

``sublab serve`` (the tiny test model) stands in for an API; a small scripted stdlib server
plays a flaky or odd API (429/503 first, slow replies, no logprobs, 'n' ignored) and records
what it was sent.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sublab.backends import load_backend
from sublab.backends.base import Backend, ModelRef, SamplingSpec, chat
from sublab.backends.openai import (
    OpenAIBackend,
    OpenAISettings,
    request_seed,
    retry_after_seconds,
)
from sublab.config import validate
from sublab.errors import ConfigError, SublabError
from sublab.serve import serve_in_thread

A = chat("here are some numbers 3, 7, 12. continue the sequence", "you love owls")
B = chat("name your favourite animal")
SAMPLING = SamplingSpec(max_new_tokens=6, seed=9)
FAST = OpenAISettings(max_retries=2, backoff_s=0.01, max_wait_s=0.05, timeout_s=5)


def backend_for(url: str, model: str = "tiny", **settings) -> OpenAIBackend:
    ref = ModelRef(path=model, provider="openai", api_base=url)
    return OpenAIBackend(ref, FAST.model_copy(update=settings))


# ---------------------------------------------------------------- against sublab serve


def test_load_backend_picks_openai_for_api_refs(base_url):
    b = load_backend(ModelRef(path="tiny", provider="openai", api_base=base_url + "/"))
    assert isinstance(b, OpenAIBackend) and isinstance(b, Backend)
    assert b.url == f"{base_url}/chat/completions"
    assert b.name == f"tiny@{base_url}"


def test_n_completions_per_chat_with_max_tokens(base_url):
    b = backend_for(base_url)
    got = b.logprobs([A, B], SAMPLING, n=3)
    assert [len(cs) for cs in got] == [3, 3]
    for cs in got:
        for c in cs:
            assert c.tokens is not None and 0 < len(c.tokens) <= 6
            assert c.finish_reason == ("length" if len(c.tokens) == 6 else "stop")
    texts = b.generate_n([A, B], SAMPLING, n=3)
    assert texts == [[c.text for c in cs] for cs in got]


def test_replies_equal_the_local_backends_for_the_request_seed(base_url, service):
    """Nothing is lost on the way: the API path samples exactly what the local model does."""
    got = backend_for(base_url).generate_n([A], SAMPLING, n=4)[0]
    local = SAMPLING.model_copy(update={"seed": request_seed(SAMPLING.seed, A, 0)})
    assert got == service.backend.generate([A] * 4, local)


def test_seeded_sampling_is_reproducible_and_order_free(base_url):
    b = backend_for(base_url)
    first = b.generate([A, A, B, A], SAMPLING)
    assert b.generate([A, A, B, A], SAMPLING) == first
    # a chat's replies depend on the seed and the chat only, not on the others in the call
    assert b.generate([B, A, A, A], SAMPLING) == [first[2], first[0], first[1], first[3]]
    # repeats of one chat are different samples, asked with n in one request
    assert first[:2] + first[3:] == b.generate_n([A], SAMPLING, n=3)[0]
    other = b.generate([A, A, B, A], SAMPLING.model_copy(update={"seed": 10}))
    assert other != first


def test_repeats_split_into_requests_of_n_per_request(base_url, service):
    b = backend_for(base_url, n_per_request=2)
    before = service.requests_served
    replies = b.generate([B] * 5, SAMPLING)
    assert len(replies) == 5
    assert service.requests_served - before == 3  # n = 2, 2, 1


def test_concurrent_requests(base_url, service):
    prompts = [chat(f"numbers {i}, {i + 1}, {i + 2}") for i in range(12)]
    one = backend_for(base_url, max_concurrency=1).generate(prompts, SAMPLING)
    many = backend_for(base_url, max_concurrency=6).generate(prompts, SAMPLING)
    assert one == many and len(one) == 12


def test_logprobs_match_the_served_models(base_url, service):
    got = backend_for(base_url).logprobs([A], SAMPLING, top_logprobs=2)[0][0]
    assert got.tokens is not None
    for t in got.tokens:
        assert len(t.top) == 2 and t.top[0][1] >= t.top[1][1] >= -1e9
        assert t.logprob <= t.top[0][1] + 1e-9
    ids = service.backend.generate_ids(
        [A], SAMPLING.model_copy(update={"seed": request_seed(SAMPLING.seed, A, 0)})
    )[0]
    exact = service.backend.score_ids([(service.backend.prompt_ids(A), ids)])[0]
    assert sum(t.logprob for t in got.tokens) == pytest.approx(exact, abs=1e-4)


def test_bad_model_name_is_a_clear_error(base_url):
    with pytest.raises(SublabError) as err:
        backend_for(base_url, model="gpt-9").generate([A], SAMPLING)
    msg = str(err.value)
    assert f"{base_url}/chat/completions: model 'gpt-9': HTTP 404" in msg
    assert "does not exist on this server; it serves" in msg  # the server's own message
    assert "check the model name" in msg


def test_api_key_from_the_named_variable(service, monkeypatch):
    with serve_in_thread(service, api_key="k-123") as url:
        monkeypatch.delenv("SUBLAB_TEST_KEY", raising=False)
        b = backend_for(url, api_key_env="SUBLAB_TEST_KEY")
        with pytest.raises(SublabError, match=r"HTTP 401: no API key.*SUBLAB_TEST_KEY was not"):
            b.generate([A], SAMPLING)
        monkeypatch.setenv("SUBLAB_TEST_KEY", "k-123")
        assert len(b.generate([A, B], SAMPLING)) == 2
        monkeypatch.setenv("SUBLAB_TEST_KEY", "k-wrong")
        with pytest.raises(SublabError, match=r"Incorrect API key.*SUBLAB_TEST_KEY was sent"):
            b.generate([A], SAMPLING)


def test_key_never_in_provenance(base_url, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-very-secret")
    b = backend_for(base_url)
    assert "sk-very-secret" not in b.name + b.settings.model_dump_json() + repr(b.__dict__)


# ---------------------------------------------------------------- a scripted server


@dataclass
class Reply:
    status: int = 200
    body: dict | str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


def ok_body(n: int = 1, logprobs: bool = False) -> dict:
    lp = {"content": [{"token": "7", "logprob": -0.5, "top_logprobs": []}]} if logprobs else None
    return {
        "object": "chat.completion",
        "choices": [
            {
                "index": i,
                "message": {"role": "assistant", "content": f" {i}, 7 "},
                "finish_reason": "stop",
                "logprobs": lp,
            }
            for i in range(n)
        ],
    }


@dataclass
class Script:
    replies: list[Reply]
    seen: list[dict] = field(default_factory=list)
    """Each request: its headers and JSON body."""
    times: list[float] = field(default_factory=list)


@contextmanager
def scripted(*replies: Reply) -> Iterator[tuple[str, Script]]:
    """A stdlib server that answers with ``replies`` in order (the last one repeats)."""
    script = Script(list(replies))
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format, *args):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with lock:
                k = len(script.seen)
                script.seen.append({"headers": dict(self.headers), "body": body})
                script.times.append(time.monotonic())
            reply = script.replies[min(k, len(script.replies) - 1)]
            time.sleep(reply.delay_s)
            payload = reply.body if reply.body is not None else ok_body(body.get("n", 1))
            data = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
            try:
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client timed out and left

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1", script
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def error_body(message: str) -> dict:
    return {"error": {"message": message, "type": "x", "param": None, "code": None}}


def test_retries_429_then_503_then_succeeds():
    with scripted(
        Reply(429, error_body("slow down"), {"Retry-After": "0"}),
        Reply(503, error_body("overloaded")),
        Reply(200),
    ) as (url, script):
        assert backend_for(url, model="m").generate([A], SAMPLING) == ["0, 7"]
    assert len(script.seen) == 3
    # every attempt is the same request: same seed, so the same samples are asked for
    assert len({json.dumps(s["body"], sort_keys=True) for s in script.seen}) == 1
    body = script.seen[0]["body"]
    assert body["model"] == "m" and body["messages"] == A and body["n"] == 1
    assert body["max_tokens"] == 6 and body["temperature"] == 1.0 and body["top_p"] == 1.0
    assert body["seed"] == request_seed(9, A, 0)


def test_retry_after_is_honoured():
    with scripted(Reply(429, error_body("wait"), {"Retry-After": "1"}), Reply(200)) as (url, s):
        backend_for(url, model="m", backoff_s=0, max_wait_s=30).generate([A], SAMPLING)
    assert len(s.times) == 2
    assert s.times[1] - s.times[0] >= 0.95


def test_exponential_backoff_doubles():
    with scripted(Reply(500, "oops")) as (url, s):
        b = backend_for(url, model="m", max_retries=3, backoff_s=0.1, max_wait_s=10)
        with pytest.raises(SublabError, match="gave up after 4 attempt"):
            b.generate([A], SAMPLING)
    gaps = [t1 - t0 for t0, t1 in zip(s.times, s.times[1:], strict=False)]
    # waits are 0.1, 0.2, 0.4 s times a jitter in [0.5, 1]
    for gap, base in zip(gaps, [0.1, 0.2, 0.4], strict=True):
        assert 0.5 * base - 0.01 <= gap <= base + 0.3


def test_persistent_5xx_gives_up_with_the_servers_message():
    with (
        scripted(Reply(503, error_body("model overloaded"))) as (url, s),
        pytest.raises(SublabError) as err,
    ):
        backend_for(url, model="m").generate([A], SAMPLING)
    assert len(s.seen) == 3  # 1 + max_retries
    msg = str(err.value)
    assert "gave up after 3 attempt(s); last error: HTTP 503: model overloaded" in msg
    assert f"{url}/chat/completions: model 'm'" in msg


def test_4xx_is_not_retried():
    with (
        scripted(Reply(400, error_body("'top_p' is invalid"))) as (url, s),
        pytest.raises(SublabError, match=r"model 'm': HTTP 400: 'top_p' is invalid"),
    ):
        backend_for(url, model="m").generate([A], SAMPLING)
    assert len(s.seen) == 1


def test_first_error_stops_the_requests_not_yet_sent():
    chats = [chat(f"question {i}") for i in range(40)]
    with (
        scripted(Reply(401, error_body("bad key"), delay_s=0.05)) as (url, s),
        pytest.raises(SublabError, match="HTTP 401: bad key"),
    ):
        backend_for(url, model="m", max_concurrency=2).generate(chats, SAMPLING)
    assert len(s.seen) <= 4  # the two in flight (and at most a pair more), not 40


def test_timeout_is_retried():
    with scripted(Reply(200, delay_s=1.0), Reply(200)) as (url, s):
        assert backend_for(url, model="m", timeout_s=0.3).generate([A], SAMPLING) == ["0, 7"]
    assert len(s.seen) == 2


def test_unreachable_url_fails_fast_after_retries():
    with socket.socket() as sock:  # a port that was free a moment ago: nobody listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(SublabError) as err:
        backend_for(f"http://127.0.0.1:{port}/v1", model="m").generate([A, B], SAMPLING)
    assert time.monotonic() - start < 5
    msg = str(err.value)
    assert f"http://127.0.0.1:{port}/v1/chat/completions: model 'm': gave up after 3" in msg
    assert "cannot connect" in msg and "Check that the server is up" in msg


def test_api_key_header_from_the_named_variable(monkeypatch):
    monkeypatch.setenv("TOGETHER_API_KEY", "tg-42")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-not-this-one")
    with scripted(Reply(200)) as (url, s):
        backend_for(url, model="m", api_key_env="TOGETHER_API_KEY").generate([A], SAMPLING)
        monkeypatch.delenv("TOGETHER_API_KEY")
        backend_for(url, model="m", api_key_env="TOGETHER_API_KEY").generate([A], SAMPLING)
    assert s.seen[0]["headers"]["Authorization"] == "Bearer tg-42"
    assert "Authorization" not in s.seen[1]["headers"]


def test_max_completion_tokens_field():
    with scripted(Reply(200)) as (url, s):
        backend_for(url, model="m", max_tokens_field="max_completion_tokens").generate(
            [A], SAMPLING
        )
    assert s.seen[0]["body"]["max_completion_tokens"] == 6
    assert "max_tokens" not in s.seen[0]["body"]


def test_logprobs_missing_is_not_supported():
    with (
        scripted(Reply(200)) as (url, s),
        pytest.raises(SublabError, match="logprobs are not supported by this backend"),
    ):
        backend_for(url, model="m").logprobs([A], SAMPLING, top_logprobs=3)
    assert s.seen[0]["body"]["logprobs"] is True and s.seen[0]["body"]["top_logprobs"] == 3
    with scripted(Reply(200, ok_body(logprobs=True))) as (url, _):
        got = backend_for(url, model="m").logprobs([A], SAMPLING)[0][0]
    assert got.tokens is not None and got.tokens[0].logprob == -0.5


def test_server_that_ignores_n():
    with scripted(Reply(200, ok_body(1))) as (url, s):
        with pytest.raises(SublabError, match=r"asked for n=3 replies, got 1.*n_per_request = 1"):
            backend_for(url, model="m").generate([A, A, A], SAMPLING)
        one_each = backend_for(url, model="m", n_per_request=1).generate([A] * 3, SAMPLING)
    assert one_each == ["0, 7"] * 3
    assert [r["body"]["n"] for r in s.seen] == [3, 1, 1, 1]


def test_not_an_openai_endpoint():
    with (
        scripted(Reply(200, "<html>hello</html>")) as (url, _),
        pytest.raises(SublabError, match=r"not JSON.*OpenAI-compatible /v1 endpoint"),
    ):
        backend_for(url, model="m").generate([A], SAMPLING)
    with (
        scripted(Reply(200, {"data": []})) as (url, _),
        pytest.raises(SublabError, match="no 'choices'"),
    ):
        backend_for(url, model="m").generate([A], SAMPLING)


# ---------------------------------------------------------------- what it does not do


def test_score_finetune_and_adapters_are_clear_errors(base_url):
    b = backend_for(base_url)
    with pytest.raises(SublabError, match=r"exact scores .* not supported by the openai backend"):
        b.score([A], ["owl"])
    with pytest.raises(SublabError, match="fine-tuning is not supported by the openai backend"):
        b.finetune([], None)
    ref = ModelRef(path="tiny", provider="openai", api_base=base_url, adapter="lora/")
    with pytest.raises(SublabError, match="adapter cannot be put on an API model"):
        OpenAIBackend(ref)
    with pytest.raises(SublabError, match=r"n must be >= 1 \(got 0\)"):
        b.generate_n([A], SAMPLING, n=0)
    with pytest.raises(SublabError, match="provider 'openai' needs api_base"):
        OpenAIBackend(ModelRef(path="gpt-4o", provider="openai"))


def test_settings_and_ref_validation():
    with pytest.raises(ConfigError, match=r"api_key_env: .*NAME of an environment variable"):
        validate({"api_key_env": "sk-abc123"}, OpenAISettings, "x.toml")
    with pytest.raises(ConfigError, match="must start with http:// or https://"):
        validate({"path": "m", "provider": "openai", "api_base": "api.openai.com"}, ModelRef, "x")
    with pytest.raises(ConfigError, match="api_base is only used with provider = 'openai'"):
        validate({"path": "m", "api_base": "http://localhost:1/v1"}, ModelRef, "x")


def test_retry_after_parsing():
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    later = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 <= (retry_after_seconds(later) or 0) <= 31
