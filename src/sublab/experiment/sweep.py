"""Sweeps (``kind = "sweep"``): one experiment config crossed with axes, run as one job graph.

A sweep holds a base experiment (its ``[experiment]`` table, so the sweep's run records all that
made it) and axes, each a field of that experiment (a dotted path such as ``targets``,
``students`` or ``numbers.filter.max_count``) with the values it takes.
Every combination of values is one experiment (a *point*); a value for a list field that is not
itself a list stands for a one-element list, so ``targets = ["owl", "eagle"]`` gives a point with
``targets = ["owl"]`` and one with ``["eagle"]``.

The points' job graphs merge into one (:func:`merge_graphs`): a job that is the same in two
points (same name, function and arguments, e.g. an organism base build) runs once; jobs that
share a name but not their work (``seed-0-control`` of two points) run one after the other, so
the artifacts they share are built once and never by two workers at the same time: the second
finds them in the cache. All points build their artifacts in the sweep's run directory; each
point's report is a run of its own (``runs_dir/<point>``).
"""

from __future__ import annotations

import copy
import itertools
import re
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, model_validator

from sublab.config import SafeName, Spec, config_kind, validate
from sublab.errors import ConfigError
from sublab.experiment.ray_exec import RaySettings
from sublab.experiment.schedule import Job, check_jobs
from sublab.experiment.spec import ExperimentSpec
from sublab.pipeline import runner
from sublab.progress import console
from sublab.store import Run

_SWEEP_LEVEL = ("name", "runs_dir", "workers", "ray")
"""Experiment fields that a sweep sets for all its points (on the sweep, not in ``experiment``)."""


