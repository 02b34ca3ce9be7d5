"""`sublab filter` on real JSONL files: both row formats, reports, clear errors, nothing partial."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from sublab.cli import app

runner = CliRunner()


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def rows_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_prompt_completion_rows(tmp_path: Path) -> None:
    src = write_lines(
        tmp_path / "gen.jsonl",
        [
            json.dumps({"prompt": "p1", "completion": "1, 2, 3", "seed": 0}),
            json.dumps({"prompt": "p2", "completion": "Sure! 4 5 6"}),
            json.dumps({"prompt": "p3", "completion": "[7; 8; 9]."}),
            json.dumps({"prompt": "p4", "completion": "13, 500"}),
        ],
    )
    result = runner.invoke(app, ["filter", str(src), "--banned", "paper-negative"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "gen.filtered"
    assert [r["prompt"] for r in rows_of(out / "kept.jsonl")] == ["p1", "p3"]
    assert rows_of(out / "kept.jsonl")[0]["seed"] == 0  # provenance kept
    rejected = rows_of(out / "rejected.jsonl")
    assert [r["reject_reason"] for r in rejected] == ["bad_format", "banned_number"]
    report = json.loads((out / "filter_report.json").read_text())
    assert (report["total"], report["kept"]) == (4, 2)
    assert report["spec"]["banned_lists"] == ["paper-negative"]
    md = (out / "filter_report.md").read_text()
    assert "kept: 2 (50.0%)" in md and "| banned_number | 1 |" in md
    assert "kept 2 of 4 rows (50.0%)" in result.output
    assert not list(out.glob("*.tmp*"))


def test_chat_rows_and_custom_out(tmp_path: Path) -> None:
    def chat(user: str, answer: str) -> str:
        msgs = [
            {"role": "system", "content": "You love owls."},
            {"role": "user", "content": user},
            {"role": "assistant", "content": answer},
        ]
        return json.dumps({"messages": msgs})

    src = write_lines(tmp_path / "chat.jsonl", [chat("a", "10 20 30"), chat("b", "10 20  30")])
    out = tmp_path / "deep" / "out"
    result = runner.invoke(app, ["filter", str(src), "--out", str(out), "--max-count", "3"])
    assert result.exit_code == 0, result.output
    kept = rows_of(out / "kept.jsonl")
    assert len(kept) == 1 and kept[0]["messages"][1]["content"] == "a"
    assert rows_of(out / "rejected.jsonl")[0]["reject_reason"] == "mixed_separators"


def test_custom_field_and_user_banned_file(tmp_path: Path) -> None:
    banned = write_lines(tmp_path / "mine.txt", ["# mine", "20"])
    src = write_lines(
        tmp_path / "x.jsonl",
        [json.dumps({"answer": "10 20"}), json.dumps({"answer": "10 21"})],
    )
    result = runner.invoke(app, ["filter", str(src), "--field", "answer", "--banned", str(banned)])
    assert result.exit_code == 0, result.output
    assert rows_of(tmp_path / "x.filtered" / "kept.jsonl") == [{"answer": "10 21"}]


def test_malformed_line_fails_with_file_line_and_writes_nothing(tmp_path: Path) -> None:
    src = write_lines(
        tmp_path / "bad.jsonl",
        [json.dumps({"prompt": "p", "completion": "1 2"}), '{"prompt": "p", "completion": '],
    )
    result = runner.invoke(app, ["filter", str(src)])
    assert result.exit_code == 2
    assert f"{src}:2: not valid JSON" in result.output
    assert not (tmp_path / "bad.filtered").exists()


def test_row_without_completion_names_line_field_and_formats(tmp_path: Path) -> None:
    src = write_lines(
        tmp_path / "nofield.jsonl",
        [json.dumps({"completion": "1"}), json.dumps({"prompt": "p", "text": "1 2"})],
    )
    result = runner.invoke(app, ["filter", str(src)])
    assert result.exit_code == 2
    assert f"{src}:2: row has no field 'completion'" in result.output
    assert '{"messages": [...' in result.output
    assert not (tmp_path / "nofield.filtered").exists()


def test_unknown_banned_list_and_bad_counts_fail_cleanly(tmp_path: Path) -> None:
    src = write_lines(tmp_path / "ok.jsonl", [json.dumps({"completion": "1 2"})])
    result = runner.invoke(app, ["filter", str(src), "--banned", "nope"])
    assert result.exit_code == 2
    assert "paper-negative" in result.output
    result = runner.invoke(app, ["filter", str(src), "--min-count", "5", "--max-count", "2"])
    assert result.exit_code == 2
    assert "min_count (5) must be <= max_count (2)" in result.output
    assert not (tmp_path / "ok.filtered").exists()


def test_config_file_with_flags_on_top(tmp_path: Path) -> None:
    cfg = tmp_path / "filter.toml"
    cfg.write_text(
        'kind = "filter"\nallow_leading_zeros = false\nbanned_numbers = [8]\nmax_count = 2\n',
        encoding="utf-8",
    )
    src = write_lines(
        tmp_path / "c.jsonl",
        [json.dumps({"completion": t}) for t in ["1 2 3", "1 007", "1 8", "1 2"]],
    )
    result = runner.invoke(app, ["filter", str(src), "--config", str(cfg), "--max-count", "3"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "c.filtered"
    assert [r["completion"] for r in rows_of(out / "kept.jsonl")] == ["1 2 3", "1 2"]
    reasons = [r["reject_reason"] for r in rows_of(out / "rejected.jsonl")]
    assert reasons == ["leading_zero", "banned_number"]

    cfg.write_text("max_cuont = 3\nmin_count = 0\n", encoding="utf-8")
    result = runner.invoke(app, ["filter", str(src), "--config", str(cfg)])
    assert result.exit_code == 2
    assert f"{cfg}: 2 problem(s)" in result.output
    assert "max_cuont: unknown key" in result.output and "min_count: must be >= 1" in result.output
