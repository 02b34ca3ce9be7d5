"""``sublab serve`` refuses oversized or unframed request bodies before reading them.

Raw ``http.client`` requests to a real server on 127.0.0.1, serving the tiny test model.
"""

from __future__ import annotations

import http.client
import json
import resource
import time
from urllib.parse import urlsplit

import pytest

from sublab.backends.base import chat
from sublab.errors import SublabError
from sublab.serve import make_server, serve_in_thread

CHAT = chat("here are some numbers 3, 7, 12. continue the sequence")
PATH = "/v1/chat/completions"


def connect(url: str, timeout: float = 20) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    assert parts.hostname == "127.0.0.1"  # loopback only
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)


def reply(conn: http.client.HTTPConnection) -> tuple[int, dict, str | None]:
    """(status, JSON body, Connection header) of the response on ``conn``."""
    resp = conn.getresponse()
    return resp.status, json.loads(resp.read()), resp.getheader("Connection")


def headers_only(url: str, headers: dict[str, str]) -> tuple[int, dict, str | None]:
    """A POST whose headers are sent but whose body never is: the server must answer anyway."""
    conn = connect(url)
    conn.putrequest("POST", PATH)
    for k, v in headers.items():
        conn.putheader(k, v)
    conn.endheaders()
    try:
        return reply(conn)
    finally:
        conn.close()


def body_of(max_tokens: int = 2) -> bytes:
    return json.dumps({"model": "tiny", "messages": CHAT, "max_tokens": max_tokens}).encode()


def post(url: str, body: bytes) -> tuple[int, dict, str | None]:
    conn = connect(url)
    try:
        conn.request("POST", PATH, body=body, headers={"Content-Type": "application/json"})
        return reply(conn)
    finally:
        conn.close()


def test_oversized_length_refused_without_reading_the_body(base_url) -> None:
    # The body is announced (5 MB) but never sent: a server that tried to read it would wait
    # until the client's timeout; the reply comes at once.
    t0 = time.monotonic()
    status, body, connection = headers_only(base_url, {"Content-Length": "5000000"})
    assert time.monotonic() - t0 < 5
    assert status == 413 and connection == "close"
    err = body["error"]
    assert err["type"] == "invalid_request_error" and err["code"] == "request_too_large"
    assert "5000000 bytes" in err["message"] and "at most 1048576" in err["message"]
    assert "--max-body-bytes" in err["message"]


def test_oversized_body_sent_in_full_gets_413_and_costs_no_memory(base_url) -> None:
    # A client that sends its whole 5 MB body still reads the 413 (the rest is discarded),
    # the process's peak memory does not grow with it, and the server keeps serving.
    text = "7, " * (5_000_000 // 3)
    big = json.dumps({"model": "tiny", "messages": chat(text), "max_tokens": 1}).encode()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    status, body, _ = post(base_url, big)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert status == 413 and body["error"]["code"] == "request_too_large"
    assert grown_mib < 50, f"peak memory grew {grown_mib:.0f} MiB"
    status, body, _ = post(base_url, body_of())
    assert status == 200, body


@pytest.mark.parametrize(
    ("headers", "status", "says"),
    [
        ({}, 411, "needs a Content-Length header"),
        ({"Transfer-Encoding": "chunked"}, 411, "chunked bodies are not supported"),
        ({"Content-Length": "abc"}, 400, "non-negative integer (got 'abc')"),
        ({"Content-Length": "-5"}, 400, "non-negative integer (got '-5')"),
        ({"Content-Length": "1e3"}, 400, "non-negative integer (got '1e3')"),
        ({"Content-Length": "²"}, 400, "non-negative integer (got '²')"),  # isdigit()
    ],
)
def test_missing_or_bad_length_is_a_clear_error(base_url, headers, status, says) -> None:
    got, body, connection = headers_only(base_url, headers)
    assert got == status, body
    assert says in body["error"]["message"]
    assert body["error"]["type"] == "invalid_request_error" and connection == "close"


def test_conflicting_lengths_refused(base_url) -> None:
    conn = connect(base_url)
    conn.putrequest("POST", PATH)
    conn.putheader("Content-Length", "10")
    conn.putheader("Content-Length", "99")
    conn.endheaders()
    status, body, _ = reply(conn)
    conn.close()
    assert status == 400 and "conflicting Content-Length" in body["error"]["message"]


def test_limit_is_configurable_to_the_byte(service) -> None:
    body = body_of()
    with serve_in_thread(service, max_body_bytes=len(body)) as url:
        status, answer, _ = post(url, body)
        assert status == 200, answer
        assert answer["choices"][0]["message"]["role"] == "assistant"
    with serve_in_thread(service, max_body_bytes=len(body) - 1) as url:
        status, answer, _ = post(url, body)
        assert status == 413
        assert (
            f"{len(body)} bytes, this server reads at most {len(body) - 1}"
            in (answer["error"]["message"])
        )
        # A body cut short of its announced length is refused, not waited on forever.
        conn = connect(url)
        conn.putrequest("POST", PATH)
        conn.putheader("Content-Length", "20")
        conn.endheaders(b'{"model": "tiny"}')  # 17 bytes, then the client half-closes
        assert conn.sock is not None
        conn.sock.shutdown(1)
        status, answer, _ = reply(conn)
        conn.close()
        assert status == 400 and "body ended after 17 of 20 bytes" in answer["error"]["message"]


def test_keep_alive_still_works_within_the_limit(base_url) -> None:
    conn = connect(base_url)
    try:
        for _ in range(2):  # two requests on one connection
            conn.request("POST", PATH, body=body_of(), headers={"Content-Type": "application/json"})
            status, body, _ = reply(conn)
            assert status == 200, body
    finally:
        conn.close()


def test_bad_limit_is_a_user_error(service) -> None:
    with pytest.raises(SublabError, match="--max-body-bytes must be >= 1"):
        make_server(service, port=0, max_body_bytes=0)