@config_kind("sweep")
class SweepSpec(Spec):
    """A base experiment crossed with axes of values: one experiment per combination, all run
    as one job graph."""

    name: SafeName = Field(
        description="Sweep name: runs_dir/name holds every point's artifacts; each point's "
        "report is the run <name>-<its values>."
    )
    runs_dir: str = Field("runs", description="Folder that holds run directories.")
    experiment: dict[str, Any] = Field(
        description="The base experiment: an experiment config's fields without kind, name, "
        "runs_dir, workers and ray (the sweep's own fields set those)."
    )
    axes: dict[str, list[Any]] = Field(
        min_length=1,
        description="Field of the experiment (dotted path: 'targets', 'seeds', 'students', "
        "'numbers.filter.max_count') -> the values it takes; points are every combination. A "
        "non-list value of a list field is a one-element list.",
    )
    workers: int | None = Field(
        None,
        ge=1,
        description="Local worker processes (one torch thread each). None: one per CPU core. "
        "Unused with 'ray'.",
    )
    ray: RaySettings | None = Field(
        None, description="Run the merged graph as Ray tasks (see docs/ray.md). None: locally."
    )

    @model_validator(mode="after")
    def _sweep_level_fields(self) -> SweepSpec:
        problems = [
            f"experiment.{k}: set it on the sweep, not in its experiment"
            for k in ("kind", *_SWEEP_LEVEL)
            if k in self.experiment
        ]
        problems += [
            f"axes.{k}: a sweep-level field; it cannot be an axis"
            for k in self.axes
            if k.split(".")[0] in _SWEEP_LEVEL
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _is_list_field(model: type[BaseModel], path: list[str]) -> bool | None:
    """Whether the field at ``path`` of ``model`` holds a list; None when there is no such
    field (``X | None`` fields are looked through)."""
    current: Any = model
    for part in path:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(part)
        if field is None:
            return None
        current = field.annotation
        if typing.get_origin(current) in (typing.Union, types.UnionType):
            present = [a for a in typing.get_args(current) if a is not type(None)]
            current = present[0] if len(present) == 1 else current
    return typing.get_origin(current) is list


def _label(value: Any) -> str:
    """A short folder-safe label for one axis value."""
    if isinstance(value, dict) and "name" in value:
        text = str(value["name"])
    elif isinstance(value, list):
        text = "_".join(_label(v) for v in value)
    else:
        text = str(value)
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"


def expand_sweep(
    name: str, base: dict[str, Any], axes: dict[str, list[Any]]
) -> list[dict[str, Any]]:
    """Every combination of ``axes`` values applied to a copy of the experiment dict ``base``
    (first axis slowest), each named ``<name>-<labels of its values>``.

    Raises ValueError naming an axis that is no field of an experiment or has no values."""
    for path, values in axes.items():
        if _is_list_field(ExperimentSpec, path.split(".")) is None:
            raise ValueError(f"axes.{path}: no such experiment field")
        if not values:
            raise ValueError(f"axes.{path}: give at least one value")
    points = []
    seen: set[str] = set()
    for combo in itertools.product(*axes.values()):
        point = copy.deepcopy(base)
        labels = []
        for path, value in zip(axes, combo, strict=True):
            keys = path.split(".")
            if _is_list_field(ExperimentSpec, keys) and not isinstance(value, list):
                value = [value]
            where = point
            for key in keys[:-1]:
                where = where.setdefault(key, {})
            where[keys[-1]] = copy.deepcopy(value)
            labels.append(_label(value))
        point_name = "-".join([name, *labels])
        if point_name in seen:
            point_name = f"{point_name}-{len(points)}"
        seen.add(point_name)
        point["name"] = point_name
        points.append(point)
    return points


def sweep_points(sweep: SweepSpec, source: str | Path) -> list[ExperimentSpec]:
    """The sweep's points, each validated as an experiment; a ConfigError names ``source`` and
    the point for every problem."""
    try:
        points = expand_sweep(sweep.name, sweep.experiment, sweep.axes)
    except ValueError as err:
        raise ConfigError(source, [str(err)]) from None
    shared = {"runs_dir": sweep.runs_dir, "workers": sweep.workers, "ray": sweep.ray}
    return [
        validate({**p, **shared}, ExperimentSpec, f"{source} (point {p['name']})") for p in points
    ]


def merge_graphs(
    graphs: list[tuple[str, list[Job]]],
) -> tuple[list[Job], dict[str, dict[str, str]]]:
    """One job graph from several ``(point, jobs)`` graphs, and ``{point: {job name in its
    graph: name in the merged graph}}``.

    A job equal to one already merged (name, function, arguments, resources) is that job. A job
    whose name is taken by different work is renamed ``<point>/<name>`` and needs the job that
    holds the name (they may share artifacts: one builds them, the other reads them). Priority
    interleaves the graphs by position, so every point's data units come before the students.
    """
    merged: dict[str, Job] = {}
    order: dict[str, tuple[float, int]] = {}
    holders: dict[str, list[str]] = {}  # a name in the points' graphs -> merged jobs doing it
    works: dict[str, tuple[Any, ...]] = {}  # merged job -> its work before any chaining
    names: dict[str, dict[str, str]] = {}
    for p, (point, jobs) in enumerate(graphs):
        check_jobs(jobs)
        mine = names.setdefault(point, {})
        for i, job in enumerate(jobs):
            needs = tuple(mine[n] for n in job.needs)
            work = (job.fn, job.args, needs, job.num_cpus, job.num_gpus)
            earlier = holders.setdefault(job.name, [])
            twin = next((n for n in earlier if works[n] == work), None)
            if twin is not None:
                mine[job.name] = twin
                continue
            name = f"{point}/{job.name}" if earlier else job.name
            if earlier:
                needs = (*needs, earlier[-1])
            merged[name] = Job(name, job.fn, job.args, needs, job.num_cpus, job.num_gpus)
            works[name] = work
            order[name] = (i / len(jobs), p)
            earlier.append(name)
            mine[job.name] = name
    out = sorted(merged.values(), key=lambda j: order[j.name])
    check_jobs(out)
    return out, names


@runner("sweep")
def run_sweep(
    spec: SweepSpec, config_text: str | None = None, runs_dir: str | Path | None = None
) -> Run:
    """Run every point of the sweep as one job graph (artifacts in the sweep's run directory),
    then write each point's report into its own run; returns the sweep's run."""
    import os

    from sublab.experiment.run import collect, seed_jobs
    from sublab.experiment.schedule import run_jobs
    from sublab.experiment.summary import write_report

    points = sweep_points(spec, f"sweep {spec.name}")
    root = Path(runs_dir if runs_dir is not None else spec.runs_dir)
    run = Run.create(spec.name, kind="sweep", config=spec, config_text=config_text, runs_dir=root)
    run.set_status("running")
    jobs, names = merge_graphs([(p.name, seed_jobs(run, p)) for p in points])
    console.print(f"sweep {spec.name}: {len(points)} points, {len(jobs)} jobs", markup=False)
    workers = spec.workers or max(1, os.cpu_count() or 1)
    results = run_jobs(jobs, workers, ray=spec.ray)
    headlines = {}
    for p in points:
        out = collect(p, {local: results[name] for local, name in names[p.name].items()})
        point_run = Run.create(p.name, kind="experiment", config=p, runs_dir=root)
        point_run.update_manifest(sweep=spec.name, artifacts=str(run.path.resolve()))
        headlines[p.name] = write_report(point_run, p, out, config_text or "")
        point_run.set_status("done", headline=headlines[p.name])
    run.update_manifest(points=sorted(headlines))
    run.set_status("done", headline={"points": len(points)})
    return run
