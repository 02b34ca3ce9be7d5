"""The experiment report: a headline, tables with honest statistics, and paper-style bar charts.

``render_report(data, out_dir)`` turns a :class:`ReportData` (every per-seed result row of a run,
the filter reports, the teacher strengths, notes and the config text) into

- ``report.html`` — self-contained (CSS inline, charts embedded as base64 PNG);
- ``report.md`` — the same tables in Markdown, linking the PNGs;
- ``fig_<metric>.png`` — one bar chart per metric: for each target, a bar per condition with its
  95% CI and the individual seeds overlaid;
- ``report.json`` — the ReportData itself, so the report can be rebuilt or re-analysed.

Everything is rendered in memory first and each file is written atomically, so a failure leaves
no half-written report. Statistics follow :mod:`sublab.evals.stats`: the unit is the seed, each
condition is compared with its matched control paired on seed.
"""

from __future__ import annotations

import base64
import html
import io
import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from sublab import __version__
from sublab.evals.stats import Comparison, Summary, compare, summarize
from sublab.store import atomic_write_bytes, atomic_write_text

REPORT_VERSION = 1

# Condition families in display order; a family's members ("student-hard", "student-soft")
# follow it by their suffix, and conditions of no family come last, alphabetically.
CONDITION_ORDER = ["base", "control", "student", "cross-control", "cross-student"]


def condition_family(condition: str) -> tuple[str, str]:
    """Split "cross-student-hard" into its family "cross-student" and its suffix "hard"."""
    for family in sorted(CONDITION_ORDER, key=len, reverse=True):
        if condition == family:
            return family, ""
        if condition.startswith(family + "-"):
            return family, condition[len(family) + 1 :]
    return condition, ""


def is_control(condition: str) -> bool:
    """Controls (base, control students, cross-model controls) are not headline effects."""
    return condition_family(condition)[0] in ("base", "control", "cross-control")


class ResultRow(BaseModel):
    """One measured value: one condition, one target, one seed, one metric."""

    condition: str = Field(
        description="Which model: base, control, student-hard, student-soft, cross-student, "
        "cross-control, or any other label."
    )
    target: str = Field(description="The trait target the value measures, e.g. 'owl'.")
    teacher: str | None = Field(
        None, description="Label of the teacher whose data trained this model (None for base)."
    )
    seed: int = Field(description="The statistical unit: base seed (or training seed for APIs).")
    metric: str = Field(description="Metric name, e.g. 'sampled_rate' or 'exact_prob'.")
    value: float = Field(description="The measured value (finite).", allow_inf_nan=False)


class TeacherStrength(BaseModel):
    """How strongly a teacher carries its trait."""

    trait_prob: float | None = Field(None, description="The teacher's own P(target answer).")
    number_kl: float | None = Field(
        None, description="KL(teacher || base) on number completions, nats per token."
    )


class ReportData(BaseModel):
    """Everything a report shows (saved as report.json beside it)."""

    version: int = Field(REPORT_VERSION, description="Schema version of this record.")
    title: str = Field(description="Title at the top of the report.")
    run_name: str = Field(description="Name of the run the results come from.")
    created: str | None = Field(None, description="When the results were produced (ISO 8601).")
    config_text: str = Field("", description="The TOML config that made the run, verbatim.")
    results: list[ResultRow] = Field(
        default_factory=list,
        description="Every per-seed value; the first metric listed is the headline metric.",
    )
    filter_reports: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Per teacher label, the number filter's report (total, kept, "
        "kept_fraction, reasons, examples).",
    )
    teacher_strengths: dict[str, TeacherStrength] = Field(
        default_factory=dict, description="Per teacher label, its trait probability and KL."
    )
    notes: list[str] = Field(default_factory=list, description="Free-text notes and caveats.")


