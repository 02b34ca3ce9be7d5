"""Run an experiment: bases → teachers → data → filter → students → evaluations → report.

Every step is a cached stage of the run directory (see :mod:`sublab.experiment.stages` and
:mod:`sublab.datagen`), so a re-run skips finished work and a changed field re-runs only what
depends on it. A seed's work is split into units (:mod:`sublab.experiment.units`) that run in
one process, or as jobs on worker processes (:mod:`sublab.experiment.schedule`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sublab.backends.base import Model
from sublab.experiment.conditions import Start
from sublab.experiment.schedule import Job
from sublab.experiment.spec import ExperimentSpec
from sublab.experiment.units import Collected, Unit, run_seed, seed_units
from sublab.organism.spec import OrganismSpec
from sublab.pipeline import runner, teacher_model
from sublab.progress import console
from sublab.store import Run


def base_model(spec: ExperimentSpec, seed: int) -> Model:
    """The shared initialisation for ``seed``: an organism base (built or cached) or the model."""
    if spec.bases.organism is not None:
        from sublab.organism.cache import organism_model

        return organism_model(spec.bases.seed_organism(seed), f"organism-{seed}")
    assert spec.bases.model is not None
    return teacher_model(spec.bases.model, "base")


def _cross_seed(spec: ExperimentSpec, seed: int) -> int:
    """The seed whose base a cross-model student of ``seed`` starts from (organism bases)."""
    i = spec.seeds.index(seed)
    return spec.seeds[(i + 1) % len(spec.seeds)]


def cross_base(spec: ExperimentSpec, seed: int) -> Model:
    """The other base a cross-model student of ``seed`` starts from."""
    if spec.bases.organism is not None:
        return base_model(spec, _cross_seed(spec, seed))
    assert spec.bases.cross_model is not None
    return teacher_model(spec.bases.cross_model, "cross-base")


def family_base(spec: ExperimentSpec, seed: int) -> Model:
    """The other family's base for ``seed`` (``bases.cross_organism``; built or cached)."""
    from sublab.organism.cache import organism_model

    return organism_model(spec.bases.family_organism(seed), f"family-{seed}")


def pool_workers(requested: int | None, devices: Sequence[str], cap: int) -> int:
    """Worker processes for ``cap`` pieces of work: ``requested`` when given, else one per CPU
    core when every device is the CPU and 1 when any is a GPU (one model per worker would
    crowd its memory); never more than ``cap``."""
    if requested is not None:
        return max(1, min(requested, cap))
    from sublab.backends.hf import resolve_device

    if any(resolve_device(d).type != "cpu" for d in devices):
        return 1
    return max(1, min(cap, os.cpu_count() or 1))


def seed_workers(spec: ExperimentSpec) -> int:
    """How many seeds run side by side: the spec's ``workers``, or one per CPU core (CPU only)."""
    return pool_workers(spec.workers, [spec.backend.device], len(spec.seeds))


def _seed_job(run_path: str, spec: ExperimentSpec, seed: int, unit: str) -> Collected:
    """One unit of one seed, in a worker (its torch threads set by the executor)."""
    out = Collected()
    run_seed(Run(run_path), spec, seed, out, {unit})
    return out


def _ensure_one(spec: OrganismSpec) -> str:
    from sublab.organism.cache import ensure_organism

    return str(ensure_organism(spec))


