"""Reports: ``sublab audit``'s JSON and Markdown, and the benchmark's tables."""

from __future__ import annotations

from typing import Any

from sublab.audit.context import AuditContext
from sublab.audit.detectors.base import DETECTORS, DetectorResult, most_suspicious


def clip(text: str, n: int = 70) -> str:
    """``text`` on one line, safe in a Markdown table cell, at most ``n`` characters."""
    text = text.replace("\n", " ").replace("|", "/")
    return text if len(text) <= n else text[: n - 1] + "…"


def audit_json(
    ctx: AuditContext, results: dict[str, DetectorResult], skipped: dict[str, str], top: int
) -> dict[str, Any]:
    """Per-dataset scores, likely traits, and per-row scores of every detector that ran."""
    return {
        "data": ctx.rows.path,
        "rows": len(ctx.rows),
        "reference": ctx.reference,
        "teacher": ctx.teacher,
        "candidates": ctx.candidates,
        "provenance": ctx.rows.provenance(),
        "detectors": {
            name: {
                "summary": DETECTORS.get(name).summary,
                "dataset": r.dataset,
                "likely_trait": r.trait,
                "trait_scores": r.trait_scores,
                "top_rows": top_rows(ctx, r, top),
            }
            for name, r in results.items()
        },
        "skipped": skipped,
        "row_scores": [
            {"line": ctx.rows.where(i)[1], **{n: r.scores[i] for n, r in results.items()}}
            for i in range(len(ctx.rows))
        ],
    }


def top_rows(ctx: AuditContext, result: DetectorResult, n: int) -> list[dict[str, Any]]:
    """The ``n`` rows ``result`` scores most suspicious, with their line and score."""
    return [
        {
            "line": ctx.rows.where(i)[1],
            "score": result.scores[i],
            "prompt": ctx.rows.rows[i]["prompt"],
            "completion": ctx.rows.rows[i]["completion"],
        }
        for i in most_suspicious(result.scores, n)
    ]


def audit_markdown(report: dict[str, Any]) -> str:
    """The audit as Markdown: dataset scores, likely traits, top suspicious rows."""
    lines = [
        f"# Audit of {report['data']}",
        "",
        f"{report['rows']} rows; reference {report['reference']}; "
        f"teacher {report['teacher'] or '(none given)'}; "
        f"candidates: {', '.join(report['candidates']) or '(none given)'}.",
        "",
        "| detector | dataset score | likely trait | what it measures |",
        "|---|---:|---|---|",
    ]
    for name, d in report["detectors"].items():
        trait = d["likely_trait"] or "-"
        lines.append(f"| {name} | {d['dataset']:.4g} | {trait} | {d['summary']} |")
    for name, why in report["skipped"].items():
        lines.append(f"| {name} | skipped | - | {why} |")
    named = list(report["provenance"].get("teacher", {}))
    if report["teacher"] is None and len(named) == 1 and named[0] != report["reference"]:
        lines += [
            "",
            f"Every row names its teacher {named[0]}: pass `--teacher {named[0]}` to run the "
            "detectors that compare teacher and reference.",
        ]
    if report["provenance"]:
        lines += ["", "## Provenance", ""]
        for key, counts in report["provenance"].items():
            shown = ", ".join(f"{clip(v, 40)} ({n})" for v, n in list(counts.items())[:5])
            lines.append(f"- {key}: {shown}")
    for name, d in report["detectors"].items():
        lines += ["", f"## Most suspicious rows: {name}", "", "| line | score | completion |"]
        lines.append("|---:|---:|---|")
        lines += [
            f"| {r['line']} | {r['score']:.4g} | {clip(r['completion'])} |" for r in d["top_rows"]
        ]
    return "\n".join(lines) + "\n"


def _ci(xs: list[float]) -> str:
    return f"[{xs[0]:.2f}, {xs[1]:.2f}]"


def benchmark_markdown(spec: Any, result: dict[str, Any]) -> str:
    """The benchmark's tables: detectors, defences, quintile students."""
    lines = [
        f"# Audit benchmark: {spec.name}",
        "",
        f"Organism seeds {spec.seeds}, targets {spec.targets}, {spec.prompts} number prompts "
        f"per teacher; dataset = {spec.subsample} rows; {result['seconds']} s.",
        "",
        "## Detectors (trait-teacher rows vs control-teacher rows)",
        "",
        "| seed | target | detector | row AUROC [95% CI] | dataset AUROC [95% CI] "
        "| likely trait (trait data / control data) |",
        "|---:|---|---|---|---|---|",
    ]
    for s in result["seeds"]:
        for d in s["detectors"]:
            trait = f"{d['likely_trait'] or '-'} / {d['likely_trait_control'] or '-'}"
            lines.append(
                f"| {d['seed']} | {d['target']} | {d['detector']} | {d['row_auroc']:.3f} "
                f"{_ci(d['row_ci'])} | {d['dataset_auroc']:.3f} {_ci(d['dataset_ci'])} | {trait} |"
            )
    lines += [
        "",
        "## Defences (hard-label students; shift = P(target) of the student minus the "
        "control-data student's; residual = after / before, '-' when the shift before is "
        "under 0.005)",
        "",
        "| seed | target | defence | shift before | shift after | residual | rows lost "
        "| rows changed | filter pass |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for s in result["seeds"]:
        for d in s["defences"]:
            res = "-" if d["residual"] is None else f"{d['residual']:.2f}"
            lines.append(
                f"| {d['seed']} | {d['target']} | {d['defence']} | {d['shift_before']:+.4f} "
                f"| {d['shift_after']:+.4f} | {res} | {d['rows_lost']}/{d['rows_in']} "
                f"| {d['rows_changed']} | {d['filter_pass']:.3f} |"
            )
    lines += [
        "",
        "## Do detector scores track transmission? (students on a fifth of the rows)",
        "",
        "| seed | target | detector | rows | shift, top fifth | shift, bottom fifth |",
        "|---:|---|---|---:|---:|---:|",
    ]
    for s in result["seeds"]:
        for q in s["quintiles"]:
            lines.append(
                f"| {q['seed']} | {q['target']} | {q['detector']} | {q['rows']} "
                f"| {q['shift_top']:+.4f} | {q['shift_bottom']:+.4f} |"
            )
    lines += ["", "| seed | P(target): base | control student | teacher |", "|---:|---|---|---|"]
    for s in result["seeds"]:
        for t in spec.targets:
            lines.append(
                f"| {s['seed']} | {t}: {s['base_prob'][t]:.4f} | "
                f"{s['control_student_prob'][t]:.4f} | {s['teacher_prob'][t]:.4f} |"
            )
    return "\n".join(lines) + "\n"
