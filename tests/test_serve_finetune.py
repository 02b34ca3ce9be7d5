"""``sublab serve --finetune-dir``: OpenAI's files and fine-tuning jobs endpoints, over raw HTTP
against a real server (the tiny test model), and the ``sublab finetune-api`` command."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from typer.testing import CliRunner

from sublab.backends.api_client import multipart_body
from sublab.cli import app
from sublab.serve import load_service, serve_in_thread
from sublab.serve_finetune import FineTuneService, parse_multipart
from sublab.train.recipe import StudentRecipe

RECIPE = StudentRecipe(epochs=1, batch_size=4, warmup_steps=0, device="cpu")
GOOD = [
    {"messages": [{"role": "user", "content": f"count {i}"}, {"role": "assistant", "content": "7"}]}
    for i in range(4)
]


def jsonl(rows: list) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


@pytest.fixture(scope="module")
def server(tiny_model, tmp_path_factory):
    service = load_service(tiny_model, name="tiny", device="cpu", batch_size=8)
    ft = FineTuneService(service, tmp_path_factory.mktemp("state"), RECIPE)
    with serve_in_thread(service) as url:
        yield url, service, ft
    ft.close()


def call(url: str, body: dict | None = None, data: bytes | None = None, ctype: str = ""):
    """(status, JSON body) of a GET (no body), a JSON POST or a raw POST."""
    if body is not None:
        data, ctype = json.dumps(body).encode(), "application/json"
    req = urllib.request.Request(url, data=data, headers={"Content-Type": ctype})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def upload(url: str, data: bytes, purpose: str = "fine-tune"):
    body, ctype = multipart_body(
        {"purpose": purpose}, {"file": ("t.jsonl", data, "application/jsonl")}
    )
    return call(f"{url}/files", data=body, ctype=ctype)


def test_multipart_round_trip():
    body, ctype = multipart_body({"purpose": "fine-tune"}, {"file": ("a.jsonl", b"x\r\ny", "t")})
    assert parse_multipart(ctype, body) == {
        "purpose": (None, b"fine-tune"),
        "file": ("a.jsonl", b"x\r\ny"),
    }


def test_upload_create_poll_and_chat(server):
    url, service, ft = server
    status, f = upload(url, jsonl(GOOD))
    assert status == 200, f
    assert f["object"] == "file" and f["purpose"] == "fine-tune" and f["bytes"] == len(jsonl(GOOD))
    assert call(f"{url}/files/{f['id']}") == (200, f)
    body = {
        "model": "tiny",
        "training_file": f["id"],
        "suffix": "s1",
        "method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2}}},
    }
    status, job = call(f"{url}/fine_tuning/jobs", body)
    assert status == 200, job
    assert job["object"] == "fine_tuning.job" and job["status"] == "queued"
    assert job["hyperparameters"] == {
        "n_epochs": 2,
        "batch_size": "auto",
        "learning_rate_multiplier": "auto",
    }
    assert isinstance(job["seed"], int)  # none given: the server picks and reports one
    ft.wait_idle()
    status, done = call(f"{url}/fine_tuning/jobs/{job['id']}")
    assert status == 200 and done["status"] == "succeeded", done
    name = done["fine_tuned_model"]
    assert name == f"ft:tiny:sublab:s1:{job['id'][-8:]}"
    train = json.loads((ft.state / "models" / job["id"] / "train.json").read_text())
    assert train["recipe"]["epochs"] == 2 and train["recipe"]["batch_size"] == 4  # auto: recipe
    assert train["seed"] == job["seed"]
    _, listing = call(f"{url}/fine_tuning/jobs")
    assert listing["object"] == "list" and job["id"] in [j["id"] for j in listing["data"]]
    _, models = call(f"{url}/models")
    assert name in [m["id"] for m in models["data"]]
    assert call(f"{url}/models/{name}")[1]["id"] == name
    chat_body = {"model": name, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    status, reply = call(f"{url}/chat/completions", chat_body)
    assert status == 200 and reply["model"] == name, reply
    # a restarted server serves the model again from its folder
    again = load_service(service.backend.ref.path, name="tiny", device="cpu")
    FineTuneService(again, ft.state, RECIPE).close()
    assert name in again.served and again.local_path(name) == str(ft.state / "models" / job["id"])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (jsonl(GOOD[:1]) + b"{not json\n", "line 2: not valid JSON"),
        (jsonl([{"prompt": "a"}]), 'line 1: expected {"messages": [...]}'),
        (
            jsonl([GOOD[0], {"messages": [{"role": "user", "content": "a"}]}]),
            "line 2: sublab serve trains on one user message and the assistant's reply",
        ),
        (jsonl([{"messages": [{"role": "robot", "content": "a"}]}]), "line 1: messages[0]"),
        (jsonl([{**GOOD[0], "tools": []}]), "line 1: unsupported field(s) ['tools']"),
        (b"\n", "the file has no rows"),
    ],
)
def test_bad_training_files_are_refused_naming_the_line(server, data, message):
    url, _, ft = server
    before = len(list((ft.state / "files").iterdir()))
    status, body = upload(url, data)
    assert status == 400 and message in body["error"]["message"], body
    assert len(list((ft.state / "files").iterdir())) == before  # nothing stored


def test_upload_checks(server):
    url, _, ft = server
    status, body = upload(url, jsonl(GOOD), purpose="assistants")
    assert status == 400 and "purpose must be 'fine-tune'" in body["error"]["message"]
    status, body = call(f"{url}/files", data=jsonl(GOOD), ctype="application/jsonl")
    assert status == 400 and "multipart/form-data" in body["error"]["message"]
    limit, ft.max_upload_bytes = ft.max_upload_bytes, 100
    try:
        status, body = upload(url, jsonl(GOOD))
    finally:
        ft.max_upload_bytes = limit
    assert status == 413 and "reads at most 100" in body["error"]["message"]
    assert call(f"{url}/files/file-nope")[0] == 404


def test_job_requests_are_validated(server):
    url, _, _ = server
    _, f = upload(url, jsonl(GOOD))
    cases = [
        ({"model": "gpt-9", "training_file": f["id"]}, "model 'gpt-9' cannot be fine-tuned"),
        ({"model": "tiny", "training_file": "file-x"}, "training_file 'file-x': no such file"),
        ({"model": "tiny"}, "training_file (a file id) is required"),
        ({"model": "tiny", "training_file": f["id"], "lr": 1}, "unsupported parameter(s) ['lr']"),
        (
            {"model": "tiny", "training_file": f["id"], "method": {"type": "dpo"}},
            "method.type must be 'supervised'",
        ),
        (
            {"model": "tiny", "training_file": f["id"], "hyperparameters": {"n_epochs": 0}},
            "hyperparameters.n_epochs must be an integer >= 1 or 'auto'",
        ),
        (
            {"model": "tiny", "training_file": f["id"], "hyperparameters": {"warmup": 1}},
            "unknown hyperparameter(s) ['warmup']",
        ),
        ({"model": "tiny", "training_file": f["id"], "seed": "1"}, "'seed' must be an integer"),
    ]
    for body, message in cases:
        status, reply = call(f"{url}/fine_tuning/jobs", body)
        assert status == 400 and message in reply["error"]["message"], (body, reply)
    assert call(f"{url}/fine_tuning/jobs/ftjob-nope")[0] == 404


def test_fine_tuning_is_off_without_a_folder(tiny_model):
    service = load_service(tiny_model, name="tiny", device="cpu")
    with serve_in_thread(service) as url:
        status, body = call(f"{url}/fine_tuning/jobs")
    assert status == 404 and "--finetune-dir" in body["error"]["message"]


def test_finetune_api_command(server, tmp_path):
    url, _, ft = server
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        "".join(json.dumps({"prompt": f"n {i}", "completion": "7"}) + "\n" for i in range(4))
    )
    args = [
        "finetune-api",
        str(rows),
        "--model",
        "tiny",
        "--api-base",
        url,
        "--work",
        str(tmp_path / "w"),
        "--epochs",
        "1",
        "--batch-size",
        "2",
        "--suffix",
        "cli",
    ]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "fine-tuned model: ft:tiny:sublab:cli:" in res.output
    jobs = len(ft.jobs)
    res = CliRunner().invoke(app, args)  # resumed from the record: no new job
    assert res.exit_code == 0 and len(ft.jobs) == jobs
    res = CliRunner().invoke(app, [*args[:-2], "--suffix", "x:y"])
    assert res.exit_code == 2 and "suffix" in res.output
