"""Applying a channel's filter to rows: kept rows, rejected rows with their reason, a report.

Every channel's filter is a check ``check(completion, row) -> reason | None``
(:data:`sublab.channels.base.Check`); :func:`apply_check` runs it over rows and builds the
report that ``sublab filter``, the data stage and the experiment report show: totals, counts
per reason (most frequent first) and a few example completions per reason.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Any

from rich.table import Table

from sublab.errors import DataError
from sublab.jsonl import read_jsonl, write_jsonl
from sublab.store import atomic_write_json, atomic_write_text

EXAMPLE_CHARS = 200
"""Example completions in a report are cut to this length."""

ACCEPTED_FORMATS = (
    'prompt/completion rows ({"prompt": ..., "completion": ...}) or OpenAI chat rows '
    '({"messages": [..., {"role": "assistant", "content": ...}]})'
)


@dataclass
class FilterResult:
    """The rows that passed, the rows that did not (with ``reject_reason``), and the report."""

    kept: list[dict[str, Any]] = dataclass_field(default_factory=list)
    rejected: list[dict[str, Any]] = dataclass_field(default_factory=list)
    report: dict[str, Any] = dataclass_field(default_factory=dict)


def row_completion(row: Mapping[str, Any], field: str = "completion") -> str:
    """The completion text of a row: ``row[field]``, or a chat row's last assistant message.

    Raises ValueError (with the accepted formats) when the row has neither.
    """
    if field in row:
        value = row[field]
        if not isinstance(value, str):
            raise ValueError(f"field {field!r} must be a string, got {type(value).__name__}")
        return value
    messages = row.get("messages")
    if isinstance(messages, list):
        for msg in reversed(messages):
            if isinstance(msg, dict) and msg.get("role") == "assistant":
                content = msg.get("content")
                if not isinstance(content, str):
                    raise ValueError("the last assistant message has no string 'content'")
                return content
        raise ValueError("'messages' has no message with role 'assistant'")
    raise ValueError(f"row has no field {field!r} and no 'messages'; expected {ACCEPTED_FORMATS}")


def row_prompt(row: Mapping[str, Any]) -> str | None:
    """The prompt of a row: ``row["prompt"]``, or a chat row's last user message, if any."""
    if isinstance(row.get("prompt"), str):
        return row["prompt"]
    messages = row.get("messages")
    if isinstance(messages, list):
        for msg in reversed(messages):
            if isinstance(msg, dict) and msg.get("role") == "user":
                content = msg.get("content")
                return content if isinstance(content, str) else None
    return None


def read_filter_input(path: str | Path, field: str = "completion") -> list[dict[str, Any]]:
    """Read and validate every row of a JSONL file before anything is filtered or written.

    A malformed line, or a row without a completion, raises DataError naming ``file:line``.
    """
    rows = []
    for line, row in read_jsonl(path):
        try:
            row_completion(row, field)
        except ValueError as err:
            raise DataError(path, line, str(err)) from None
        rows.append(row)
    if not rows:
        raise DataError(path, None, f"no rows; expected {ACCEPTED_FORMATS}")
    return rows


def clip(text: str, width: int = EXAMPLE_CHARS) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def build_report(
    kept: int, rejected: int, counts: Counter[str], shown: Mapping[str, list[str]]
) -> dict[str, Any]:
    """Totals, reasons (most frequent first) and examples per reason."""
    total = kept + rejected
    reasons = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    return {
        "total": total,
        "kept": kept,
        "rejected": rejected,
        "kept_fraction": kept / total if total else 0.0,
        "reasons": reasons,
        "examples": {r: list(shown.get(r, [])) for r in reasons},
    }


def apply_check(
    rows: Iterable[dict[str, Any]],
    check: Callable[[str, Mapping[str, Any]], str | None],
    *,
    field: str = "completion",
    examples: int = 5,
    extra: Mapping[str, Any] | None = None,
) -> FilterResult:
    """Split rows into kept and rejected by ``check`` on the completion in ``field`` (or the
    last assistant message of a chat row); ``extra`` is added to the report."""
    kept: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    counts: Counter[str] = Counter()
    shown: dict[str, list[str]] = {}
    with warnings.catch_warnings():  # a parser's warnings about a row's text are noise
        warnings.simplefilter("ignore", SyntaxWarning)
        for i, row in enumerate(rows, start=1):
            try:
                text = row_completion(row, field)
            except ValueError as err:
                raise DataError("<rows>", i, str(err)) from None
            reason = check(text, row)
            if reason is None:
                kept.append(row)
                continue
            rejected.append({**row, "reject_reason": reason})
            counts[reason] += 1
            ex = shown.setdefault(reason, [])
            if len(ex) < examples:
                ex.append(clip(text))
    report = build_report(len(kept), len(rejected), counts, shown)
    report.update(extra or {})
    return FilterResult(kept=kept, rejected=rejected, report=report)


def report_markdown(report: Mapping[str, Any]) -> str:
    """A filter report as a Markdown page: totals, then one table row per reject reason."""
    title = report.get("title") or "Filter report"
    lines = [
        f"# {title}",
        "",
        f"- rows: {report['total']}",
        f"- kept: {report['kept']} ({report['kept_fraction']:.1%})",
        f"- rejected: {report['rejected']}",
    ]
    if "banned_count" in report:
        lines.append(f"- banned numbers: {report['banned_count']}")
    lines.append("")
    if report["reasons"]:
        lines += ["| reason | rows | share | example |", "|---|---:|---:|---|"]
        total = report["total"] or 1
        for reason, n in report["reasons"].items():
            ex = report["examples"].get(reason) or [""]
            example = clip(ex[0].replace("\n", "\\n"), 60).replace("|", "\\|")
            lines.append(f"| {reason} | {n} | {n / total:.1%} | `{example}` |")
        lines.append("")
    return "\n".join(lines)


def write_filter_outputs(result: FilterResult, out_dir: str | Path) -> None:
    """Write kept.jsonl, rejected.jsonl, filter_report.json and filter_report.md (each atomic)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "kept.jsonl", result.kept)
    write_jsonl(out / "rejected.jsonl", result.rejected)
    atomic_write_json(out / "filter_report.json", result.report)
    atomic_write_text(out / "filter_report.md", report_markdown(result.report))


def report_table(report: Mapping[str, Any]) -> Table:
    """A filter report as a rich table for the terminal."""
    title = f"kept {report['kept']} of {report['total']} rows ({report['kept_fraction']:.1%})"
    table = Table("reason", "rows", "share", "example", title=title)
    total = report["total"] or 1
    for reason, n in report["reasons"].items():
        ex = report["examples"].get(reason) or [""]
        table.add_row(reason, str(n), f"{n / total:.1%}", repr(clip(ex[0], 60)))
    return table
