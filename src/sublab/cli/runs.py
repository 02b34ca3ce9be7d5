"""Commands over configs and runs: check, run, demo, runs, report."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from sublab.cli.common import RunsDir, out, user_errors
from sublab.config import kind_of, load_config
from sublab.errors import SublabError
from sublab.store import DEFAULT_RUNS_DIR, list_runs

DEMO_CONFIG = Path("experiments/demo-owl.toml")
OverrideRunsDir = Annotated[
    Path | None, typer.Option("--runs-dir", help="Override the config's runs_dir.")
]


def register(app: typer.Typer) -> None:
    app.command()(check)
    app.command("run")(run_)
    app.command()(demo)
    app.command()(runs)
    app.command()(report)


def check(files: Annotated[list[Path], typer.Argument(help="TOML config files.")]) -> None:
    """Validate config files without running anything; report every problem."""
    failed = 0
    for f in files:
        try:
            spec = load_config(f)
        except SublabError as err:
            failed += 1
            out.print(f"[red]✗[/red] {err}", highlight=False, soft_wrap=True)
            continue
        out.print(f"[green]✓[/green] {f} (kind = {kind_of(spec)!r})")
    if failed:
        raise typer.Exit(2)


def run_(
    config: Annotated[Path, typer.Argument(help="Any runnable config (TOML).")],
    runs_dir: OverrideRunsDir = None,
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address",
            help="Run an experiment's units on Ray: 'local', 'auto' (this machine's cluster) "
            "or ray://host:port; overrides the address in the config's ray table (docs/ray.md).",
        ),
    ] = None,
) -> None:
    """Validate a config (all problems at once), then run it by its kind (experiment, data,
    mnist, sweep); finished stages are skipped."""
    from sublab.pipeline import run_config

    with user_errors():
        run = run_config(config, runs_dir=runs_dir, ray_address=ray_address)
    manifest = run.manifest()
    stages = manifest.get("stages", {})
    for stage, name in (("filter", "filter_report.json"), ("judge", "judge_report.json")):
        found = run.path / stages.get(stage, "-") / name
        if found.is_file():
            from sublab.filtering import report_table

            out.print(report_table(json.loads(found.read_text())))
    for stage, name in stages.items():
        out.print(f"{stage}: {run.path / name}")
    head = ", ".join(f"{k}={v}" for k, v in manifest.get("headline", {}).items())
    out.print(f"run {run.name}: {manifest.get('status')} ({head})")


def demo(
    config: Annotated[Path, typer.Option(help="The demo experiment config.")] = DEMO_CONFIG,
    runs_dir: OverrideRunsDir = None,
) -> None:
    """Run the offline owl experiment on the model organism and print where its report is."""
    from sublab.pipeline import run_config

    if not config.is_file():
        raise SublabError(f"{config}: demo config not found; run from the sublab checkout")
    started = time.perf_counter()
    run = run_config(config, runs_dir=runs_dir)
    minutes, seconds = divmod(round(time.perf_counter() - started), 60)
    out.print(
        f"run {run.name}: {run.manifest().get('status')} in {minutes} min {seconds} s; "
        f"report: {run.path / 'report.html'}"
    )


def runs(runs_dir: RunsDir = DEFAULT_RUNS_DIR) -> None:
    """List runs with their status and headline figures."""
    rows = list_runs(runs_dir)
    if not rows:
        out.print(f"no runs under {runs_dir}/")
        return
    table = Table("name", "kind", "status", "updated", "headline")
    for r in rows:
        head = ", ".join(f"{k}={v}" for k, v in r["headline"].items())
        table.add_row(r["name"], r["kind"], r["status"], r["updated"], head)
    out.print(table)


def report(
    run: Annotated[Path, typer.Argument(help="A finished experiment's run directory.")],
) -> None:
    """Re-render an experiment's report (HTML, Markdown, PNGs) from its run directory."""
    from sublab.experiment.summary import rerender
    from sublab.store import Run

    for kind, path in rerender(Run(run)).items():
        out.print(f"{kind}: {path}")
