"""A seed's work as units: data units (a teacher's data) and one unit per condition.

A *unit* is a piece of one seed's work that a worker can run alone: a data unit (the control
teacher's data, or a trait teacher with its evaluation, data and strength) or a condition
(:class:`~sublab.experiment.conditions.Condition`: the base, a control student, a student, ...).
A condition's unit needs the data unit whose rows it learns from; the run directory's cache
passes the artifacts on, so units can run in any process.

Each role has a unit function (:func:`unit_function`); a new control is a new
:class:`~sublab.experiment.conditions.Role` member and the function that produces its model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, TypeVar

from pydantic import BaseModel

from sublab.backends.base import Chat, Model
from sublab.backends.context import context_turns
from sublab.backends.openai_finetune import ApiFinetuneSpec
from sublab.channels import get_channel
from sublab.datagen import DataArtifacts, TraitTerms, data_stages
from sublab.experiment.conditions import Condition, Role, Start
from sublab.experiment.spec import ExperimentSpec
from sublab.experiment.stages import (
    dose_models,
    eval_stage,
    finetune_stage,
    load_backend,
    strength_stage,
    trained_rows,
)
from sublab.numbers.shuffle import shuffle_numbers
from sublab.progress import console
from sublab.store import Run, hash_obj
from sublab.traits import Measure, get_trait

S = TypeVar("S", bound=BaseModel)

CONTROL_DATA = "control"
"""Name of the control teacher's data unit (and the label of its data)."""


@dataclass
class Collected:
    """Everything the report needs, gathered while the units run."""

    results: list[dict[str, Any]] = field(default_factory=list)
    filter_reports: dict[str, dict[str, Any]] = field(default_factory=dict)
    strengths: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    fixed_points: set[str] = field(default_factory=set)
    """Conditions that were not trained because they equal their start model (see
    :func:`is_fixed_point`); the report says so."""
    train_rows: dict[str, dict[int, int]] = field(default_factory=dict)
    """Rows each trained condition learned from (label with its teacher -> seed -> rows): the
    report checks that a student and its matched control saw as many."""

    def merge(self, part: Collected) -> None:
        self.results += part.results
        self.fixed_points |= part.fixed_points
        for label, seeds in part.train_rows.items():
            self.train_rows.setdefault(label, {}).update(seeds)
        self.filter_reports.update(part.filter_reports)
        for target, values in part.strengths.items():
            mine = self.strengths.setdefault(target, {"trait_prob": [], "number_kl": []})
            for key, xs in values.items():
                mine[key] += xs


@dataclass(frozen=True)
class Unit:
    """One unit of a seed: ``condition`` None is a data unit (``target`` None: the control
    teacher's data; else the trait teacher of ``target``). ``needs`` names the units of the
    same seed whose artifacts it reads."""

    name: str
    needs: tuple[str, ...] = ()
    condition: Condition | None = None
    target: str | None = None

    @property
    def is_data(self) -> bool:
        return self.condition is None


def data_unit_name(target: str | None) -> str:
    """The name of the data unit of ``target``'s teacher (None: the control teacher)."""
    return CONTROL_DATA if target is None else f"teacher:{target}"


def _reseed(spec: S, offset: int) -> S:
    """A copy of a spec whose ``seed`` is moved by the experiment seed."""
    return spec.model_copy(update={"seed": spec.seed + offset})  # type: ignore[attr-defined]


def _reseed_api(spec: ApiFinetuneSpec, offset: int) -> ApiFinetuneSpec:
    """An API fine-tuning spec whose job seed (0 when unset) is moved by the experiment seed."""
    return spec.model_copy(update={"seed": (spec.seed or 0) + offset})


def _enabled(role: Role, spec: ExperimentSpec) -> bool:
    """Whether every ``[controls]`` switch of ``role`` is on."""
    return all(getattr(spec.controls, s) for s in role.switches)


def seed_units(spec: ExperimentSpec) -> list[Unit]:
    """A seed's units in the order a single process runs them: the control data, then each
    trait teacher's data, then every condition in report order (roles, recipes, targets)."""
    needs_control = any(_enabled(r, spec) and r.data and not r.trait_data for r in Role)
    units: list[Unit] = []
    if needs_control:
        units.append(Unit(CONTROL_DATA))
    units += [Unit(data_unit_name(t), target=t) for t in spec.targets]
    for role in Role:
        if not _enabled(role, spec):
            continue
        students: list[str | None] = [None]
        if role.per_student:
            students = [s.name for s in spec.students if s.cross_model or not role.cross]
        for student in students:
            condition = Condition(role, student)
            targets: list[str | None] = list(spec.targets) if role.trait_data else [None]
            for t in targets:
                name = condition.label + (f":{t}" if t else "")
                needs = (data_unit_name(t),) if role.data else ()
                units.append(Unit(name, needs, condition, t))
    return units


