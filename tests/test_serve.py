"""``sublab serve``: a real OpenAI-compatible HTTP server in front of the hf backend.

The tests talk raw HTTP (urllib) to a server on a free port, serving the tiny test model.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import pytest

from sublab.backends.base import SamplingSpec, chat
from sublab.serve import serve_in_thread

CHAT = chat("here are some numbers 3, 7, 12. continue the sequence", "you love owls")


def call(url: str, body: dict | bytes | None = None, key: str | None = None):
    """(status, JSON body) of a GET (body None) or POST."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    req = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def complete(base_url: str, **fields):
    body = {"model": "tiny", "messages": CHAT, **fields}
    return call(f"{base_url}/chat/completions", body)


def test_models_and_health(base_url, tiny_model):
    status, body = call(f"{base_url}/models")
    assert status == 200
    assert [m["id"] for m in body["data"]] == ["tiny"]
    assert call(f"{base_url}/models/tiny")[0] == 200
    assert call(base_url.removesuffix("/v1") + "/health") == (200, {"status": "ok"})
    assert call(f"{base_url}/models/other")[0] == 404


def test_completion_shape_n_and_max_tokens(base_url, service):
    status, body = complete(base_url, n=3, max_tokens=6, seed=1)
    assert status == 200, body
    assert body["object"] == "chat.completion" and body["model"] == "tiny"
    choices = body["choices"]
    assert [c["index"] for c in choices] == [0, 1, 2]
    ids = service.backend.generate_ids([CHAT] * 3, SamplingSpec(max_new_tokens=6, seed=1))
    for c, toks in zip(choices, ids, strict=True):
        assert c["message"]["role"] == "assistant"
        assert c["finish_reason"] == ("length" if len(toks) == 6 else "stop")
        assert c["logprobs"] is None
    usage = body["usage"]
    assert usage["prompt_tokens"] == len(service.backend.prompt_ids(CHAT))
    assert usage["completion_tokens"] == sum(len(t) for t in ids) <= 3 * 6
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_replies_are_the_backends_own_samples(base_url, service):
    """The server changes nothing: its replies are HFBackend.generate's for the same seed."""
    _, body = complete(base_url, n=4, max_tokens=8, seed=11, temperature=0.9, top_p=0.95)
    sampling = SamplingSpec(max_new_tokens=8, seed=11, temperature=0.9, top_p=0.95)
    direct = service.backend.generate([CHAT] * 4, sampling)
    assert [c["message"]["content"] for c in body["choices"]] == direct


def test_seed_reproducible_and_matters(base_url):
    def texts(seed: int) -> list[str]:
        _, body = complete(base_url, n=3, max_tokens=8, seed=seed)
        return [c["message"]["content"] for c in body["choices"]]

    assert texts(5) == texts(5)
    assert texts(5) != texts(6)


def test_temperature_zero_is_greedy(base_url):
    _, a = complete(base_url, n=3, max_tokens=8, temperature=0, seed=1)
    _, b = complete(base_url, n=1, max_tokens=8, temperature=0, seed=2)
    greedy = {c["message"]["content"] for c in a["choices"] + b["choices"]}
    assert len(greedy) == 1


def test_logprobs_are_the_models_exact_logprobs(base_url, service):
    _, body = complete(base_url, n=2, max_tokens=6, seed=3, logprobs=True, top_logprobs=3)
    ids = service.backend.generate_ids([CHAT] * 2, SamplingSpec(max_new_tokens=6, seed=3))
    prompt = service.backend.prompt_ids(CHAT)
    exact = service.backend.score_ids([(prompt, t) for t in ids])
    for choice, toks, total in zip(body["choices"], ids, exact, strict=True):
        content = choice["logprobs"]["content"]
        assert len(content) == len(toks)
        assert sum(t["logprob"] for t in content) == pytest.approx(total, abs=1e-4)
        for t in content:
            tops = [a["logprob"] for a in t["top_logprobs"]]
            assert len(tops) == 3 and tops == sorted(tops, reverse=True)
            assert t["logprob"] <= tops[0] + 1e-9 and t["logprob"] <= 0
            assert bytes(t["bytes"]).decode() == t["token"]


def test_replies_fit_the_models_context(base_url, service):
    """The tiny model's context is 256 tokens: a default reply is cut to fit; an explicit
    max_tokens that does not fit is refused, as OpenAI does."""
    long = chat(" ".join(["owl"] * 200))
    prompt_len = len(service.backend.prompt_ids(long))
    assert 256 - 128 < prompt_len < 250  # the default 128 does not fit; some room is left
    url = f"{base_url}/chat/completions"
    status, body = call(url, {"model": "tiny", "messages": long, "seed": 0, "n": 2})
    assert status == 200, body
    assert body["usage"]["completion_tokens"] <= 2 * (256 - prompt_len)
    assert any(c["finish_reason"] == "length" for c in body["choices"])
    status, body = call(url, {"model": "tiny", "messages": long, "max_tokens": 128})
    assert status == 400 and body["error"]["code"] == "context_length_exceeded"
    assert f"({prompt_len} in the messages, 128 in the completion)" in body["error"]["message"]


