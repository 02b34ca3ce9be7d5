"""The paper-style bar chart: mean accuracy per condition with 95% CI error bars."""

from __future__ import annotations

from pathlib import Path

from sublab.evals.stats import Summary
from sublab.store import atomic_output

_COLOURS = {
    "reference": "#9e9e9e",
    "teacher": "#1f4e79",
    "student_aux": "#2e8b57",
    "student_all": "#74c69d",
    "cross_aux": "#c0392b",
    "cross_all": "#f1948a",
}


def bar_chart(
    path: str | Path,
    summaries: dict[str, Summary],
    labels: dict[str, str],
    chance: float,
    title: str,
) -> Path:
    """Write a PNG bar chart of ``summaries`` (Agg backend) to ``path`` atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(summaries)
    means = [summaries[n].mean * 100 for n in names]
    errs = [summaries[n].half_width * 100 for n in names]
    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=120)
    ax.bar(
        range(len(names)),
        means,
        yerr=errs,
        capsize=4,
        color=[_COLOURS.get(n, "#555555") for n in names],
        edgecolor="black",
        linewidth=0.6,
    )
    ax.axhline(chance * 100, color="black", linestyle="--", linewidth=1, label="chance")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels([labels.get(n, n) for n in names], fontsize=8)
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 105)
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    for i, m in enumerate(means):
        ax.text(i, m + errs[i] + 1.5, f"{m:.1f}", ha="center", fontsize=8)
    fig.tight_layout()
    out = Path(path)
    with atomic_output(out) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return out