def seed_jobs(run: Run, spec: ExperimentSpec) -> list[Job]:
    """Every seed's units (:func:`seed_units`) as a job graph over ``run``, in priority order.

    Organism bases that are not cached yet are built first (jobs ``base-<seed>``, and
    ``family-<seed>`` for the other family's bases of ``controls.cross_family``); a unit
    (``seed-<seed>-<unit>``) starts as soon as the bases it uses exist (its seed's, and the one
    its role starts from: the next seed's for a cross-model student, the other family's for a
    family one) and its data unit has run. Data units come before conditions
    in priority (the trait teachers' first: they are the longest), so the students (the bulk of
    the work) keep every worker busy to the end.
    """
    jobs: list[Job] = []
    built: set[str] = set()
    if spec.bases.organism is not None:
        from sublab.organism.cache import is_built, organism_path

        # one thread each (a Ray unit: its CPUs): the workers keep every core busy
        threads = max(1, int(spec.ray.num_cpus)) if spec.ray is not None else 1
        family = spec.controls.cross_family and spec.bases.cross_organism is not None
        for seed in spec.seeds:
            orgs = {f"base-{seed}": spec.bases.seed_organism(seed)}
            if family:
                orgs[f"family-{seed}"] = spec.bases.family_organism(seed)
            for name, org in orgs.items():
                if not is_built(organism_path(org)):
                    lone = org.train.model_copy(update={"threads": threads})
                    jobs.append(Job(name, _ensure_one, (org.model_copy(update={"train": lone}),)))
        built = {j.name for j in jobs}

    def job(seed: int, unit: Unit) -> Job:
        start = unit.condition.role.start if unit.condition is not None else Start.BASE
        used = {seed, _cross_seed(spec, seed)} if start is Start.CROSS else {seed}
        bases = [f"base-{s}" for s in sorted(used) if f"base-{s}" in built]
        if start is Start.FAMILY and f"family-{seed}" in built:
            bases.append(f"family-{seed}")
        needs = tuple(bases) + tuple(f"seed-{seed}-{n}" for n in unit.needs)
        args = (str(run.path.resolve()), spec, seed, unit.name)
        return Job(f"seed-{seed}-{unit.name}", _seed_job, args, needs)

    units = seed_units(spec)
    data = sorted((u for u in units if u.is_data), key=lambda u: u.target is None)
    jobs += [job(s, u) for u in data for s in spec.seeds]
    jobs += [job(s, u) for s in spec.seeds for u in units if not u.is_data]
    return jobs


def collect(spec: ExperimentSpec, results: dict[str, Collected]) -> Collected:
    """The results of :func:`seed_jobs` merged in the order one process would produce them."""
    merged = Collected()
    for seed in spec.seeds:
        for unit in seed_units(spec):
            merged.merge(results[f"seed-{seed}-{unit.name}"])
    return merged


def _parallel_seeds(run: Run, spec: ExperimentSpec, workers: int) -> Collected:
    """:func:`seed_jobs` on ``workers`` processes (or as Ray tasks with ``spec.ray``)."""
    from sublab.experiment.schedule import run_jobs

    jobs = seed_jobs(run, spec)
    bases = [j for j in jobs if j.name.startswith(("base-", "family-"))]
    if bases:
        where = "on Ray" if spec.ray is not None else f"({workers} workers)"
        console.print(
            f"building {len(bases)} organism bases; seeds start as their bases are ready {where}",
            markup=False,
        )

    def done(job: Job, result: Any) -> None:
        if job.name.startswith(("base-", "family-")):
            console.print(f"base ready: {result}", markup=False)

    return collect(spec, run_jobs(jobs, workers, on_done=done, ray=spec.ray))


@runner("experiment")
def run_experiment(
    spec: ExperimentSpec, config_text: str | None = None, runs_dir: str | Path | None = None
) -> Run:
    """Run every seed's units, then write the report; returns the run."""
    from sublab.experiment.summary import write_report

    root = Path(runs_dir if runs_dir is not None else spec.runs_dir)
    run = Run.create(
        spec.name, kind="experiment", config=spec, config_text=config_text, runs_dir=root
    )
    with run.running():
        workers = seed_workers(spec)
        if workers > 1 or spec.ray is not None:
            out = _parallel_seeds(run, spec, workers)
        else:
            out = Collected()
            for seed in spec.seeds:
                run_seed(run, spec, seed, out)
        headline = write_report(run, spec, out, config_text or "")
        run.finish(headline)
    return run