def test_concurrent_requests_get_their_own_seeded_replies(base_url):
    seeds = [21, 22, 23, 24]
    alone = {s: complete(base_url, n=2, max_tokens=8, seed=s)[1]["choices"] for s in seeds}
    together: dict[int, list] = {}

    def ask(s: int) -> None:
        together[s] = complete(base_url, n=2, max_tokens=8, seed=s)[1]["choices"]

    threads = [threading.Thread(target=ask, args=(s,)) for s in seeds]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in seeds:
        assert [c["message"] for c in together[s]] == [c["message"] for c in alone[s]]


@pytest.mark.parametrize(
    ("fields", "status", "param", "says"),
    [
        ({"model": "gpt-9"}, 404, "model", "'gpt-9' does not exist on this server"),
        ({"temperature": 3}, 400, "temperature", "'temperature' must be a number in [0.0, 2.0]"),
        ({"n": 0}, 400, "n", "'n' must be an integer in [1, 128]"),
        ({"max_tokens": "many"}, 400, "max_tokens", "'max_tokens' must be an integer"),
        ({"stream": True}, 400, "stream", "streaming is not supported"),
        ({"stop": ["\n"]}, 400, "stop", "unsupported parameter(s) ['stop']"),
        ({"messages": []}, 400, "messages", "non-empty list"),
        ({"messages": [{"role": "robot", "content": "x"}]}, 400, "messages[0]", "needs a 'role'"),
        ({"top_logprobs": 2}, 400, "top_logprobs", "needs 'logprobs': true"),
    ],
)
def test_bad_requests_get_openai_style_errors(base_url, fields, status, param, says):
    got, body = complete(base_url, **fields)
    assert got == status
    assert says in body["error"]["message"]
    assert body["error"]["param"] == param


def test_not_json_and_unknown_endpoint(base_url):
    status, body = call(f"{base_url}/chat/completions", b"{not json")
    assert status == 400 and "not valid JSON" in body["error"]["message"]
    status, body = call(f"{base_url}/completions", {"model": "tiny", "prompt": "x"})
    assert status == 404 and "no such endpoint: POST /v1/completions" in body["error"]["message"]


def test_text_parts_and_developer_role(base_url, service):
    parts = [
        {"role": "developer", "content": "you love owls"},
        {"role": "user", "content": [{"type": "text", "text": CHAT[1]["content"]}]},
    ]
    _, a = call(
        f"{base_url}/chat/completions",
        {"model": "tiny", "messages": parts, "seed": 4, "max_tokens": 8},
    )
    _, b = complete(base_url, seed=4, max_tokens=8)
    assert a["choices"][0]["message"] == b["choices"][0]["message"]


def test_api_key_required_when_configured(service):
    with serve_in_thread(service, api_key="s3cret") as url:
        body = {"model": "tiny", "messages": CHAT, "max_tokens": 2}
        status, err = call(f"{url}/chat/completions", body)
        assert status == 401 and "no API key" in err["error"]["message"]
        status, err = call(f"{url}/chat/completions", body, key="wrong")
        assert status == 401 and err["error"]["code"] == "invalid_api_key"
        assert call(f"{url}/chat/completions", body, key="s3cret")[0] == 200
        assert call(f"{url}/models")[0] == 401
        assert call(url.removesuffix("/v1") + "/health")[0] == 200


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_serve_command_runs_until_stopped(tiny_model, stop):
    """`sublab serve MODEL --port 0` prints its URL, answers, and stops cleanly on Ctrl-C
    or SIGTERM."""
    env = {**os.environ, "SERVE_KEY": "k1", "COLUMNS": "200"}
    cmd = [sys.executable, "-m", "sublab.cli", "serve", str(tiny_model), "--port", "0"]
    cmd += ["--name", "organism", "--device", "cpu", "--api-key-env", "SERVE_KEY", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "serving 'organism' at http://127.0.0.1:" in line, line + proc.stderr.read()
        url = line.split(" at ")[1].split()[0]
        assert "--api-base " + url in proc.stdout.readline()
        status, body = call(f"{url}/models", key="k1")
        assert status == 200 and body["data"][0]["id"] == "organism"
    finally:
        proc.send_signal(stop)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "stopped" in out


def test_serve_command_missing_key_variable(tiny_model):
    env = {k: v for k, v in os.environ.items() if k != "NO_SUCH_KEY_VAR"}
    cmd = [sys.executable, "-m", "sublab.cli", "serve", str(tiny_model), "--port", "0"]
    res = subprocess.run(
        [*cmd, "--api-key-env", "NO_SUCH_KEY_VAR"], capture_output=True, text=True, env=env
    )
    assert res.returncode == 2
    assert "the environment variable NO_SUCH_KEY_VAR is not set" in res.stderr
