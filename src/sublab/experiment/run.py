"""Run an experiment: bases → teachers → numbers → filter → students → evaluations → report.

Every step is a cached stage of the run directory (see :mod:`sublab.experiment.stages`), so a
re-run skips finished work and a changed field re-runs only what depends on it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sublab.backends.base import ModelRef
from sublab.evals.preference import PreferenceResult
from sublab.experiment.schedule import Job
from sublab.experiment.spec import ExperimentSpec
from sublab.experiment.stages import (
    Model,
    eval_stage,
    finetune_stage,
    kept_rows,
    numbers_stage,
    strength_stage,
    trait_rows,
)
from sublab.numbers.prompts import make_prompts
from sublab.organism.spec import OrganismSpec
from sublab.pipeline import runner, weights_sha256
from sublab.progress import console
from sublab.store import Artifact, Run, hash_obj

CONTROL = "control"


@dataclass
class Collected:
    """Everything the report needs, gathered while the stages run."""

    results: list[dict[str, Any]] = field(default_factory=list)
    filter_reports: dict[str, dict[str, Any]] = field(default_factory=dict)
    strengths: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    fixed_points: set[str] = field(default_factory=set)
    """Student conditions that were not trained because they equal their start model (see
    :func:`is_fixed_point`); the report says so."""


def base_model(spec: ExperimentSpec, seed: int) -> Model:
    """The shared initialisation for ``seed``: an organism base (built or cached) or the model."""
    if spec.bases.organism is not None:
        from sublab.organism.cache import ensure_organism, organism_key

        org = spec.bases.organism.model_copy(update={"seed": seed})
        path = ensure_organism(org)
        return Model(ModelRef(path=str(path)), key=organism_key(org), label=f"organism-{seed}")
    assert spec.bases.model is not None
    return _fixed_model(spec.bases.model, "base")


def seed_workers(spec: ExperimentSpec) -> int:
    """How many seeds run side by side: the spec's ``workers``, or one per CPU core (CPU only)."""
    if spec.workers is not None:
        return min(spec.workers, len(spec.seeds))
    from sublab.backends.hf import resolve_device

    if resolve_device(spec.backend.device).type != "cpu":
        return 1
    return max(1, min(len(spec.seeds), os.cpu_count() or 1))


def _seed_job(run_path: str, spec: ExperimentSpec, seed: int, unit: str) -> Collected:
    import torch

    torch.set_num_threads(1)
    out = Collected()
    run_seed(Run(run_path), spec, seed, out, {unit})
    return out


def _merge(into: Collected, part: Collected) -> None:
    into.results += part.results
    into.fixed_points |= part.fixed_points
    into.filter_reports.update(part.filter_reports)
    for target, values in part.strengths.items():
        mine = into.strengths.setdefault(target, {"trait_prob": [], "number_kl": []})
        for key, xs in values.items():
            mine[key] += xs


def _ensure_one(spec: OrganismSpec) -> str:
    from sublab.organism.cache import ensure_organism

    return str(ensure_organism(spec))


def _cross_seed(spec: ExperimentSpec, seed: int) -> int:
    """The seed whose base a cross-model student of ``seed`` starts from (organism bases)."""
    i = spec.seeds.index(seed)
    return spec.seeds[(i + 1) % len(spec.seeds)]