class TableRow(BaseModel):
    """One condition of one (metric, target) table, with its statistics."""

    metric: str = Field(description="Metric name.")
    target: str = Field(description="Trait target.")
    condition: str = Field(description="Condition.")
    teacher: str | None = Field(description="Teacher label, if any.")
    values: dict[int, float] = Field(description="Value per seed (mean if a seed repeats).")
    summary: Summary = Field(description="Mean and 95% CI over seeds.")
    control: str | None = Field(description="Label of the matched control, if any.")
    control_mean: float | None = Field(
        description="Mean of the matched control over the paired seeds."
    )
    comparison: Comparison | None = Field(description="This minus its control, paired on seed.")

    @property
    def label(self) -> str:
        """Condition, with the teacher in brackets when there is one."""
        return f"{self.condition} ({self.teacher})" if self.teacher else self.condition


# ---------------------------------------------------------------- analysis


def _condition_rank(condition: str) -> tuple[int, str]:
    family, suffix = condition_family(condition)
    if family in CONDITION_ORDER:
        return (CONDITION_ORDER.index(family), suffix)
    return (len(CONDITION_ORDER), condition)


def _teacher_rank(target: str, teacher: str | None) -> tuple[int, str]:
    """The teacher of the target's own trait (its label names the target) first."""
    if teacher is None:
        return (0, "")
    return (0 if target.lower() in teacher.lower() else 1, teacher)


def _controls_for(condition: str) -> list[str]:
    """The conditions ``condition`` is compared with, first present wins.

    A student of one recipe is matched with the control student of the same recipe
    (student-hard ↔ control-hard), a cross-model student with the cross-model control; a
    control is compared with the base. Unsuffixed names (student ↔ control) work the same.
    """
    family, suffix = condition_family(condition)
    tail = f"-{suffix}" if suffix else ""
    if family in ("control", "cross-control"):
        return ["base"]
    if family == "student":
        return [f"control{tail}", "control"]
    if family == "cross-student":
        return [f"cross-control{tail}", "cross-control", f"control{tail}", "control"]
    return []


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs)


def metrics_of(data: ReportData) -> list[str]:
    """Metric names in the order they first appear (the first is the headline metric)."""
    return list(dict.fromkeys(r.metric for r in data.results))


def analyse(data: ReportData) -> list[TableRow]:
    """One TableRow per (metric, target, condition, teacher), in display order."""
    groups: dict[tuple[str, str, str, str | None], dict[int, list[float]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for r in data.results:
        groups[(r.metric, r.target, r.condition, r.teacher)][r.seed].append(r.value)
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
            _condition_rank(k[2]),
            _teacher_rank(k[1], k[3]),
        ),
    )
    rows = []
    for metric, target, condition, teacher in keys:
        values = per_seed[(metric, target, condition, teacher)]
        control = comparison = control_mean = None
        for cand in _controls_for(condition):
            ctrl = pooled(metric, target, cand)
            paired = sorted(set(ctrl) & set(values))
            if paired:
                control, comparison = cand, compare(values, ctrl)
                control_mean = _mean([ctrl[s] for s in paired])
                break
        rows.append(
            TableRow(
                metric=metric,
                target=target,
                condition=condition,
                teacher=teacher,
                values=dict(sorted(values.items())),
                summary=summarize(list(values.values())),
                control=control,
                control_mean=control_mean,
                comparison=comparison,
            )
        )
    return rows


# ---------------------------------------------------------------- wording


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


def fmt_p(c: Comparison | None) -> str:
    if c is None:
        return ""
    if c.p_value is None:
        return c.note.split(";")[0] if c.note else "no p-value"
    return "p < 0.001" if c.p_value < 0.001 else f"p = {c.p_value:.3f}"


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
    return (
        f"{row.label}, {row.metric} of {row.target}: {fmt(row.summary.mean)}{ctrl} — "
        f"{verdict(c)} ({fmt_diff(c.diff_mean)}{ci}; {c.test}, {fmt_p(c)}; "
        f"{c.n_up}/{c.n_pairs} seed{'s' if c.n_pairs != 1 else ''} up)."
    )


