"""The organism commands: build, ensure, probe."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sublab.cli.common import out

organism_app = typer.Typer(no_args_is_help=True, help="The tiny model organism: build and probe.")
OrgConfig = Annotated[
    Path | None, typer.Option("--config", help="Organism spec (TOML, kind = 'organism').")
]
OrgSeed = Annotated[int | None, typer.Option("--seed", help="Base seed (corpus + init).")]
OrgSteps = Annotated[int | None, typer.Option("--steps", help="Override train.steps.")]
OrgThreads = Annotated[int | None, typer.Option("--threads", help="Override train.threads.")]
OrgLeak = Annotated[float | None, typer.Option("--leak", help="Override corpus.leak.")]


@organism_app.command("build")
def organism_build(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write the base into.")],
    seed: OrgSeed = None,
    config: OrgConfig = None,
    steps: OrgSteps = None,
    threads: OrgThreads = None,
    leak: OrgLeak = None,
    probe: Annotated[bool, typer.Option(help="Measure the figures after training.")] = True,
) -> None:
    """Train a base from scratch into --out and print its measured figures."""
    from sublab.organism.build import build_organism, read_metadata
    from sublab.organism.report import figures_table, spec_from_options

    spec = spec_from_options(config, seed, steps, threads, leak)
    path = build_organism(spec, out_dir, probe=probe)
    out.print(figures_table(read_metadata(path), title=str(path)))


@organism_app.command("ensure")
def organism_ensure(
    seed: OrgSeed = None,
    config: OrgConfig = None,
    steps: OrgSteps = None,
    threads: OrgThreads = None,
    leak: OrgLeak = None,
) -> None:
    """Print the cached base for the spec (building it first if missing)."""
    from sublab.organism.cache import ensure_organism
    from sublab.organism.report import spec_from_options

    out.print(str(ensure_organism(spec_from_options(config, seed, steps, threads, leak))))


@organism_app.command("probe")
def organism_probe(
    model: Annotated[Path, typer.Argument(help="A built organism (or a fine-tune of one).")],
) -> None:
    """Re-measure prior fit, love strength, filter pass rate and number KL of a model folder."""
    from sublab.backends.base import ModelRef
    from sublab.backends.hf import HFBackend
    from sublab.organism.build import read_metadata
    from sublab.organism.probe import probe_organism
    from sublab.organism.report import figures_table
    from sublab.organism.spec import OrganismSpec

    spec = OrganismSpec.model_validate(read_metadata(model)["spec"])
    backend = HFBackend(ModelRef(path=str(model)), device="cpu", dtype="float32")
    out.print(figures_table(probe_organism(backend, spec), title=str(model)))


def register(app: typer.Typer) -> None:
    app.add_typer(organism_app, name="organism")