def seed_jobs(run: Run, spec: ExperimentSpec) -> list[Job]:
    """Every seed's units (:func:`seed_units`) as a job graph over ``run``, in priority order.

    Organism bases that are not cached yet are built first (jobs ``base-<seed>``); a unit
    (``seed-<seed>-<unit>``) starts as soon as the bases it uses exist (a cross-model student
    also needs the next seed's) and its data unit has run. Data units come before students in
    priority, so the students (the bulk of the work, ~15 s each on the organism) keep every
    worker busy to the end.
    """
    jobs: list[Job] = []
    built: set[str] = set()
    if spec.bases.organism is not None:
        from sublab.organism.cache import is_built, organism_path

        for seed in spec.seeds:
            org = spec.bases.organism.model_copy(update={"seed": seed})
            if not is_built(organism_path(org)):
                # one thread each (a Ray unit: its CPUs): the workers keep every core busy
                threads = max(1, int(spec.ray.num_cpus)) if spec.ray is not None else 1
                lone = org.train.model_copy(update={"threads": threads})
                jobs.append(
                    Job(f"base-{seed}", _ensure_one, (org.model_copy(update={"train": lone}),))
                )
        built = {j.name for j in jobs}

    def job(seed: int, unit: Unit) -> Job:
        used = {seed, _cross_seed(spec, seed)} if unit.cross else {seed}
        bases = [f"base-{s}" for s in sorted(used) if f"base-{s}" in built]
        needs = tuple(bases) + tuple(f"seed-{seed}-{n}" for n in unit.needs)
        args = (str(run.path.resolve()), spec, seed, unit.name)
        return Job(f"seed-{seed}-{unit.name}", _seed_job, args, needs)

    units = seed_units(spec)
    data = [u for u in units if u.student is None]
    # the trait teachers' data units first: they are the longest (teacher, numbers, strength)
    data.sort(key=lambda u: u.target is None)
    jobs += [job(s, u) for u in data for s in spec.seeds]
    jobs += [job(s, u) for s in spec.seeds for u in units if u.student is not None]
    return jobs


def collect(spec: ExperimentSpec, results: dict[str, Collected]) -> Collected:
    """The results of :func:`seed_jobs` merged in the order one process would produce them."""
    merged = Collected()
    for seed in spec.seeds:
        for unit in seed_units(spec):
            _merge(merged, results[f"seed-{seed}-{unit.name}"])
    return merged


def _parallel_seeds(run: Run, spec: ExperimentSpec, workers: int) -> Collected:
    """:func:`seed_jobs` on ``workers`` processes (or as Ray tasks with ``spec.ray``)."""
    from sublab.experiment.schedule import run_jobs

    jobs = seed_jobs(run, spec)
    bases = [j for j in jobs if j.name.startswith("base-")]
    if bases:
        where = "on Ray" if spec.ray is not None else f"({workers} workers)"
        console.print(
            f"building {len(bases)} organism bases; seeds start as their bases are ready {where}",
            markup=False,
        )

    def done(job: Job, result: Any) -> None:
        if job.name.startswith("base-"):
            console.print(f"base ready: {result}", markup=False)

    return collect(spec, run_jobs(jobs, workers, on_done=done, ray=spec.ray))


def cross_base(spec: ExperimentSpec, seed: int) -> Model:
    """The other base a cross-model student of ``seed`` starts from."""
    if spec.bases.organism is not None:
        return base_model(spec, _cross_seed(spec, seed))
    assert spec.bases.cross_model is not None
    return _fixed_model(spec.bases.cross_model, "cross-base")


def _fixed_model(ref: ModelRef, label: str) -> Model:
    weights = {"model": weights_sha256(ref.path)}
    if ref.adapter:
        weights["adapter"] = weights_sha256(ref.adapter)
    return Model(ref, key=hash_obj({"ref": ref, "weights": weights}), label=label)


def _record(
    out: Collected,
    spec: ExperimentSpec,
    condition: str,
    teacher: str | None,
    seed: int,
    result: PreferenceResult,
) -> None:
    measured = list(spec.targets)
    if spec.controls.specificity_target and spec.controls.specificity_target not in measured:
        measured.append(spec.controls.specificity_target)
    for target in measured:
        row = {"condition": condition, "target": target, "teacher": teacher, "seed": seed}
        prob = result.prob(target)
        if prob is not None:
            out.results.append({**row, "metric": "exact_prob", "value": prob})
        out.results.append({**row, "metric": "sampled_rate", "value": result.rate(target)})
    out.results.append(
        {
            "condition": condition,
            "target": "(none)",
            "teacher": teacher,
            "seed": seed,
            "metric": "non_answer_rate",
            "value": result.non_answer_rate,
        }
    )


def _reseed(spec: Any, offset: int) -> Any:
    """A copy of a spec whose ``seed`` is moved by the experiment seed."""
    return spec.model_copy(update={"seed": spec.seed + offset})


