"""What every command shares: the console, error printing, option types, spec defaults."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from sublab.backends.base import BackendSettings, SamplingSpec
from sublab.backends.openai import OpenAISettings
from sublab.errors import SublabError

out = Console()

RunsDir = Annotated[Path, typer.Option("--runs-dir", help="Folder that holds run directories.")]
ApiBase = Annotated[
    str | None,
    typer.Option(
        "--api-base",
        help="OpenAI-compatible API base URL (e.g. https://api.openai.com/v1); "
        "--model is then the API's model name.",
    ),
]
ApiKeyEnv = Annotated[
    str, typer.Option("--api-key-env", help="NAME of the env variable holding the API key.")
]
MaxConcurrency = Annotated[
    int, typer.Option("--max-concurrency", help="API requests in flight at once.")
]


SAMPLING = SamplingSpec()
BACKEND = BackendSettings()
API = OpenAISettings()
"""Flags take their defaults from these spec instances (``SAMPLING.seed``), never typed twice."""


def print_error(err: SublabError) -> None:
    """One error on stderr; soft_wrap never breaks a file:line location across lines."""
    Console(stderr=True).print(f"[red]error:[/red] {err}", highlight=False, soft_wrap=True)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Inside a command: a SublabError is printed and the command exits with status 2."""
    try:
        yield
    except SublabError as err:
        print_error(err)
        raise typer.Exit(2) from None


def ref_fields(model: str, adapter: str | None, api_base: str | None) -> dict[str, object]:
    """ModelRef fields from the --model/--adapter/--api-base flags."""
    fields: dict[str, object] = {"path": model, "adapter": adapter}
    if api_base is not None:
        fields.update(provider="openai", api_base=api_base)
    return fields
