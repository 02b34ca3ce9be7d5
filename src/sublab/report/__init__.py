"""The experiment report: a headline, tables with honest statistics, and paper-style bar charts.

``render_report(data, out_dir)`` turns a :class:`ReportData` (every per-seed result row of a run,
the filter reports, the teacher strengths, notes and the config text) into

- ``report.html`` — self-contained (CSS inline, charts embedded as base64 PNG);
- ``report.md`` — the same tables in Markdown, linking the PNGs;
- ``fig_<metric>.png`` — one bar chart per metric: for each target, a bar per condition with its
  95% CI and the individual seeds overlaid;
- ``report.json`` — the ReportData itself, so the report can be rebuilt or re-analysed.

Modules: :mod:`.model` (the data), :mod:`.analysis` (statistics, matched controls),
:mod:`.wording` (formats and headline sentences), :mod:`.figures`, :mod:`.render`.
"""

from sublab.report.analysis import analyse, metrics_of
from sublab.report.model import REPORT_VERSION, ReportData, ResultRow, TableRow, TeacherStrength
from sublab.report.render import render_html, render_markdown, render_report
from sublab.report.wording import (
    fmt,
    fmt_ci,
    fmt_diff,
    fmt_p,
    headlines,
    own_target_headlines,
    sentence,
    verdict,
)

__all__ = [
    "REPORT_VERSION",
    "ReportData",
    "ResultRow",
    "TableRow",
    "TeacherStrength",
    "analyse",
    "fmt",
    "fmt_ci",
    "fmt_diff",
    "fmt_p",
    "headlines",
    "metrics_of",
    "own_target_headlines",
    "render_html",
    "render_markdown",
    "render_report",
    "sentence",
    "verdict",
]