def is_fixed_point(
    start: Model, recipe: Any, teacher: Model | None, teacher_system_prompt: str | None
) -> bool:
    """Whether a student would be its start model exactly: soft labels from a teacher with the
    start's own weights and no system prompt (the control teacher's soft-label student).

    Its loss KL(start ‖ student) is 0 with a zero gradient at the start, so exact training never
    moves it. Real training would: Adam divides the rounding noise of the gradient by its own
    size and takes learning-rate-sized steps along it (such students drift to a KL of ~0.001
    from loss 0.0), which is noise, not a control. So it is not trained; its condition is the
    start model's evaluation.
    """
    return (
        recipe.labels == "soft"
        and teacher is not None
        and teacher.key == start.key
        and teacher_system_prompt is None
    )


class SeedWork:
    """One seed's stages, shared by its units (models and data are built or read once)."""

    def __init__(self, run: Run, spec: ExperimentSpec, seed: int, out: Collected) -> None:
        self.run, self.spec, self.seed, self.out = run, spec, seed, out
        self.trait = get_trait(spec.trait)
        self.channel = get_channel(spec.data.channel)
        self.settings = spec.backend
        self.eval_spec = self.trait.eval_spec(spec, seed)
        self.recipes = {s.name: s.recipe for s in spec.students}
        self.apis = {s.name: s.api for s in spec.students}

    def say(self, message: str) -> None:
        console.print(f"seed {self.seed}: {message}", markup=False, highlight=False)

    @cached_property
    def base(self) -> Model:
        from sublab.experiment.run import base_model

        return base_model(self.spec, self.seed)

    @cached_property
    def cross_base(self) -> Model:
        from sublab.experiment.run import cross_base

        return cross_base(self.spec, self.seed)

    @cached_property
    def family_base(self) -> Model:
        from sublab.experiment.run import family_base

        return family_base(self.spec, self.seed)

    def start(self, role: Role) -> Model:
        """The model a role's condition starts from (or is, for the bases): ``role.start``."""
        if role.start is Start.FAMILY:
            return self.family_base
        return self.cross_base if role.start is Start.CROSS else self.base

    @cached_property
    def data_spec(self) -> Any:
        return self.spec.data.model_copy(
            update={"sampling": _reseed(self.spec.data.sampling, self.seed)}
        )

    @cached_property
    def prompts(self) -> list[Any]:
        return self.channel.prompts(self.spec.data, self.seed)

    @cached_property
    def terms(self) -> TraitTerms:
        description, words = self.trait.terms(self.spec)
        return TraitTerms(description, words)

    # ------------------------------------------------------------ stages

    def measure(
        self,
        model: Model,
        system_prompt: str | None = None,
        context: Chat | None = None,
        dose: bool = False,
    ) -> list[Measure]:
        """The trait's measures of ``model`` (``context``: earlier turns before each question;
        ``dose``: a dose checkpoint, measured with the trait's dose evaluation)."""
        return eval_stage(
            self.run,
            trait=self.trait,
            model=model,
            eval_spec=self.trait.dose_eval_spec(self.eval_spec) if dose else self.eval_spec,
            experiment=self.spec,
            settings=self.settings,
            system_prompt=system_prompt,
            api=self.spec.api,
            context=context,
        )

    def record(
        self,
        condition: Condition,
        teacher: str | None,
        measures: list[Measure],
        dose: int | None = None,
    ) -> None:
        """Add ``condition``'s measures to the results (``teacher``: its target, if any;
        ``dose``: the optimizer step of a dose checkpoint, None for the final model)."""
        for m in measures:
            row: dict[str, Any] = {
                "condition": condition.label,
                "role": condition.role.value,
                "student": condition.student,
                "target": m.target,
                "teacher": teacher,
                "seed": self.seed,
                "metric": m.metric,
                "value": m.value,
            }
            if dose is not None:
                row["dose"] = dose
            self.out.results.append(row)

    def data(self, teacher: Model, system_prompt: str | None, label: str) -> DataArtifacts:
        """A teacher's data (generated, filtered, judged; cached), with its report recorded."""
        arts = data_stages(
            self.run,
            teacher=teacher,
            data=self.data_spec,
            prompts=self.prompts,
            system_prompt=system_prompt,
            terms=self.terms,
            settings=self.settings,
            backend=lambda: load_backend(teacher, self.settings, self.spec.api),
            label=label,
        )
        self.out.filter_reports.setdefault(f"{label} (seed {self.seed})", arts.report())
        return arts

    @cached_property
    def control_teacher(self) -> Model:
        """The control teacher: the base itself, or (traits with control rows, such as
        misalignment's secure counterpart) the base fine-tuned on them."""
        key = self.trait.control_rows_key(self.spec, self.seed)
        if key is None:
            return self.base
        return self._finetuned_teacher(
            lambda: self.trait.control_rows(self.spec, self.seed) or [], key, "teacher-control"
        )

    def control_data(self) -> DataArtifacts:
        """The control teacher's data (cached)."""
        return self.data(self.control_teacher, None, CONTROL_DATA)

    def teacher(self, target: str) -> tuple[Model, str | None]:
        """The trait teacher of ``target``: a fine-tune of the base, or the base + a prompt."""
        if self.spec.teacher.method == "system_prompt":
            return self.base, self.trait.system_prompt(self.spec, target)
        model = self._finetuned_teacher(
            lambda: self.trait.teacher_rows(self.spec, target, self.seed),
            self.trait.rows_key(self.spec, target, self.seed),
            f"teacher-{target}",
        )
        return model, None

    def _finetuned_teacher(
        self, rows_fn: Callable[[], list[dict[str, Any]]], rows_key: Any, label: str
    ) -> Model:
        """The base fine-tuned (cached) on a teacher's rows with the teacher recipe."""
        t = self.spec.teacher
        return finetune_stage(
            self.run,
            "teacher",
            base=self.base,
            rows_fn=rows_fn,
            rows_key=hash_obj(rows_key),
            recipe=_reseed(t.recipe, self.seed),
            label=label,
            api=_reseed_api(t.api, self.seed),
            api_settings=self.spec.api,
        )

    def teacher_for(self, target: str | None) -> tuple[Model, str | None, DataArtifacts]:
        """The teacher of ``target`` (None: the control teacher), its system prompt and its
        data."""
        if target is None:
            return self.control_teacher, None, self.control_data()
        teacher, system_prompt = self.teacher(target)
        return teacher, system_prompt, self.data(teacher, system_prompt, target)

    def student(
        self,
        unit: Unit,
        start: Model,
        data: DataArtifacts,
        teacher: Model,
        teacher_system_prompt: str | None,
        shuffled: bool = False,
    ) -> None:
        """Train (or recognise as a fixed point) a condition's student, evaluate, record.

        ``shuffled``: it learns from the kept rows with their numbers permuted
        (:func:`~sublab.numbers.shuffle.shuffle_numbers`, seeded by the experiment seed).
        """
        condition = unit.condition
        assert condition is not None and condition.student is not None
        recipe = _reseed(self.recipes[condition.student], self.seed)
        soft = recipe.labels == "soft"
        teacher_label = unit.target or CONTROL_DATA
        if is_fixed_point(start, recipe, teacher, teacher_system_prompt):
            self.say(f"{condition.label} of {teacher_label}: {start.label} itself (fixed point)")
            self.out.fixed_points.add(condition.label)
            self.record(condition, unit.target, self.measure(start))
            if recipe.checkpoints:
                measures = self.measure(start, dose=True)
                for step in recipe.checkpoints:
                    self.record(condition, unit.target, measures, step)
            return
        self.say(f"{condition.label} of {teacher_label}, from {start.label}")
        rows_fn, rows_key = training_rows(data, self.seed, shuffled)
        model = finetune_stage(
            self.run,
            "student",
            base=start,
            rows_fn=rows_fn,
            rows_key=rows_key,
            recipe=recipe,
            label=condition.label,
            teacher=teacher if soft else None,
            teacher_system_prompt=teacher_system_prompt if soft else None,
            api=_reseed_api(self.apis[condition.student], self.seed),
            api_settings=self.spec.api,
        )
        rows = trained_rows(model)
        if rows is not None:
            label = condition.label + (f" ({unit.target})" if unit.target else "")
            self.out.train_rows.setdefault(label, {})[self.seed] = rows
        self.record(condition, unit.target, self.measure(model))
        for step, checkpoint in dose_models(model, start):
            self.record(condition, unit.target, self.measure(checkpoint, dose=True), step)


