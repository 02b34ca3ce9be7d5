"""The ``sublab`` command: parse arguments, call the library, print results."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from sublab.config import kind_of, load_config
from sublab.errors import SublabError
from sublab.store import DEFAULT_RUNS_DIR, list_runs

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="sublab: reproduce, vary and audit subliminal learning.",
)
out = Console()

RunsDir = Annotated[Path, typer.Option("--runs-dir", help="Folder that holds run directories.")]


@app.command()
def check(files: Annotated[list[Path], typer.Argument(help="TOML config files.")]) -> None:
    """Validate config files without running anything; report every problem."""
    failed = 0
    for f in files:
        try:
            spec = load_config(f)
        except SublabError as err:
            failed += 1
            out.print(f"[red]✗[/red] {err}")
            continue
        out.print(f"[green]✓[/green] {f} (kind = {kind_of(spec)!r})")
    if failed:
        raise typer.Exit(2)


@app.command()
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


def main() -> None:
    try:
        app()
    except SublabError as err:
        Console(stderr=True).print(f"[red]error:[/red] {err}", highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    main()
