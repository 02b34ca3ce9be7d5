"""User files that are not UTF-8: a clear error naming the file and line, exit status 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sublab.cli import app
from sublab.config import read_toml
from sublab.errors import ConfigError, DataError
from sublab.evals.questions import load_questions
from sublab.filtering import read_filter_input
from sublab.jsonl import read_jsonl
from sublab.train.data import read_rows

runner = CliRunner()


def latin1_jsonl(path: Path) -> Path:
    """Three rows; the third holds 'café' in Latin-1 (byte 0xe9), not UTF-8."""
    lines = [
        json.dumps({"prompt": "p1", "completion": "1, 2, 3"}),
        json.dumps({"prompt": "p2", "completion": "4 5 6"}),
        json.dumps({"prompt": "café", "completion": "7"}, ensure_ascii=False),
    ]
    path.write_bytes("\n".join(lines).encode("latin-1") + b"\n")
    return path


def test_filter_cli_names_the_line_of_the_bad_byte(tmp_path: Path) -> None:
    src = latin1_jsonl(tmp_path / "gen.jsonl")
    result = runner.invoke(app, ["filter", str(src)])
    assert result.exit_code == 2, result.output
    assert f"{src}:3: not UTF-8 text: byte(s) 0xe9 at column 16" in result.output
    assert "re-save the file as UTF-8" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "gen.filtered").exists()


def test_check_cli_names_the_toml_line(tmp_path: Path) -> None:
    cfg = tmp_path / "exp.toml"
    cfg.write_bytes(b'kind = "numbers"\nname = "caf\xe9"\n')
    result = runner.invoke(app, ["check", str(cfg)])
    assert result.exit_code == 2, result.output
    assert f"{cfg}: 1 problem(s)" in result.output
    assert "line 2: not UTF-8 text: byte(s) 0xe9 at column 12" in result.output
    assert "re-save the file as UTF-8" in result.output


def test_filter_config_and_banned_file_not_utf8(tmp_path: Path) -> None:
    src = tmp_path / "ok.jsonl"
    src.write_text(json.dumps({"completion": "1 2"}) + "\n", encoding="utf-8")
    cfg = tmp_path / "f.toml"
    cfg.write_bytes(b"# r\xe9glages\nmax_count = 5\n")
    result = runner.invoke(app, ["filter", str(src), "--config", str(cfg)])
    assert result.exit_code == 2
    assert f"{cfg}: 1 problem(s)" in result.output and "line 1: not UTF-8" in result.output
    banned = tmp_path / "banned.txt"
    banned.write_bytes(b"13\n666\n\xff\xfe\n")
    result = runner.invoke(app, ["filter", str(src), "--banned", str(banned)])
    assert result.exit_code == 2
    assert f"{banned}:3: not UTF-8 text: byte(s) 0xff" in result.output


def test_library_readers_raise_data_error_with_line(tmp_path: Path) -> None:
    src = latin1_jsonl(tmp_path / "rows.jsonl")
    for reader in (lambda p: list(read_jsonl(p)), read_filter_input, read_rows):
        with pytest.raises(DataError) as info:
            reader(src)
        assert (info.value.path, info.value.line) == (str(src), 3)
    questions = tmp_path / "q.txt"
    questions.write_bytes(b"Name your favourite animal.\n\n# \xc9l\xe8ve\n")
    with pytest.raises(DataError, match=r"q\.txt:3: not UTF-8 text: byte\(s\) 0xc9 at column 3"):
        load_questions(questions)


def test_multibyte_columns_and_bom(tmp_path: Path) -> None:
    # Column counts characters: 'é' written in UTF-8 is two bytes but one column.
    cfg = tmp_path / "c.toml"
    cfg.write_bytes('a = "é"\nb = "ü'.encode() + b"\x80" + b'"\n')
    with pytest.raises(ConfigError, match=r"line 2: not UTF-8 text: byte\(s\) 0x80 at column 7"):
        read_toml(cfg)
    # A UTF-8 byte-order mark is not an error, and does not shift the lines of a later one.
    src = tmp_path / "bom.jsonl"
    src.write_bytes(b'\xef\xbb\xbf{"completion": "1"}\n{"completion": "\xe9"}\n')
    with pytest.raises(DataError, match=r"bom\.jsonl:2: .* at column 17"):
        list(read_jsonl(src))
    src.write_bytes(b'\xef\xbb\xbf{"completion": "1"}\n')
    assert list(read_jsonl(src)) == [(1, {"completion": "1"})]
