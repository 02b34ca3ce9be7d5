"""Statistics of a report: per-seed values grouped by condition, each condition compared with
its matched control, paired on seed (:mod:`sublab.evals.stats`).

Conditions are typed (:class:`~sublab.experiment.conditions.Condition`): a student of one
recipe is compared with the control student of the same recipe, a cross-model student with the
cross-model control (or, without one, the control), a control with the base.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sublab.evals.stats import compare, summarize
from sublab.experiment.conditions import Condition, Role
from sublab.report.model import ReportData, TableRow


def condition_rank(condition: Condition | None, label: str) -> tuple[int, str]:
    """Report order: by role, then recipe; labels of no known role last, alphabetically."""
    if condition is None:
        return (len(Role), label)
    return condition.rank()


def _teacher_rank(target: str, teacher: str | None) -> tuple[int, str]:
    """The teacher of the target's own trait (its label names the target) first."""
    if teacher is None:
        return (0, "")
    return (0 if target.lower() in teacher.lower() else 1, teacher)


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs)


def metrics_of(data: ReportData) -> list[str]:
    """Metric names in the order they first appear (the first is the headline metric)."""
    return list(dict.fromkeys(r.metric for r in data.results))


def doses(data: ReportData) -> list[int]:
    """The optimizer steps of the dose checkpoints measured, in order."""
    return sorted({r.dose for r in data.results if r.dose is not None})


def analyse(data: ReportData, dose: int | None = None) -> list[TableRow]:
    """One TableRow per (metric, target, condition, teacher), in display order: the final
    models, or with ``dose`` the checkpoints saved after that many optimizer steps."""
    groups: dict[tuple[str, str, str, str | None], dict[int, list[float]]] = defaultdict(
        lambda: defaultdict(list)
    )
    typed: dict[str, Condition | None] = {}
    for r in data.results:
        if r.dose != dose:
            continue
        groups[(r.metric, r.target, r.condition, r.teacher)][r.seed].append(r.value)
        typed.setdefault(r.condition, r.typed_condition())
    per_seed = {k: {s: _mean(v) for s, v in seeds.items()} for k, seeds in groups.items()}

    def pooled(metric: str, target: str, condition: str) -> dict[int, float]:
        """Per-seed values of a condition over all its teachers (controls have one or none)."""
        by_seed: dict[int, list[float]] = defaultdict(list)
        for (m, t, c, _), vals in per_seed.items():
            if (m, t, c) == (metric, target, condition):
                for s, v in vals.items():
                    by_seed[s].append(v)
        return {s: _mean(v) for s, v in by_seed.items()}

    metric_rank = {m: i for i, m in enumerate(metrics_of(data))}
    target_rank = {t: i for i, t in enumerate(dict.fromkeys(r.target for r in data.results))}
    keys = sorted(
        per_seed,
        key=lambda k: (
            metric_rank[k[0]],
            target_rank[k[1]],
            condition_rank(typed[k[2]], k[2]),
            _teacher_rank(k[1], k[3]),
        ),
    )
    rows = []
    for metric, target, label, teacher in keys:
        values = per_seed[(metric, target, label, teacher)]
        condition = typed[label]
        control = comparison = control_mean = None
        for cand in condition.controls() if condition is not None else []:
            ctrl = pooled(metric, target, cand.label)
            paired = sorted(set(ctrl) & set(values))
            if paired:
                control, comparison = cand.label, compare(values, ctrl)
                control_mean = _mean([ctrl[s] for s in paired])
                break
        rows.append(
            TableRow(
                metric=metric,
                target=target,
                condition=label,
                is_control=condition is not None and condition.is_control,
                teacher=teacher,
                values=dict(sorted(values.items())),
                summary=summarize(list(values.values())),
                control=control,
                control_mean=control_mean,
                comparison=comparison,
            )
        )
    return rows


def control_shifts(data: ReportData, rows: Sequence[TableRow]) -> list[TableRow]:
    """How control training alone moves each measured target (the paper's Figure 9): the
    headline metric's rows of control students (role ``control``) compared with the base, the
    largest moves first. With ``controls.all_targets`` every candidate is measured."""
    metrics = metrics_of(data)
    out = [
        r
        for r in rows
        if metrics
        and r.metric == metrics[0]
        and r.comparison is not None
        and r.control == Role.BASE.value
        and (cond := Condition.from_label(r.condition)) is not None
        and cond.role is Role.CONTROL
    ]
    return sorted(out, key=lambda r: (-abs(r.comparison.diff_mean if r.comparison else 0), r.label))


def target_matrix(data: ReportData, rows: Sequence[TableRow]) -> dict[str, dict[str, TableRow]]:
    """Teacher × evaluated target (the paper's Figure 3): for each condition that learns from
    a trait teacher, labelled with its teacher (``student-hard (owl)``), its headline-metric
    row of every measured target, each compared with its matched control."""
    metrics = metrics_of(data)
    out: dict[str, dict[str, TableRow]] = {}
    for r in rows:
        cond = Condition.from_label(r.condition)
        if not metrics or r.metric != metrics[0] or r.teacher is None:
            continue
        if cond is None or not cond.role.trait_data or r.comparison is None:
            continue
        out.setdefault(r.label, {})[r.target] = r
    return out


def transmits(row: TableRow, alpha: float = 0.05) -> bool | None:
    """Whether a condition's own target rose clearly above its control (paired t, p <
    ``alpha``); None when there are too few seeds to test."""
    c = row.comparison
    if c is None or c.p_value is None:
        return None
    return c.diff_mean > 0 and c.p_value < alpha