@dataclass(frozen=True)
class Unit:
    """One piece of a seed's work that a worker can run alone: a data unit (``student`` None:
    the control teacher's numbers when ``target`` is None, else the trait teacher's) or one
    student condition. ``needs`` names the units of the same seed whose artifacts it reads (the
    run directory's cache passes them on)."""

    name: str
    needs: tuple[str, ...] = ()
    student: str | None = None
    target: str | None = None
    cross: bool = False

    @property
    def condition(self) -> str:
        """The student condition's label: control-hard, cross-student-soft, ..."""
        role = "student" if self.target else "control"
        return f"{'cross-' if self.cross else ''}{role}-{self.student}"


def _student_units(spec: ExperimentSpec, target: str | None, data: str) -> list[Unit]:
    """The student conditions that learn from the data unit ``data`` (target None: control)."""
    units = []
    for s in spec.students:
        for cross in (False, True) if spec.controls.cross_model and s.cross_model else (False,):
            u = Unit("", (data,), s.name, target, cross)
            units.append(replace(u, name=u.condition + (f":{target}" if target else "")))
    return units


def seed_units(spec: ExperimentSpec) -> list[Unit]:
    """A seed's units in the order a single process runs them.

    ``control`` (the base's evaluation and the control teacher's numbers) and ``teacher:<t>``
    (the trait teacher, its evaluation, numbers and strength) make data; each student condition
    (``control-hard``, ``student-hard:<t>``, ``cross-student-hard:<t>`` ...) is its own unit.
    """
    units: list[Unit] = []
    if spec.controls.base or spec.controls.control_teacher:
        units.append(Unit(CONTROL))
    if spec.controls.control_teacher:
        units += _student_units(spec, None, CONTROL)
    for target in spec.targets:
        units.append(Unit(f"teacher:{target}", target=target))
        units += _student_units(spec, target, f"teacher:{target}")
    return units


def is_fixed_point(
    start: Model, recipe: Any, teacher: Model | None, teacher_system_prompt: str | None
) -> bool:
    """Whether a student would be its start model exactly: soft labels from a teacher with the
    start's own weights and no system prompt (the control teacher's soft-label student).

    Its loss KL(start ‖ student) is 0 with a zero gradient at the start, so exact training never
    moves it. Real training would: Adam divides the rounding noise of the gradient by its own
    size and takes learning-rate-sized steps along it (the demo's control-soft students drifted
    to a KL of ~0.001 from loss 0.0), which is noise, not a control. So it is not trained; its
    condition is the start model's evaluation.
    """
    return (
        recipe.labels == "soft"
        and teacher is not None
        and teacher.key == start.key
        and teacher_system_prompt is None
    )


