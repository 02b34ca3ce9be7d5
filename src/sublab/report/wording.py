"""Numbers and sentences of a report: formats, verdicts and the headline sentences."""

from __future__ import annotations

from collections.abc import Sequence

from sublab.evals.stats import Comparison
from sublab.report.analysis import metrics_of
from sublab.report.model import ReportData, TableRow


def fmt(x: float | None) -> str:
    """A number for tables: 3 decimals in the usual range, 2 significant digits beyond it."""
    if x is None:
        return "—"
    if x == 0:
        return "0"
    if 0.01 <= abs(x) < 1000:
        return f"{x:.3f}"
    if 0.0001 <= abs(x) < 0.01:
        return f"{x:.4f}"
    return f"{x:.2e}"


def fmt_diff(x: float) -> str:
    return ("+" if x >= 0 else "") + fmt(x)


def fmt_ci(ci: tuple[float, float] | None, signed: bool = False) -> str:
    if ci is None:
        return "—"
    f = fmt_diff if signed else fmt
    return f"[{f(ci[0])}, {f(ci[1])}]"


def _p_text(p: float) -> str:
    """A p-value as shown: 'p = 0.025', or 'p < 0.001' below that."""
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def fmt_p(c: Comparison | None) -> str:
    """The paired t-test's p-value, or why there is none."""
    if c is None:
        return ""
    if c.p_value is None:
        return c.note.split(";")[0] if c.note else "no p-value"
    return _p_text(c.p_value)


def fmt_rank_p(c: Comparison | None) -> str:
    """The signed-rank p-value, formatted like :func:`fmt_p` (empty when there is none)."""
    if c is None or c.rank_p is None:
        return ""
    return _p_text(c.rank_p)


def verdict(c: Comparison) -> str:
    """Plain words for a comparison, without overstating it."""
    if c.p_value is None:
        return "too few seeds to test"
    if c.p_value < 0.05:
        return "a clear increase" if c.diff_mean > 0 else "a clear decrease"
    return "no clear difference"


def sentence(row: TableRow) -> str:
    """One headline sentence for a compared row (both means over the paired seeds)."""
    c = row.comparison
    if c is None or row.control_mean is None:
        return f"{row.label}, {row.metric} of {row.target}: {fmt(row.summary.mean)}."
    ctrl = f" vs {fmt(row.control_mean)} for {row.control}"
    ci = f", 95% CI {fmt_ci(c.ci, signed=True)}" if c.ci else ""
    rank = f"; signed-rank {fmt_rank_p(c)}" if c.rank_p is not None else ""
    return (
        f"{row.label}, {row.metric} of {row.target}: {fmt(row.summary.mean)}{ctrl} — "
        f"{verdict(c)} ({fmt_diff(c.diff_mean)}{ci}; {c.test}, {fmt_p(c)}{rank}; "
        f"{c.n_up}/{c.n_pairs} seed{'s' if c.n_pairs != 1 else ''} up{power_text(c)})."
    )


def power_text(c: Comparison) -> str:
    """How many seeds the observed difference needs (empty when it cannot be sized)."""
    if c.seeds_needed is None:
        return ""
    return f"; {c.seeds_needed} seeds give 80% power at α = 0.01"


def _student_rows(rows: Sequence[TableRow], metric: str) -> list[TableRow]:
    """The compared, non-control rows of ``metric``."""
    return [r for r in rows if r.metric == metric and r.comparison is not None and not r.is_control]


def headlines(data: ReportData, rows: Sequence[TableRow]) -> list[str]:
    """Headline sentences: every student condition against its control on the first metric.

    The first one leads the report: the first target's first student condition, with the
    target's own teacher (its label names the target) ahead of other teachers.
    """
    metrics = metrics_of(data)
    if not metrics:
        return ["No results yet."]
    out = [
        sentence(r)
        for r in _student_rows(rows, metrics[0])
        if not data.headline_targets or r.target in data.headline_targets
    ]
    if not out:
        out.append(
            f"No student condition with a matched control among the results "
            f"({len(data.results)} values, metric {metrics[0]})."
        )
    return out


def own_target_headlines(data: ReportData, rows: Sequence[TableRow]) -> list[str]:
    """The sentences of the students measured on their own teacher's target (the console's
    summary; students of other teachers and the specificity target are in the report)."""
    metrics = metrics_of(data)
    if not metrics:
        return []
    return [sentence(r) for r in _student_rows(rows, metrics[0]) if r.teacher == r.target]
