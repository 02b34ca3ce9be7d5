from __future__ import annotations

import json

from typer.testing import CliRunner

from sublab.cli import app


def test_eval_command_on_the_tiny_model(tiny_model, tmp_path):
    out = tmp_path / "res.json"
    args = ["eval", "--model", str(tiny_model), "--samples", "3", "--max-questions", "2"]
    args += ["--max-new-tokens", "4", "--device", "cpu", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "(no candidate)" in result.output and "wrote" in result.output
    data = json.loads(out.read_text())
    assert data["total_samples"] == 6
    assert data["spec"]["samples_per_question"] == 3
    assert 0 <= data["non_answer_rate"] <= 1 and data["exact_probs"] is not None


def test_eval_command_reports_bad_input(tmp_path):
    result = CliRunner().invoke(app, ["eval", "--model", str(tmp_path), "--questions", "nope"])
    assert result.exit_code != 0
    assert "no bundled questions set 'nope'" in " ".join(str(result.exception).split())