def run_seed(
    run: Run, spec: ExperimentSpec, seed: int, out: Collected, units: set[str] | None = None
) -> None:
    """Every stage for one seed (the statistical unit), or only the named ``units`` of
    :func:`seed_units` (whose needs must have run: their artifacts are read from the run)."""

    def say(message: str) -> None:
        console.print(f"seed {seed}: {message}", markup=False, highlight=False)

    settings = spec.backend
    base = base_model(spec, seed)
    evals = spec.eval.model_copy(update={"sampling": _reseed(spec.eval.sampling, seed)})
    prompts = make_prompts(_reseed(spec.numbers.prompts, seed))
    sampling = _reseed(spec.numbers.sampling, seed)
    by_name = {s.name: s for s in spec.students}

    def evaluate(model: Model, condition: str, teacher: str | None) -> None:
        result = eval_stage(run, model=model, spec=evals, settings=settings)
        _record(out, spec, condition, teacher, seed, result)

    def numbers(teacher: Model, system_prompt: str | None, label: str) -> Artifact:
        _, filt = numbers_stage(
            run,
            teacher=teacher,
            system_prompt=system_prompt,
            prompts=prompts,
            sampling=sampling,
            filter_spec=spec.numbers.filter,
            settings=settings,
            chunk_size=spec.numbers.chunk_size,
            label=label,
        )
        out.filter_reports.setdefault(f"{label} (seed {seed})", _filter_report(filt))
        return filt

    def student(
        condition: str,
        teacher_label: str | None,
        start: Model,
        data: Artifact,
        recipe: Any,
        teacher: Model | None,
        teacher_system_prompt: str | None = None,
    ) -> None:
        if is_fixed_point(start, recipe, teacher, teacher_system_prompt):
            say(f"{condition} of {teacher_label or CONTROL}: {start.label} itself (fixed point)")
            out.fixed_points.add(condition)
            evaluate(start, condition, teacher_label)
            return
        say(f"{condition} of {teacher_label or CONTROL}, from {start.label}")
        model = finetune_stage(
            run,
            "student",
            base=start,
            rows_fn=lambda: kept_rows(data),
            rows_key=data.key,
            recipe=recipe,
            label=condition,
            teacher=teacher if recipe.labels == "soft" else None,
            teacher_system_prompt=teacher_system_prompt if recipe.labels == "soft" else None,
        )
        evaluate(model, condition, teacher_label)

    def teacher_data(target: str, record: bool) -> tuple[Model, str | None, Artifact]:
        if record:
            say(f"teacher '{target}'")
        teacher, system_prompt = make_teacher(run, spec, base, target, seed)
        if record:
            t_result = eval_stage(
                run, model=teacher, spec=evals, settings=settings, system_prompt=system_prompt
            )
            strength = out.strengths.setdefault(target, {"trait_prob": [], "number_kl": []})
            prob = t_result.prob(target)
            strength["trait_prob"].append(prob if prob is not None else t_result.rate(target))
        data = numbers(teacher, system_prompt, target)
        if record and system_prompt is None and teacher.ref.adapter is None:
            kl = strength_stage(run, teacher=teacher, base=base, filt=data)
            out.strengths[target]["number_kl"].append(kl)
        return teacher, system_prompt, data

    def run_unit(unit: Unit) -> None:
        if unit.student is None and unit.target is None:
            if spec.controls.base:
                say("evaluating the base")
                evaluate(base, "base", None)
            if spec.controls.control_teacher:
                say("control numbers (the base, no trait)")
                numbers(base, None, CONTROL)
            return
        if unit.student is None:
            assert unit.target is not None
            teacher_data(unit.target, record=True)
            return
        recipe = _reseed(by_name[unit.student].recipe, seed)
        start = cross_base(spec, seed) if unit.cross else base
        if unit.target is None:  # a control student: the base is the control teacher
            student(unit.condition, None, start, numbers(base, None, CONTROL), recipe, base)
            return
        teacher, system_prompt, data = teacher_data(unit.target, record=False)
        student(unit.condition, unit.target, start, data, recipe, teacher, system_prompt)

    for unit in seed_units(spec):
        if units is None or unit.name in units:
            run_unit(unit)


def make_teacher(
    run: Run, spec: ExperimentSpec, base: Model, target: str, seed: int
) -> tuple[Model, str | None]:
    """The trait teacher for ``target``: a fine-tune of the base, or the base + a system prompt."""
    t = spec.teacher
    if t.method == "system_prompt":
        return base, spec.trait_prompt(target)
    rows_key = hash_obj(
        {"trait": target, "questions": t.trait_questions, "n": t.trait_rows, "seed": seed}
    )
    model = finetune_stage(
        run,
        "teacher",
        base=base,
        rows_fn=lambda: trait_rows(t.trait_questions, target, t.trait_rows, seed),
        rows_key=rows_key,
        recipe=_reseed(t.recipe, seed),
        label=f"teacher-{target}",
    )
    return model, None


def _filter_report(filt: Artifact) -> dict[str, Any]:
    import json

    return json.loads(filt.file("filter_report.json").read_text())


@runner("experiment")
def run_experiment(
    spec: ExperimentSpec, config_text: str | None = None, runs_dir: str | Path | None = None
) -> Run:
    """Run every seed's stages, then write the report; returns the run."""
    from sublab.experiment.summary import write_report

    root = Path(runs_dir if runs_dir is not None else spec.runs_dir)
    run = Run.create(
        spec.name, kind="experiment", config=spec, config_text=config_text, runs_dir=root
    )
    run.set_status("running")
    workers = seed_workers(spec)
    if workers > 1 or spec.ray is not None:
        out = _parallel_seeds(run, spec, workers)
    else:
        out = Collected()
        for seed in spec.seeds:
            run_seed(run, spec, seed, out)
    headline = write_report(run, spec, out, config_text or "")
    run.set_status("done", headline=headline)
    return run
