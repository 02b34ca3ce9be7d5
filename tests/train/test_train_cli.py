"""`sublab finetune` and `sublab strength` on the tiny model, and JSONL row errors."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from conftest import make_rows
from sublab.cli import app
from sublab.errors import DataError
from sublab.jsonl import write_jsonl
from sublab.train.data import read_rows


def test_finetune_and_strength_commands(tiny_model, tmp_path):
    rows = tmp_path / "rows.jsonl"
    write_jsonl(rows, make_rows(24))
    recipe = tmp_path / "student.toml"
    recipe.write_text('method = "lora"\nepochs = 1\nbatch_size = 8\nlearning_rate = 0.01\n')
    out = tmp_path / "student"
    runner = CliRunner()
    args = ["finetune", str(tiny_model), str(rows), str(out), "--recipe", str(recipe)]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "trained 24/24 rows, 3 steps" in res.output
    info = json.loads((out / "train.json").read_text())
    assert info["recipe"]["method"] == "lora" and info["recipe"]["learning_rate"] == 0.01
    res = runner.invoke(app, ["strength", str(out), str(tiny_model), str(rows)])
    assert res.exit_code == 0, res.output
    found = re.search(r"number KL\(teacher ‖ base\): ([0-9.]+) nats/token", res.output)
    assert found and float(found.group(1)) > 0


def test_bad_recipe_toml_names_the_field(tiny_model, tmp_path):
    rows = tmp_path / "rows.jsonl"
    write_jsonl(rows, make_rows(4))
    recipe = tmp_path / "student.toml"
    recipe.write_text('method = "qlora"\nepochs = 0\n')
    res = CliRunner().invoke(
        app, ["finetune", str(tiny_model), str(rows), str(tmp_path / "o"), "--recipe", str(recipe)]
    )
    assert res.exit_code != 0
    assert "method" in str(res.exception) and "epochs: must be >= 1" in str(res.exception)
    assert not (tmp_path / "o").exists()


def test_read_rows_names_file_line_and_field(tmp_path):
    p = tmp_path / "rows.jsonl"
    p.write_text('{"prompt": "a", "completion": "1"}\n\n{"prompt": "b"}\n')
    with pytest.raises(DataError, match=r"rows.jsonl:3: row: missing 'completion'"):
        read_rows(p)
    p.write_text('{"prompt": "a", "completion": 7}\n')
    with pytest.raises(DataError, match=r"rows.jsonl:1: row.completion: must be a string"):
        read_rows(p)
    p.write_text("\n")
    with pytest.raises(DataError, match="no rows"):
        read_rows(p)
    p.write_text('{"prompt": "a", "completion": "1", "id": 3}\n')
    assert read_rows(p) == [{"prompt": "a", "completion": "1", "id": 3}]