def headlines(data: ReportData, rows: Sequence[TableRow]) -> list[str]:
    """Headline sentences: every student condition against its control on the first metric.

    The first one leads the report: the first target's first student condition, with the
    target's own teacher (its label names the target) ahead of other teachers.
    """
    metrics = metrics_of(data)
    if not metrics:
        return ["No results yet."]
    out = []
    for r in rows:
        if r.metric != metrics[0] or r.comparison is None:
            continue
        if is_control(r.condition):
            continue
        out.append(sentence(r))
    if not out:
        out.append(
            f"No student condition with a matched control among the results "
            f"({len(data.results)} values, metric {metrics[0]})."
        )
    return out


# ---------------------------------------------------------------- figures


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower() or "metric"


def bar_chart(rows: Sequence[TableRow], metric: str) -> bytes:
    """PNG bytes: for each target, one bar per condition (mean, 95% CI) with seed points."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = [r for r in rows if r.metric == metric]
    targets = list(dict.fromkeys(r.target for r in rows))
    conditions = sorted({r.condition for r in rows}, key=_condition_rank)
    colors = {c: f"C{i % 10}" for i, c in enumerate(conditions)}
    # Teachers are told apart by hatching, only where one target shows a condition twice.
    per_group: dict[tuple[str, str], int] = defaultdict(int)
    for r in rows:
        per_group[(r.target, r.condition)] += 1
    teachers = list(dict.fromkeys(r.teacher for r in rows if r.teacher))
    hatch_marks = ["", "///", "...", "xxx", "\\\\\\", "ooo", "---", "+++"]
    hatches = (
        {t: hatch_marks[i % len(hatch_marks)] for i, t in enumerate(teachers)}
        if max(per_group.values(), default=1) > 1
        else {}
    )
    width_in = max(5.0, 1.0 + 0.45 * len(rows))
    fig = Figure(figsize=(width_in, 4.0), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    seen: set[str] = set()
    for ti, target in enumerate(targets):
        group = [r for r in rows if r.target == target]
        w = 0.8 / len(group)
        for j, r in enumerate(group):
            x = ti - 0.4 + w * (j + 0.5)
            s = r.summary
            err = None
            if s.ci is not None:
                err = [[s.mean - s.ci[0]], [s.ci[1] - s.mean]]
            ax.bar(
                x,
                s.mean,
                width=w * 0.9,
                color=colors[r.condition],
                alpha=0.85,
                hatch=hatches.get(r.teacher or "", ""),
                edgecolor="#333" if hatches else None,
                linewidth=0.4,
                label=r.condition if r.condition not in seen else None,
                yerr=err,
                capsize=3,
                error_kw={"elinewidth": 1, "ecolor": "#222"},
            )
            seen.add(r.condition)
            vals = list(r.values.values())
            n = len(vals)
            offsets = [w * 0.5 * ((k + 0.5) / n - 0.5) for k in range(n)]
            ax.scatter([x + o for o in offsets], vals, s=12, color="#111", zorder=3, linewidths=0)
    ax.set_xticks(range(len(targets)), targets)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric}: mean over seeds, 95% CI, dots = seeds", fontsize=10)
    ax.spines[["top", "right"]].set_visible(False)
    ax.axhline(0, color="#888", linewidth=0.6)
    handles, names = ax.get_legend_handles_labels()
    if hatches:
        from matplotlib.patches import Patch

        for t, h in hatches.items():
            handles.append(Patch(facecolor="white", edgecolor="#333", hatch=h))
            names.append(f"teacher: {t}")
    ax.legend(
        handles, names, fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0)
    )
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


# ---------------------------------------------------------------- tables

_COLUMNS = [
    "target",
    "condition",
    "n",
    "mean",
    "95% CI",
    "control",
    "diff vs control",
    "diff 95% CI",
    "p",
    "seeds up",
]


def _mark(r: TableRow) -> str:
    """CSS class of a results row: 'up'/'down' for a clear (p < 0.05) difference."""
    c = r.comparison
    if c is None or c.p_value is None or c.p_value >= 0.05:
        return ""
    return "up" if c.diff_mean > 0 else "down"


def _cells(r: TableRow) -> list[str]:
    c = r.comparison
    return [
        r.target,
        r.label,
        str(r.summary.n),
        fmt(r.summary.mean),
        fmt_ci(r.summary.ci),
        r.control or "",
        fmt_diff(c.diff_mean) if c else "",
        fmt_ci(c.ci, signed=True) if c else "",
        fmt_p(c),
        c.up_text if c else "",
    ]


def _filter_cells(label: str, rep: dict[str, Any]) -> list[str]:
    reasons = rep.get("reasons") or {}
    top = ", ".join(f"{k} {v}" for k, v in list(reasons.items())[:4])
    frac = rep.get("kept_fraction")
    return [
        label,
        str(rep.get("total", "")),
        str(rep.get("kept", "")),
        f"{frac:.1%}" if isinstance(frac, int | float) else "",
        top,
    ]


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def esc(s: str) -> str:
        return s.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _html_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], marks: Sequence[str] = ()
) -> str:
    """An HTML table; ``marks`` gives each row a CSS class ('' for none)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    classes = list(marks) + [""] * (len(rows) - len(marks))
    body = "".join(
        (f'<tr class="{cls}">' if cls else "<tr>")
        + "".join(f"<td>{html.escape(c)}</td>" for c in row)
        + "</tr>"
        for row, cls in zip(rows, classes, strict=True)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _sig(x: float | None) -> str:
    return "—" if x is None else f"{x:.3g}"


def _strength_rows(data: ReportData) -> list[list[str]]:
    return [
        [label, _sig(s.trait_prob), _sig(s.number_kl)]
        for label, s in data.teacher_strengths.items()
    ]


# ---------------------------------------------------------------- documents


def render_markdown(data: ReportData, rows: Sequence[TableRow], figures: dict[str, str]) -> str:
    """The report as Markdown; ``figures`` maps metric -> PNG file name."""
    heads = headlines(data, rows)
    parts = [f"# {data.title}", "", f"**{heads[0]}**", ""]
    parts += [f"- {h}" for h in heads[1:]]
    meta = f"Run `{data.run_name}`" + (f", {data.created}" if data.created else "")
    parts += ["", f"{meta}; sublab {__version__}. Unit of statistics: the seed.", ""]
    for metric in metrics_of(data):
        parts += [f"## {metric}", "", f"![{metric}]({figures[metric]})", ""]
        parts.append(_md_table(_COLUMNS, [_cells(r) for r in rows if r.metric == metric]))
        parts.append("")
    if data.teacher_strengths:
        parts += ["## Teacher strength", ""]
        parts.append(_md_table(["teacher", "trait prob", "number KL"], _strength_rows(data)))
        parts.append("")
    if data.filter_reports:
        parts += ["## Number filter", ""]
        header = ["teacher", "total", "kept", "kept %", "top reject reasons"]
        cells = [_filter_cells(k, v) for k, v in data.filter_reports.items()]
        parts += [_md_table(header, cells), ""]
    if data.notes:
        parts += ["## Notes", ""] + [f"- {n}" for n in data.notes] + [""]
    if data.config_text:
        parts += ["## Config", "", "```toml", data.config_text.rstrip(), "```", ""]
    return "\n".join(parts)


_CSS = """
body{font:15px/1.5 system-ui,-apple-system,Segoe UI,sans-serif;color:#1d1d1f;max-width:1100px;
margin:2rem auto;padding:0 1rem;background:#fcfcfc}
h1{font-size:1.7rem;margin-bottom:.3rem}h2{margin-top:2.2rem;border-bottom:1px solid #ddd}
.lead{font-size:1.15rem;background:#eef4ff;border-left:4px solid #3b6fd8;padding:.7rem 1rem}
.meta{color:#666;font-size:.9rem}
table{border-collapse:collapse;margin:1rem 0;font-size:.9rem;font-variant-numeric:tabular-nums}
th,td{border-bottom:1px solid #e3e3e3;padding:.3rem .6rem;text-align:left}
th{background:#f3f3f3}tr:hover td{background:#fafafa}
tr.up td{background:#eaf7ea}tr.down td{background:#fbeaea}
img{max-width:100%;border:1px solid #eee;background:#fff}
pre{background:#f5f5f5;padding:.8rem;overflow-x:auto;font-size:.85rem}
details{margin:.6rem 0}summary{cursor:pointer;color:#3b6fd8}
"""


def render_html(data: ReportData, rows: Sequence[TableRow], pngs: dict[str, bytes]) -> str:
    """The report as one self-contained HTML page (charts embedded as base64 PNG)."""
    e = html.escape
    heads = headlines(data, rows)
    body = [f"<h1>{e(data.title)}</h1>", f'<p class="lead">{e(heads[0])}</p>']
    if len(heads) > 1:
        body.append("<ul>" + "".join(f"<li>{e(h)}</li>" for h in heads[1:]) + "</ul>")
    meta = f"Run <code>{e(data.run_name)}</code>" + (f", {e(data.created)}" if data.created else "")
    body.append(
        f'<p class="meta">{meta}; sublab {e(__version__)}. Unit of statistics: the seed; '
        "intervals are 95% t-intervals; comparisons are paired t-tests on seed.</p>"
    )
    for metric in metrics_of(data):
        b64 = base64.b64encode(pngs[metric]).decode("ascii")
        body += [
            f"<h2>{e(metric)}</h2>",
            f'<img alt="{e(metric)} by condition" src="data:image/png;base64,{b64}">',
            _html_table(
                _COLUMNS,
                [_cells(r) for r in rows if r.metric == metric],
                [_mark(r) for r in rows if r.metric == metric],
            ),
            '<p class="meta">Highlighted: a clear difference from the matched control '
            "(paired t, p &lt; 0.05); green up, red down.</p>",
        ]
    if data.teacher_strengths:
        body += ["<h2>Teacher strength</h2>"]
        body.append(_html_table(["teacher", "trait prob", "number KL"], _strength_rows(data)))
    if data.filter_reports:
        body.append("<h2>Number filter</h2>")
        header = ["teacher", "total", "kept", "kept %", "top reject reasons"]
        body.append(
            _html_table(header, [_filter_cells(k, v) for k, v in data.filter_reports.items()])
        )
        for label, rep in data.filter_reports.items():
            examples = rep.get("examples") or {}
            if not examples:
                continue
            items = "".join(
                f"<li><b>{e(reason)}</b>: "
                + " · ".join(f"<code>{e(str(x))}</code>" for x in exs[:3])
                + "</li>"
                for reason, exs in examples.items()
            )
            body.append(
                f"<details><summary>rejected examples: {e(label)}</summary>"
                f"<ul>{items}</ul></details>"
            )
    if data.notes:
        body.append(
            "<h2>Notes</h2><ul>" + "".join(f"<li>{e(n)}</li>" for n in data.notes) + "</ul>"
        )
    if data.config_text:
        body.append(f"<details><summary>config</summary><pre>{e(data.config_text)}</pre></details>")
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{e(data.title)}</title><style>{_CSS}</style></head><body>"
        + "\n".join(body)
        + "</body></html>\n"
    )


def render_report(data: ReportData, out_dir: Path) -> dict[str, Path]:
    """Write report.html, report.md, report.json and one fig_<metric>.png per metric.

    Returns a map of what was written: ``html``, ``md``, ``json`` and ``fig:<metric>``.
    """
    out_dir = Path(out_dir)
    rows = analyse(data)
    pngs = {m: bar_chart(rows, m) for m in metrics_of(data)}
    names: dict[str, str] = {}
    for m in pngs:
        name = f"fig_{slug(m)}.png"
        while name in names.values():
            name = name[:-4] + "_.png"
        names[m] = name
    md = render_markdown(data, rows, names)
    page = render_html(data, rows, pngs)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for m, png in pngs.items():
        atomic_write_bytes(out_dir / names[m], png)
        written[f"fig:{m}"] = out_dir / names[m]
    atomic_write_text(out_dir / "report.json", data.model_dump_json(indent=2))
    atomic_write_text(out_dir / "report.md", md)
    atomic_write_text(out_dir / "report.html", page)
    written.update(
        json=out_dir / "report.json", md=out_dir / "report.md", html=out_dir / "report.html"
    )
    return written
