"""The ``sublab`` command: parse arguments, call the library, print results.

One module per command group: :mod:`.runs` (check, run, demo, runs, report), :mod:`.data`
(generate, filter), :mod:`.audit` (audit, defend), :mod:`.models` (eval, serve, finetune,
strength), :mod:`.catalog` (models list, models add), :mod:`.organism` and :mod:`.mnist`. Flag
defaults come from the spec classes (:func:`.common.default`).
"""

from __future__ import annotations

import os
import sys

import typer

from sublab.cli import audit, catalog, data, mnist, models, organism, runs
from sublab.cli.common import print_error
from sublab.errors import SublabError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="sublab: reproduce, vary and audit subliminal learning.",
)
for group in (runs, data, audit, models, catalog, organism, mnist):
    group.register(app)


def main() -> None:
    # transformers' own download/loading bars would interleave with sublab's progress display
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        app()
    except SublabError as err:
        print_error(err)
        sys.exit(2)
