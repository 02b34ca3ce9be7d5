"""The MNIST commands: the auxiliary-logit figure and the Theorem 1 check."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sublab.cli.common import RunsDir, out
from sublab.store import DEFAULT_RUNS_DIR


def register(app: typer.Typer) -> None:
    app.command("mnist")(mnist_)
    app.command("mnist-theorem")(mnist_theorem)


MnistConfig = Annotated[
    Path | None,
    typer.Argument(help='kind = "mnist" TOML config; default: paper recipe on 8×8 digits.'),
]
MnistModels = Annotated[
    int | None, typer.Option("--models", help="Override: models per condition.")
]


def mnist_(
    config: MnistConfig = None,
    models: MnistModels = None,
    runs_dir: RunsDir = DEFAULT_RUNS_DIR,
) -> None:
    """Auxiliary-logit experiment (paper §6.2): six conditions, table + bar chart in a run dir."""
    from sublab.mnist.experiment import format_table, load_mnist_spec, run_figure

    spec, text = load_mnist_spec(config, models=models)
    result = run_figure(spec, runs_dir=runs_dir, config_text=text)
    out.print(format_table(result.summaries), markup=False)
    cached = " (cached)" if result.artifact.cached else ""
    out.print(f"table: {result.table_path}{cached}\nchart: {result.figure_path}")


def mnist_theorem(
    config: MnistConfig = None,
    draws: Annotated[int | None, typer.Option("--draws", help="Override: draws.")] = None,
    runs_dir: RunsDir = DEFAULT_RUNS_DIR,
) -> None:
    """One-step check of Theorem 1: cosine of teacher and imitation updates over many draws."""
    from sublab.mnist.experiment import load_mnist_spec
    from sublab.mnist.theorem import format_theorem_table, run_theorem

    spec, text = load_mnist_spec(config, draws=draws)
    result = run_theorem(spec, runs_dir=runs_dir, config_text=text)
    out.print(format_theorem_table(result.summaries, result.positive), markup=False)
    out.print(f"table: {result.artifact.file('theorem.md')}")
