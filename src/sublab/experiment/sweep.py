"""Sweeps (``kind = "sweep"``): one experiment config crossed with axes, run as one job graph.

A sweep holds a base experiment (its ``[experiment]`` table, so the sweep's run records all that
made it) and axes, each a field of that experiment (a dotted path such as ``targets``,
``students``, ``data.filter.max_count``; a number picks a list item:
``students.0.recipe.learning_rate``) with the values it takes.
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

from pydantic import BaseModel, Field, ValidationError, model_validator

from sublab.config import SafeName, Spec, config_kind, format_validation_error, validate
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
        "'data.filter.max_count') -> the values it takes; points are every combination. A "
        "non-list value of a list field is a one-element list.",
    )
    workers: int | None = Field(
        None,
        ge=1,
        description="Local worker processes (one torch thread each). None: one per CPU core, "
        "or 1 when a point samples on a GPU. Unused with 'ray'.",
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
        for point in self.point_dicts():  # a bad axis raises ValueError naming it
            try:
                ExperimentSpec.model_validate(point)
            except ValidationError as err:
                lines = format_validation_error(err, ExperimentSpec)
                problems += [f"point {point['name']}: {line}" for line in lines]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def point_dicts(self) -> list[dict[str, Any]]:
        """The points as experiment dicts (:func:`expand_sweep` plus the sweep-level fields)."""
        shared = {"runs_dir": self.runs_dir, "workers": self.workers, "ray": self.ray}
        return [{**p, **shared} for p in expand_sweep(self.name, self.experiment, self.axes)]


def _is_list_field(model: type[BaseModel], path: list[str], data: Any = None) -> bool | None:
    """Whether the field at ``path`` of ``model`` holds a list; None when there is no such
    field. A number in the path is an item of a list field (``students.0.recipe``); ``X | None``
    fields are looked through. ``data`` (the raw experiment) resolves tables whose spec class
    depends on their content (the ``[data]`` table's channel)."""
    current: Any = model
    raw = data
    for part in path:
        if part.isdigit() and typing.get_origin(current) is list:
            current = typing.get_args(current)[0]
            raw = raw[int(part)] if isinstance(raw, list) and int(part) < len(raw) else None
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(part)
        if field is None:
            return None
        current = field.annotation
        raw = raw.get(part) if isinstance(raw, dict) else None
        if typing.get_origin(current) in (typing.Union, types.UnionType):
            present = [a for a in typing.get_args(current) if a is not type(None)]
            current = present[0] if len(present) == 1 else current
        resolve = getattr(current, "resolve_spec_class", None)
        if resolve is not None:
            current = resolve(raw if raw is not None else {}) or current
    return typing.get_origin(current) is list


def _set(data: dict[str, Any], path: str, value: Any) -> None:
    """Set the dotted ``path`` of ``data`` (tables made as needed; a number indexes a list that
    the experiment already has)."""
    keys = path.split(".")
    where: Any = data
    for i, key in enumerate(keys[:-1]):
        if isinstance(where, list):
            if int(key) >= len(where):
                at = ".".join(keys[: i + 1])
                raise ValueError(f"axes.{path}: the experiment has no item {at}")
            where = where[int(key)]
        else:
            where = where.setdefault(key, [] if keys[i + 1].isdigit() else {})
    if isinstance(where, list):
        if int(keys[-1]) >= len(where):
            raise ValueError(f"axes.{path}: the experiment has no item {path}")
        where[int(keys[-1])] = value
    else:
        where[keys[-1]] = value


def _label(value: Any) -> str:
    """A short folder-safe label for one axis value."""
    if isinstance(value, dict) and "name" in value:
        text = str(value["name"])
    elif isinstance(value, list):
        text = "_".join(_label(v) for v in value) or "none"
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
        if _is_list_field(ExperimentSpec, path.split("."), base) is None:
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
            if _is_list_field(ExperimentSpec, keys, base) and not isinstance(value, list):
                value = [value]
            _set(point, path, copy.deepcopy(value))
            labels.append(_label(value))
        point_name = "-".join([name, *labels])
        if point_name in seen:
            point_name = f"{point_name}-{len(points)}"
        seen.add(point_name)
        point["name"] = point_name
        points.append(point)
    return points


def sweep_points(sweep: SweepSpec, source: str | Path) -> list[ExperimentSpec]:
    """The sweep's points as experiments (a loaded sweep has validated them all already; a
    ConfigError names ``source`` and the point otherwise)."""
    return [
        validate(p, ExperimentSpec, f"{source} (point {p['name']})") for p in sweep.point_dicts()
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
    points = sweep_points(spec, f"sweep {spec.name}")
    root = Path(runs_dir if runs_dir is not None else spec.runs_dir)
    run = Run.create(spec.name, kind="sweep", config=spec, config_text=config_text, runs_dir=root)
    with run.running():
        _run_points(run, spec, points, root, config_text)
    return run


def _run_points(
    run: Run, spec: SweepSpec, points: list[ExperimentSpec], root: Path, config_text: str | None
) -> None:

    from sublab.experiment.run import collect, pool_workers, seed_jobs
    from sublab.experiment.schedule import run_jobs
    from sublab.experiment.summary import write_report

    jobs, names = merge_graphs([(p.name, seed_jobs(run, p)) for p in points])
    console.print(f"sweep {spec.name}: {len(points)} points, {len(jobs)} jobs", markup=False)
    workers = pool_workers(spec.workers, [p.backend.device for p in points], len(jobs))
    results = run_jobs(jobs, workers, ray=spec.ray)
    headlines = {}
    for p in points:
        out = collect(p, {local: results[name] for local, name in names[p.name].items()})
        point_run = Run.create(p.name, kind="experiment", config=p, runs_dir=root)
        point_run.update_manifest(sweep=spec.name, artifacts=str(run.path.resolve()))
        headlines[p.name] = write_report(point_run, p, out, config_text or "")
        point_run.finish(headlines[p.name])
    run.update_manifest(points=sorted(headlines))
    run.finish({"points": len(points)})
