"""The report's sections for the controls: the target matrix (teacher × evaluated target,
the paper's Figure 3), how control training alone moves every target (Figure 9), and the
dose table (each student's effect by optimizer steps)."""

from __future__ import annotations

from collections.abc import Sequence

from sublab.report.analysis import analyse, doses, metrics_of, target_matrix, transmits
from sublab.report.model import ReportData, TableRow
from sublab.report.wording import fmt, fmt_ci, fmt_diff, fmt_p

SHIFT_TITLE = "Control training alone (Figure 9)"
SHIFT_NOTE = (
    "How fine-tuning on the control teacher's data moves each measured target relative to the "
    "base, largest moves first; controls.all_targets = true measures every candidate."
)
SHIFT_HEADER = ["target", "condition", "base", "control", "diff", "diff 95% CI", "p", "seeds up"]


MATRIX_TITLE = "Target matrix (Figure 3)"
MATRIX_NOTE = (
    "Each trait-data condition (its teacher in brackets) against its matched control on every "
    "measured target: the difference of the headline metric, * for p < 0.05 (paired t). "
    "'transmits': the teacher's own target rose with p < 0.05."
)


def matrix_table(data: ReportData, rows: Sequence[TableRow]) -> tuple[list[str], list[list[str]]]:
    """The target matrix's header and rows (empty below two teachers)."""
    matrix = target_matrix(data, rows)
    teachers = {r.teacher for cells in matrix.values() for r in cells.values()}
    if len(teachers) < 2:
        return [], []
    targets = list(dict.fromkeys(t for cells in matrix.values() for t in cells))
    out = []
    for label, cells in matrix.items():
        line = [label]
        for t in targets:
            c = cells[t].comparison if t in cells else None
            star = "*" if c is not None and c.p_value is not None and c.p_value < 0.05 else ""
            line.append("" if c is None else fmt_diff(c.diff_mean) + star)
        own = next((r for r in cells.values() if r.teacher == r.target), None)
        verdict = None if own is None else transmits(own)
        line.append({True: "yes", False: "no", None: "too few seeds"}[verdict])
        out.append(line)
    return ["condition (teacher)", *targets, "transmits"], out


def shift_cells(r: TableRow) -> list[str]:
    c = r.comparison
    assert c is not None
    return [
        r.target,
        r.condition,
        fmt(r.control_mean),
        fmt(r.summary.mean),
        fmt_diff(c.diff_mean),
        fmt_ci(c.ci, signed=True),
        fmt_p(c),
        c.up_text,
    ]


DOSE_TITLE = "Dose: the effect by optimizer steps"
DOSE_NOTE = (
    "Each student's headline metric on its teacher's target against its matched control at the "
    "same number of optimizer steps (the checkpoints of the recipe's 'checkpoints', then the "
    "final model), paired on seed."
)
DOSE_HEADER = ["condition (teacher)", "updates", "mean", "control", "diff", "diff 95% CI", "p"]
DOSE_HEADER += ["seeds up"]


def dose_series(
    data: ReportData, final: Sequence[TableRow]
) -> dict[str, list[tuple[str, TableRow]]]:
    """Per trait-data condition (labelled with its teacher), its own target's headline-metric
    rows at each dose, then 'final'; empty when no checkpoints were measured."""
    metrics = metrics_of(data)
    steps = doses(data)
    if not metrics or not steps:
        return {}

    def wanted(r: TableRow) -> bool:
        own = r.teacher is not None and r.target == r.teacher
        return r.metric == metrics[0] and own and not r.is_control and r.comparison is not None

    out: dict[str, list[tuple[str, TableRow]]] = {}
    for step in steps:
        for r in analyse(data, step):
            if wanted(r):
                out.setdefault(r.label, []).append((str(step), r))
    for r in final:
        if wanted(r) and r.label in out:
            out[r.label].append(("final", r))
    return out


def dose_cells(series: dict[str, list[tuple[str, TableRow]]]) -> list[list[str]]:
    rows = []
    for label, points in series.items():
        for step, r in points:
            c = r.comparison
            assert c is not None
            rows.append(
                [
                    label,
                    step,
                    fmt(r.summary.mean),
                    fmt(r.control_mean),
                    fmt_diff(c.diff_mean),
                    fmt_ci(c.ci, signed=True),
                    fmt_p(c),
                    c.up_text,
                ]
            )
    return rows
