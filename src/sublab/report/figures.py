"""The report's figures: a paper-style bar chart per metric, and the dose curve."""

from __future__ import annotations

import io
import re
from collections import defaultdict
from collections.abc import Sequence

from sublab.report.model import TableRow


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower() or "metric"


def bar_chart(rows: Sequence[TableRow], metric: str) -> bytes:
    """PNG bytes: for each target, one bar per condition (mean, 95% CI) with seed points."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = [r for r in rows if r.metric == metric]
    targets = list(dict.fromkeys(r.target for r in rows))
    conditions = list(dict.fromkeys(r.condition for r in rows))  # rows come in report order
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


def dose_chart(series: dict[str, list[tuple[str, TableRow]]], metric: str) -> bytes:
    """PNG bytes: each condition's difference from its matched control (95% CI) against the
    optimizer steps of its dose checkpoints (the final model is left to the table)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 3.8), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for i, (label, points) in enumerate(series.items()):
        pts = [(int(step), r.comparison) for step, r in points if step != "final"]
        xs = [x for x, _ in pts]
        ys = [c.diff_mean for _, c in pts if c is not None]
        lo = [c.diff_mean - c.ci[0] if c is not None and c.ci else 0.0 for _, c in pts]
        hi = [c.ci[1] - c.diff_mean if c is not None and c.ci else 0.0 for _, c in pts]
        ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", capsize=3, color=f"C{i % 10}", label=label)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("optimizer steps (updates)")
    ax.set_ylabel(f"{metric}: student − control")
    ax.set_title("dose: difference from the matched control, 95% CI", fontsize=10)
    ax.axhline(0, color="#888", linewidth=0.6)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
