"""Rendering a report: ``report.html`` (self-contained), ``report.md``, the figures and
``report.json``, each written atomically after everything is rendered in memory."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sublab import __version__
from sublab.report.analysis import analyse, control_shifts, metrics_of
from sublab.report.figures import bar_chart, dose_chart, slug
from sublab.report.model import ReportData, TableRow
from sublab.report.sections import (
    DOSE_HEADER,
    DOSE_NOTE,
    DOSE_TITLE,
    MATRIX_NOTE,
    MATRIX_TITLE,
    SHIFT_HEADER,
    SHIFT_NOTE,
    SHIFT_TITLE,
    dose_cells,
    dose_series,
    matrix_table,
    shift_cells,
)
from sublab.report.wording import fmt, fmt_ci, fmt_diff, fmt_p, fmt_rank_p, headlines
from sublab.store import atomic_write_bytes, atomic_write_text

DOSE_FIGURE = "fig_dose.png"

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
    "signed-rank p",
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
        fmt_rank_p(c),
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


_STRENGTH_HEADER = ["teacher", "trait prob", "data KL (nats/token)"]


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
    series = dose_series(data, rows)
    if series:
        parts += [f"## {DOSE_TITLE}", "", DOSE_NOTE, "", f"![dose]({DOSE_FIGURE})", ""]
        parts += [_md_table(DOSE_HEADER, dose_cells(series)), ""]
    header, matrix = matrix_table(data, rows)
    if matrix:
        parts += [f"## {MATRIX_TITLE}", "", MATRIX_NOTE, "", _md_table(header, matrix), ""]
    shifts = control_shifts(data, rows)
    if shifts:
        parts += [f"## {SHIFT_TITLE}", "", SHIFT_NOTE, ""]
        parts += [_md_table(SHIFT_HEADER, [shift_cells(r) for r in shifts]), ""]
    if data.teacher_strengths:
        parts += ["## Teacher strength", ""]
        parts.append(_md_table(_STRENGTH_HEADER, _strength_rows(data)))
        parts.append("")
    if data.filter_reports:
        parts += [f"## Data filter ({data.channel})", ""]
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
        "intervals are 95% t-intervals; comparisons are paired t-tests on seed, with a "
        "Wilcoxon signed-rank test on the same pairs beside them.</p>"
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
    series = dose_series(data, rows)
    if series and DOSE_FIGURE in pngs:
        b64 = base64.b64encode(pngs[DOSE_FIGURE]).decode("ascii")
        body += [f"<h2>{e(DOSE_TITLE)}</h2>", f'<p class="meta">{e(DOSE_NOTE)}</p>']
        body.append(f'<img alt="dose curve" src="data:image/png;base64,{b64}">')
        body.append(_html_table(DOSE_HEADER, dose_cells(series)))
    header, matrix = matrix_table(data, rows)
    if matrix:
        body += [f"<h2>{e(MATRIX_TITLE)}</h2>", f'<p class="meta">{e(MATRIX_NOTE)}</p>']
        body.append(_html_table(header, matrix))
    shifts = control_shifts(data, rows)
    if shifts:
        body += [f"<h2>{e(SHIFT_TITLE)}</h2>", f'<p class="meta">{e(SHIFT_NOTE)}</p>']
        body.append(_html_table(SHIFT_HEADER, [shift_cells(r) for r in shifts]))
    if data.teacher_strengths:
        body += ["<h2>Teacher strength</h2>"]
        body.append(_html_table(_STRENGTH_HEADER, _strength_rows(data)))
    if data.filter_reports:
        body.append(f"<h2>Data filter ({e(data.channel)})</h2>")
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
    series = dose_series(data, rows)
    if series:
        pngs[DOSE_FIGURE] = dose_chart(series, metrics_of(data)[0])
        names[DOSE_FIGURE] = DOSE_FIGURE
    page = render_html(data, rows, pngs)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for m, png in pngs.items():
        atomic_write_bytes(out_dir / names[m], png)
        written[f"fig:{m}" if m != DOSE_FIGURE else "fig:dose"] = out_dir / names[m]
    atomic_write_text(out_dir / "report.json", data.model_dump_json(indent=2))
    atomic_write_text(out_dir / "report.md", md)
    atomic_write_text(out_dir / "report.html", page)
    written.update(
        json=out_dir / "report.json", md=out_dir / "report.md", html=out_dir / "report.html"
    )
    return written
