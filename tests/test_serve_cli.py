"""The API path end to end: `sublab generate`, `sublab eval` and `sublab run` (numbers) against
a model served by `sublab serve` on a free local port."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from sublab.cli import app
from sublab.filtering import read_filter_input
from sublab.jsonl import read_jsonl
from sublab.numbers.prompts import NumberPromptSpec, make_prompts
from sublab.serve import load_service, serve_in_thread


@pytest.fixture(scope="module")
def service(tiny_model):
    return load_service(tiny_model, name="tiny", device="cpu", batch_size=16)


def invoke(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_generate_through_the_api_writes_rows_the_filter_reads(base_url, tmp_path):
    out = tmp_path / "numbers.jsonl"
    res = invoke(
        "generate", "--api-base", base_url, "--model", "tiny", "--count", 20,
        "--max-new-tokens", 8, "--chunk-size", 8, "--max-concurrency", 4, "--label", "owl",
        "--system-prompt", "You love owls.", "--out", out,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    rows = [r for _, r in read_jsonl(out)]
    assert [r["id"] for r in rows] == list(range(20))
    assert [r["prompt"] for r in rows] == make_prompts(NumberPromptSpec(count=20))
    assert {r["teacher"] for r in rows} == {f"tiny@{base_url}"}
    assert {r["label"] for r in rows} == {"owl"}
    assert {r["system_prompt"] for r in rows} == {"You love owls."}
    assert all(isinstance(r["completion"], str) for r in rows)
    assert len(read_filter_input(out)) == 20
    res = invoke("filter", out, "--out", tmp_path / "f")
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "f" / "filter_report.json").read_text())
    assert report["total"] == 20 and report["kept"] + report["rejected"] == 20
    # the same command again gives the same rows (seeded through the API)
    again = tmp_path / "again.jsonl"
    res = invoke(
        "generate", "--api-base", base_url, "--model", "tiny", "--count", 20,
        "--max-new-tokens", 8, "--chunk-size", 8, "--label", "owl",
        "--system-prompt", "You love owls.", "--out", again,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert again.read_bytes() == out.read_bytes()


def test_generate_with_a_wrong_model_name_exits_2(base_url, tmp_path):
    res = invoke(
        "generate", "--api-base", base_url, "--model", "gpt-9", "--count", 3,
        "--out", tmp_path / "x.jsonl",
    )  # fmt: skip
    assert res.exit_code == 2
    assert "model 'gpt-9': HTTP 404: The model 'gpt-9' does not exist" in res.output
    assert not (tmp_path / "x.jsonl").exists()


def test_eval_through_the_api(base_url, service, tmp_path):
    before = service.requests_served
    out = tmp_path / "eval.json"
    res = invoke(
        "eval", "--api-base", base_url, "--model", "tiny", "--samples", 4,
        "--max-questions", 3, "--max-new-tokens", 6, "--out", out,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    result = json.loads(out.read_text())
    assert result["total_samples"] == 12
    assert result["exact_probs"] is None  # off by default for an API model
    assert [q["samples"] for q in result["per_question"]] == [4, 4, 4]
    assert service.requests_served - before == 3  # each question's 4 replies in one request


def test_eval_exact_on_an_api_model_is_refused(base_url):
    res = invoke("eval", "--api-base", base_url, "--model", "tiny", "--exact")
    assert res.exit_code != 0  # `sublab` itself prints the message and exits with status 2
    assert "exact probabilities need the model's weights" in str(res.exception)


def test_numbers_pipeline_with_an_api_teacher(base_url, tmp_path):
    cfg = tmp_path / "numbers-api.toml"
    cfg.write_text(
        f"""
kind = "data"
name = "api-numbers"
runs_dir = "{tmp_path / "runs"}"

[teacher]
label = "control"
model = {{ path = "tiny", provider = "openai", api_base = "{base_url}" }}

[data]
chunk_size = 8
prompts = {{ count = 24 }}
sampling = {{ max_new_tokens = 8 }}

[api]
max_concurrency = 4
max_retries = 1
"""
    )
    res = invoke("run", cfg)
    assert res.exit_code == 0, res.output
    assert "run api-numbers: done" in res.output
    run_dir = tmp_path / "runs" / "api-numbers"
    (gen,) = run_dir.glob("generate-*")
    rows = [r for _, r in read_jsonl(gen / "rows.jsonl")]
    assert len(rows) == 24 and rows[0]["teacher"] == f"tiny@{base_url}"
    sidecar = json.loads((gen / "sidecar.json").read_text())
    assert sidecar["spec"]["device_type"] == "api"
    # finished stages are skipped: a second run reads them and needs no server
    res = invoke("run", cfg)
    assert res.exit_code == 0 and "run api-numbers: done" in res.output
    assert list(run_dir.glob("generate-*")) == [gen]


def test_check_reports_a_bad_api_base(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(
        'kind = "data"\nname = "x"\n[teacher]\nlabel = "c"\n'
        'model = { path = "m", provider = "openai", api_base = "localhost:8000" }\n'
        '[api]\napi_key_env = "sk-123"\n'
    )
    res = invoke("check", cfg)
    assert res.exit_code == 2
    assert "api_base 'localhost:8000' must start with http:// or https://" in res.output
    assert "api.api_key_env" in res.output


def test_organism_through_the_api_writes_numbers_the_filter_keeps(tmp_path):
    """The cached default organism base, served: its numbers pass the filter as locally."""
    from sublab.organism.cache import is_built, organism_path
    from sublab.organism.spec import OrganismSpec

    base = organism_path(OrganismSpec())
    if not is_built(base):
        pytest.skip(f"organism base not cached at {base}: run 'sublab organism ensure'")
    served = load_service(base, name="organism", device="cpu")
    out = tmp_path / "org.jsonl"
    with serve_in_thread(served) as url:
        res = invoke(
            "generate", "--api-base", url, "--model", "organism", "--count", 60, "--out", out
        )
    assert res.exit_code == 0, res.output
    res = invoke("filter", out, "--out", tmp_path / "f")
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "f" / "filter_report.json").read_text())
    assert report["total"] == 60
    assert report["kept"] / 60 >= 0.5  # the organism keeps 70-78% locally
