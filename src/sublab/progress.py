"""Rich progress bars for long steps (quiet when stdout is not a terminal)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)


def progress() -> Progress:
    """A progress display for use as ``with progress() as p: task = p.add_task(...)``."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
        disable=not console.is_terminal,
    )


def quiet_transformers() -> None:
    """Turn off transformers' own loading/saving bars and info logs (sublab shows its own)."""
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()