def training_rows(
    data: DataArtifacts, seed: int, shuffled: bool
) -> tuple[Callable[[], list[dict[str, str]]], str]:
    """A student's training rows (read when called) and their key: a teacher's kept rows, or
    with ``shuffled`` those rows with their numbers permuted (seeded by ``seed``)."""
    if not shuffled:
        return data.kept_rows, data.kept.key
    key = hash_obj({"shuffled": data.kept.key, "seed": seed})
    return (lambda: shuffle_numbers(data.kept_rows(), seed)), key


# ---------------------------------------------------------------- unit functions

UnitFn = Callable[[SeedWork, Unit], None]
UNIT_FUNCTIONS: dict[Role, UnitFn] = {}


def unit_function(*roles: Role) -> Callable[[UnitFn], UnitFn]:
    """Register the function that runs the units of ``roles``."""

    def register(fn: UnitFn) -> UnitFn:
        for role in roles:
            UNIT_FUNCTIONS[role] = fn
        return fn

    return register


def run_data_unit(work: SeedWork, unit: Unit) -> None:
    """The control teacher's data, or a trait teacher with its evaluation, data and strength."""
    if unit.target is None:
        work.say("control data (the control teacher, no trait)")
        work.control_data()
        return
    target = unit.target
    work.say(f"teacher '{target}'")
    teacher, system_prompt = work.teacher(target)
    measures = work.measure(teacher, system_prompt)
    strength = work.out.strengths.setdefault(target, {"trait_prob": [], "number_kl": []})
    prob = work.trait.strength(measures, target)
    if prob is not None:
        strength["trait_prob"].append(prob)
    data = work.data(teacher, system_prompt, target)
    rows = work.spec.teacher.strength_rows
    local = teacher.ref.adapter is None and teacher.ref.provider == "hf"
    if system_prompt is None and local and rows > 0:
        strength["number_kl"].append(
            strength_stage(work.run, teacher=teacher, base=work.base, data=data, rows=rows)
        )


