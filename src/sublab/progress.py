"""Rich progress bars for long steps (quiet when stdout is not a terminal)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

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
if not console.is_terminal and "COLUMNS" not in os.environ:
    # logs and CI: rich would wrap tables at 80 columns and cut the condition names
    console.width = 140


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


@contextlib.contextmanager
def quiet_backend(backend: Any) -> Iterator[None]:
    """Silence a backend's own progress bar (if it has one) while the caller's bar runs."""
    if not hasattr(backend, "show_progress"):
        yield
        return
    before = backend.show_progress
    backend.show_progress = False
    try:
        yield
    finally:
        backend.show_progress = before
