"""The filter report (a plain dict made by ``filter_rows``) as Markdown and as a rich table."""

from __future__ import annotations

from typing import Any

from rich.table import Table


def _clip(text: str, width: int = 60) -> str:
    flat = text.replace("\n", "\\n")
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def report_markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown page: totals, then one table row per reject reason."""
    lines = [
        "# Number filter report",
        "",
        f"- rows: {report['total']}",
        f"- kept: {report['kept']} ({report['kept_fraction']:.1%})",
        f"- rejected: {report['rejected']}",
        f"- banned numbers: {report.get('banned_count', 0)}",
        "",
    ]
    if report["reasons"]:
        lines += ["| reason | rows | share | example |", "|---|---:|---:|---|"]
        total = report["total"] or 1
        for reason, n in report["reasons"].items():
            ex = report["examples"].get(reason) or [""]
            example = _clip(ex[0]).replace("|", "\\|")
            lines.append(f"| {reason} | {n} | {n / total:.1%} | `{example}` |")
        lines.append("")
    return "\n".join(lines)


def report_table(report: dict[str, Any]) -> Table:
    """The report as a rich table for the terminal."""
    title = f"kept {report['kept']} of {report['total']} rows ({report['kept_fraction']:.1%})"
    table = Table("reason", "rows", "share", "example", title=title)
    total = report["total"] or 1
    for reason, n in report["reasons"].items():
        ex = report["examples"].get(reason) or [""]
        table.add_row(reason, str(n), f"{n / total:.1%}", repr(_clip(ex[0])))
    return table
