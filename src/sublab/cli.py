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


@app.command("filter")
def filter_(
    input_path: Annotated[Path, typer.Argument(help="JSONL: prompt/completion or chat rows.")],
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Output folder (default: IN.filtered/).")
    ] = None,
    banned: Annotated[
        list[str] | None,
        typer.Option("--banned", help="Banned list: shipped name (paper-negative) or file path."),
    ] = None,
    field: Annotated[str, typer.Option(help="Field that holds the completion.")] = "completion",
    min_count: Annotated[int, typer.Option(help="Fewest numbers kept.")] = 1,
    max_count: Annotated[int, typer.Option(help="Most numbers kept.")] = 10,
    max_value: Annotated[int, typer.Option(help="Largest number kept.")] = 999,
    examples: Annotated[int, typer.Option(help="Example completions per reason.")] = 5,
) -> None:
    """Keep number completions that pass the paper's rule; write kept rows and a report."""
    from sublab.config import validate
    from sublab.numbers.filter import (
        FilterSpec,
        NumberFilter,
        filter_rows,
        read_filter_input,
        write_filter_outputs,
    )
    from sublab.numbers.report import report_table

    try:
        raw = {"min_count": min_count, "max_count": max_count, "max_value": max_value}
        spec = validate({**raw, "banned_lists": banned or []}, FilterSpec, "command line")
        number_filter = NumberFilter.from_spec(spec)
        rows = read_filter_input(input_path, field)
        result = filter_rows(rows, spec, field, examples, number_filter=number_filter)
        target = out_dir or input_path.with_name(input_path.stem + ".filtered")
        write_filter_outputs(result, target)
    except SublabError as err:
        Console(stderr=True).print(f"[red]error:[/red] {err}", highlight=False)
        raise typer.Exit(2) from None
    out.print(report_table(result.report))
    out.print(f"wrote {target}/ (kept.jsonl, rejected.jsonl, filter_report.json, .md)")


def main() -> None:
    try:
        app()
    except SublabError as err:
        Console(stderr=True).print(f"[red]error:[/red] {err}", highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    main()
