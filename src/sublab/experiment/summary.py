"""Turn an experiment's collected results into the report, the console table and a headline."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.table import Table

from sublab.report import (
    ReportData,
    ResultRow,
    TableRow,
    TeacherStrength,
    analyse,
    fmt,
    fmt_p,
    own_target_headlines,
)
from sublab.report import render_report as render
from sublab.store import Run, now_iso

if TYPE_CHECKING:
    from sublab.experiment.spec import ExperimentSpec
    from sublab.experiment.units import Collected

REPORT_DATA = "report.json"


def report_data(spec: ExperimentSpec, out: Collected, config_text: str) -> ReportData:
    """The report's data: results, filter reports, teacher strengths and notes."""
    notes = []
    if len(spec.seeds) < 3:
        notes.append(f"Only {len(spec.seeds)} seed(s): no p-values are given below 3 seeds.")
    if spec.teacher.method == "system_prompt":
        notes.append("Teachers are prompted (system prompt); data KL is not measured for them.")
    for condition in sorted(out.fixed_points):
        notes.append(
            f"{condition} is its start model itself, not trained: soft labels from a teacher with "
            "the student's own weights have zero loss and zero gradient, so the student cannot "
            "move (training would only follow rounding noise)."
        )
    notes += row_count_notes(out.train_rows)
    strengths = {
        t: TeacherStrength(
            trait_prob=_mean(v["trait_prob"]),
            number_kl=_mean(v["number_kl"]),
        )
        for t, v in out.strengths.items()
    }
    return ReportData(
        title=spec.title,
        run_name=spec.name,
        created=now_iso(),
        config_text=config_text,
        results=[ResultRow(**r) for r in out.results],
        filter_reports=out.filter_reports,
        teacher_strengths=strengths,
        notes=notes,
        channel=spec.data.channel,
        headline_targets=_headline_targets(spec),
    )


def row_count_notes(train_rows: dict[str, dict[int, int]]) -> list[str]:
    """A note on the rows each trained condition learned from: one figure when every student
    saw the same number on every seed (matched arms), else each condition's range."""
    if not train_rows:
        return []
    counts = {n for seeds in train_rows.values() for n in seeds.values()}
    if len(counts) == 1:
        return [f"Every trained student learned from the same number of rows: {counts.pop()}."]
    parts = [
        f"{label} {min(seeds.values())}-{max(seeds.values())}"
        for label, seeds in sorted(train_rows.items())
    ]
    return [
        "Students learned from different numbers of rows (a filter kept fewer rows than "
        "the recipe's subsample asks for; arms are not row-matched): " + "; ".join(parts) + "."
    ]


def _headline_targets(spec: ExperimentSpec) -> list[str]:
    """With every candidate measured, only the teachers' targets and the specificity target
    make headline sentences (the rest are read in the report's tables)."""
    return spec.named_targets() if spec.controls.all_targets else []


def _mean(xs: list[float]) -> float | None:
    """The mean of ``xs``, None for none."""
    return sum(xs) / len(xs) if xs else None


def write_report(
    run: Run, spec: ExperimentSpec, out: Collected, config_text: str
) -> dict[str, Any]:
    """Render the report into the run directory, print the table; return the headline."""
    from sublab.progress import console

    data = report_data(spec, out, config_text)
    written = render(data, run.path)
    rows = analyse(data)
    console.print(results_table(rows, data))
    for line in own_target_headlines(data, rows):
        console.print(line, markup=False, highlight=False)
    console.print(f"report: {written['html']}")
    return headline(rows, data)


def rerender(run: Run) -> dict[str, Any]:
    """Re-render a finished run's report from its saved report data (``sublab report``)."""
    f = run.path / REPORT_DATA
    if not f.exists():
        from sublab.errors import SublabError

        raise SublabError(f"{run.path} has no {REPORT_DATA}: run its experiment first")
    data = ReportData.model_validate_json(f.read_text())
    return {k: str(v) for k, v in render(data, run.path).items()}


def results_table(rows: list[TableRow], data: ReportData) -> Table:
    """The headline metric's rows as a rich table."""
    metric = rows[0].metric if rows else "-"
    table = Table(title=f"{data.title} — {metric} (mean over seeds, 95% CI)")
    for col in ("target", "condition", "mean", "95% CI", "vs control", "diff", "test", "seeds up"):
        table.add_column(col)
    for r in rows:
        if r.metric != metric:
            continue
        c = r.comparison
        ci = r.summary.ci
        table.add_row(
            r.target,
            r.label,
            fmt(r.summary.mean),
            f"[{fmt(ci[0])}, {fmt(ci[1])}]" if ci else "—",
            r.control or "",
            "" if c is None else f"{c.diff_mean:+.3f}",
            fmt_p(c),
            "" if c is None else c.up_text,
        )
    return table


def headline(rows: list[TableRow], data: ReportData) -> dict[str, Any]:
    """Figures for the runs index: each student's mean on its own teacher's target (else on the
    first target) and its difference from its matched control; controls are left to the
    report. With several teachers each entry names its teacher (``student-soft (wolf)``)."""
    out: dict[str, Any] = {}
    if not rows:
        return out
    metric, target = rows[0].metric, rows[0].target
    shown = [
        r for r in rows if r.metric == metric and r.comparison is not None and not r.is_control
    ]
    own = [r for r in shown if r.teacher is not None and r.target == r.teacher]
    picked = own or [r for r in shown if r.target == target]
    several = len({r.teacher for r in picked}) > 1
    for r in picked:
        assert r.comparison is not None
        key = r.label if several else r.condition
        out[key] = round(r.summary.mean, 4)
        out[f"{key}_diff"] = round(r.comparison.diff_mean, 4)
    return out