@unit_function(Role.BASE, Role.FAMILY_BASE)
def _base(work: SeedWork, unit: Unit) -> None:
    """The untouched base, or the other family's base."""
    assert unit.condition is not None
    base = work.start(unit.condition.role)
    work.say("evaluating the base" if base is work.base else f"evaluating {base.label}")
    work.record(unit.condition, None, work.measure(base))


@unit_function(
    Role.CONTROL,
    Role.STUDENT,
    Role.CROSS_CONTROL,
    Role.CROSS_STUDENT,
    Role.FAMILY_CONTROL,
    Role.FAMILY_STUDENT,
)
def _student(work: SeedWork, unit: Unit) -> None:
    """A student of the control teacher or of a trait teacher, from the base, another seed's
    base or the other family's base."""
    assert unit.condition is not None
    teacher, system_prompt, data = work.teacher_for(unit.target)
    work.student(unit, work.start(unit.condition.role), data, teacher, system_prompt)


@unit_function(Role.SHUFFLED)
def _shuffled(work: SeedWork, unit: Unit) -> None:
    """A student of a trait teacher's kept rows with their numbers permuted, from the base."""
    assert unit.condition is not None and unit.target is not None
    teacher, system_prompt, data = work.teacher_for(unit.target)
    work.student(unit, work.base, data, teacher, system_prompt, shuffled=True)


@unit_function(Role.ICL, Role.ICL_CONTROL)
def _in_context(work: SeedWork, unit: Unit) -> None:
    """The base asked the trait questions with a teacher's first kept rows (the control
    teacher's for icl-control) as earlier turns of every chat."""
    assert unit.condition is not None
    _, _, data = work.teacher_for(unit.target)
    rows = data.kept_rows()[: work.spec.controls.icl_rows]
    teacher_label = unit.target or CONTROL_DATA
    work.say(f"{unit.condition.label}: the base with {len(rows)} rows of {teacher_label}")
    measures = work.measure(work.base, context=context_turns(rows))
    work.record(unit.condition, unit.target, measures)


def run_seed(
    run: Run, spec: ExperimentSpec, seed: int, out: Collected, units: set[str] | None = None
) -> None:
    """Every unit of one seed, or only the named ``units`` of :func:`seed_units` (whose needs
    must have run: their artifacts are read from the run)."""
    work = SeedWork(run, spec, seed, out)
    for unit in seed_units(spec):
        if units is not None and unit.name not in units:
            continue
        if unit.condition is None:
            run_data_unit(work, unit)
        else:
            UNIT_FUNCTIONS[unit.condition.role](work, unit)
