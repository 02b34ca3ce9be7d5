"""Turning CLI options into a spec, and an organism's figures into a table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table

from sublab.config import load_config, validate
from sublab.organism.spec import OrganismSpec


def spec_from_options(
    config: Path | None = None,
    seed: int | None = None,
    steps: int | None = None,
    threads: int | None = None,
    leak: float | None = None,
) -> OrganismSpec:
    """The spec of a TOML file (kind = "organism") or the default, with CLI overrides;
    every bad value is reported at once, named by its field."""
    base = load_config(config, OrganismSpec) if config is not None else OrganismSpec()
    data: dict[str, Any] = base.model_dump()
    if seed is not None:
        data["seed"] = seed
    if steps is not None:
        data["train"]["steps"] = steps
    if threads is not None:
        data["train"]["threads"] = threads
    if leak is not None:
        data["corpus"]["leak"] = leak
    source = str(config) if config is not None else "command-line options"
    return validate(data, OrganismSpec, source)


def figures_table(meta: dict[str, Any], title: str = "organism") -> Table:
    """The headline figures of ``organism.json`` (or of a fresh probe) as a rich table."""
    table = Table("figure", "value", "target", title=title)
    probe = meta.get("probe", meta)
    for name, fit in probe.get("prior_fit", {}).items():
        table.add_row(
            f"prior fit, {name} questions (n={fit['n_questions']})",
            f"max |P - prior| = {fit['max_abs_dev']:.4f}",
            "≤ 0.02",
        )
    if "love_min" in probe:
        worst = min(probe["love"], key=probe["love"].get)
        table.add_row(
            "P(X | 'you love X'), worst animal", f"{probe['love_min']:.3f} ({worst})", "≥ 0.7"
        )
    if "filter_pass_rate" in probe:
        table.add_row(
            "number completions kept by the filter", f"{probe['filter_pass_rate']:.1%}", "≥ 90%"
        )
    for animal, kl in probe.get("number_kl_love_vs_none", {}).items():
        table.add_row(f"number KL(love {animal} ‖ none) per token", f"{kl:.5f}", "")
    for key, value in meta.get("timings", {}).items():
        table.add_row(
            key.replace("_", " "), f"{value:.1f}", "build ≤ 180" if key == "build_seconds" else ""
        )
    if "n_params" in meta:
        table.add_row("parameters", f"{meta['n_params']:,}", "")
    return table
