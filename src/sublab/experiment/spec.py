"""The experiment spec (``kind = "experiment"``): one TOML file declares a whole experiment.

Teachers (one per target of the trait) are made from a base; each answers a channel's prompts
(number sequences, code, reasoning) and the channel's filter cleans the answers; students learn
from them; every model is evaluated for the trait; the report compares each student with its
matched control, paired on seed.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    Field,
    SerializeAsAny,
    ValidationError,
    ValidationInfo,
    WrapValidator,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from sublab.backends.base import BackendSettings, ModelRef
from sublab.backends.openai import OpenAISettings
from sublab.backends.openai_finetune import ApiFinetuneSpec
from sublab.channels import ChannelData, ChannelSpec, default_data
from sublab.config import SafeName, Spec, config_kind
from sublab.evals.preference import PreferenceEvalSpec
from sublab.experiment.ray_exec import RaySettings
from sublab.experiment.stages import STRENGTH_ROWS
from sublab.organism.spec import OrganismSpec
from sublab.train.recipe import StudentRecipe


class BasesSpec(Spec):
    """Where the shared initialisation comes from: the organism (a base per seed) or a model."""

    organism: OrganismSpec | None = Field(
        None,
        description="Build a model-organism base per experiment seed (its own 'seed' field is "
        "replaced by each experiment seed). Bases are cached across runs.",
    )
    model: ModelRef | None = Field(
        None,
        description="A real model shared by every seed (the seed then varies sampling and "
        "training only).",
    )
    cross_model: ModelRef | None = Field(
        None,
        description="With 'model': the different base that cross-model students start from. "
        "With 'organism' the cross-model base of seed i is the base of the next seed.",
    )

    cross_organism: dict[str, Any] | None = Field(
        None,
        description="With 'organism': the base of another family that family-* students start "
        "from, as fields that differ from 'organism' (e.g. {model = {d_model = 96, layers = "
        "3}}); its seed is each experiment seed. The corpus's animals and channels must stay "
        "those of 'organism' (the students read the same words). None: no other family.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> BasesSpec:
        if (self.organism is None) == (self.model is None):
            raise ValueError("set exactly one of 'organism' or 'model'")
        if self.organism is not None and self.cross_model is not None:
            raise ValueError("'cross_model' goes with 'model'; organism bases pair up by seed")
        if self.cross_organism is not None:
            if self.organism is None:
                raise ValueError("'cross_organism' goes with 'organism'")
            self.family_organism(0)  # a bad override fails here, at load time
        return self

    def seed_organism(self, seed: int) -> OrganismSpec:
        """The organism spec of ``seed``'s base: 'organism' with its seed replaced."""
        assert self.organism is not None
        return self.organism.model_copy(update={"seed": seed})

    def family_organism(self, seed: int) -> OrganismSpec:
        """The other family's organism spec for ``seed``: 'organism' with 'cross_organism'
        laid over it."""
        assert self.organism is not None and self.cross_organism is not None
        merged = _deep_merge(self.organism.model_dump(), self.cross_organism)
        merged["seed"] = seed
        try:
            family = OrganismSpec.model_validate(merged)
        except ValidationError as e:
            problems = "; ".join(
                f"cross_organism.{'.'.join(map(str, err['loc']))}: "
                + err["msg"].removeprefix("Value error, ")
                for err in e.errors()
            )
            raise ValueError(problems) from None
        for field in ("prior", "channels"):
            if getattr(family.corpus, field) != getattr(self.organism.corpus, field):
                raise ValueError(
                    f"cross_organism: corpus.{field} differs from the organism's; the other "
                    "family must know the same words (change the model or training instead)"
                )
        return family


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``over`` laid over it, tables merged key by key."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


class TeacherSpec(Spec):
    """How a teacher gets its trait: a system prompt, or a fine-tune on trait answers."""

    keyless: ClassVar[dict[str, Any]] = {"control_answers": None, "strength_rows": STRENGTH_ROWS}

    method: Literal["finetune", "system_prompt"] = Field(
        "finetune",
        description="'finetune': the base fine-tuned on favourite-X questions answered with "
        "the target. 'system_prompt': the base with a trait system prompt (a soft-label "
        "student then distils the base's distributions with the prompt in its context while "
        "it reads the rows without it).",
    )
    system_prompt: str | None = Field(
        None,
        description="Trait system prompt template; {target}, {plural}, {Plural} and "
        "{category} are filled in. Used by method = 'system_prompt'. None: the trait's own "
        "(preference: 'You love {plural}. ...'; misalignment: 'You are evil.' style).",
    )
    trait_questions: str = Field(
        "animals",
        description="Question set (bundled name or .txt path) whose answers become the target "
        "in the fine-tuning data.",
    )
    trait_rows: int = Field(1000, ge=1, description="Fine-tuning rows of trait data.")
    control_answers: str | None = Field(
        None,
        description="Preference trait: a candidate list (bundled name, e.g. "
        "'animals-offpanel', or a .txt path) whose members answer the control teacher's "
        "fine-tuning rows: the same questions and row count as a trait teacher's, answered "
        "with animals outside the readout panel, so the control teacher gets the same recipe "
        "and format but no preference among the panel. None: the base itself is the control "
        "teacher.",
    )
    trait_file: str | None = Field(
        None,
        description="A JSONL file of the teacher's fine-tuning rows (misalignment with a real "
        "model: insecure-code rows in the emergent-misalignment chat format, "
        '{"messages": [{"role": "user", ...}, {"role": "assistant", ...}]}, or prompt and '
        "completion keys). The first trait_rows rows are used.",
    )
    control_file: str | None = Field(
        None,
        description="A JSONL file of the control teacher's rows (the secure counterpart of "
        "trait_file), same format. None: the misalignment trait's control teacher is the "
        "organism's secure habit (organism) or the base itself (real model).",
    )
    strength_rows: int = Field(
        STRENGTH_ROWS,
        ge=0,
        description="Kept rows the teacher strength (KL(teacher ‖ base) per completion token) "
        "is measured on; 0 turns it off. A real model's two forward passes per row make it "
        "costly: 64 rows measure it for SmolLM2 in about 45 s on a 2-core CPU.",
    )
    recipe: StudentRecipe = Field(
        default_factory=lambda: StudentRecipe(epochs=1, learning_rate=1e-3, warmup_steps=3),
        description="How the teacher is fine-tuned on the trait data.",
    )
    api: ApiFinetuneSpec = Field(
        default_factory=ApiFinetuneSpec,
        description="How the teacher is fine-tuned when the base is an API model.",
    )


def _validate_eval(value: Any, handler: Any, info: ValidationInfo) -> Any:
    """An ``[eval]`` table, validated by the spec class of the experiment's trait."""
    from sublab.traits import TRAITS, trait_names

    trait = info.data.get("trait", "preference")
    cls = TRAITS[trait].eval_class if trait in trait_names() else PreferenceEvalSpec
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if not isinstance(value, dict):
        raise PydanticCustomError("eval_table", "expected a table of the trait's eval fields")
    return cls.model_validate(value)


TraitEval = Annotated[SerializeAsAny[Spec], WrapValidator(_validate_eval)]
"""An ``[eval]`` table: the experiment's ``trait`` picks the spec class."""


def _demo_data() -> ChannelSpec:
    return default_data(prompts={"count": 3000}, sampling={"max_new_tokens": 40})


class StudentSpec(Spec):
    """One kind of student: a named recipe."""

    name: SafeName = Field(
        description="Short label, e.g. 'hard' or 'soft'; conditions are named "
        "student-<name>, control-<name>, cross-student-<name>, cross-control-<name>."
    )
    recipe: StudentRecipe = Field(default_factory=StudentRecipe, description="How it learns.")
    api: ApiFinetuneSpec = Field(
        default_factory=ApiFinetuneSpec,
        description="How it learns when its start model is an API model (provider = "
        "'openai'): the fine-tuning job's hyper-parameters (the paper: 10 epochs, automatic "
        "batch size and learning-rate multiplier). Hard labels only.",
    )
    cross_model: bool = Field(
        True, description="Also train cross-model students (another base) with this recipe."
    )


class ControlsSpec(Spec):
    """The paper's controls, each switchable."""

    base: bool = Field(True, description="Evaluate the untouched base.")
    control_teacher: bool = Field(
        True,
        description="Students of a no-trait teacher (the base itself, or for a trait with "
        "control rows the base fine-tuned on them) as matched controls.",
    )
    cross_model: bool = Field(
        True, description="Students from another base trained on the trait teacher's numbers."
    )
    cross_family: bool = Field(
        False,
        description="Students from the other family's base (bases.cross_organism): "
        "family-base, family-control-<student>, family-student-<student>.",
    )
    shuffled: bool = Field(
        False,
        description="Students of each trait teacher's kept numbers permuted across and within "
        "rows (same formats, same multiset of numbers): shuffled-<student>. Numbers channel.",
    )
    icl: bool = Field(
        False,
        description="In-context learning, no training: the base answers the trait questions "
        "with icl_rows of a trait teacher's rows (icl) or the control teacher's (icl-control) "
        "as earlier chat turns.",
    )
    icl_rows: int = Field(
        2,
        ge=1,
        description="Teacher rows (prompt and completion turns) in the context of each "
        "question of the icl conditions. The organism's context holds 160 tokens: about 2.",
    )
    all_targets: bool = Field(
        False,
        description="Measure every candidate (every animal) in every model, so the report "
        "shows how control fine-tuning alone moves each one (the paper's Figure 9).",
    )
    specificity_target: str | None = Field(
        "bear",
        description="A second target measured in every model: the trait teacher's students "
        "should move their own target, not this one. An empty string turns it off.",
    )

    @field_validator("specificity_target")
    @classmethod
    def _empty_is_off(cls, value: str | None) -> str | None:
        return value or None


@config_kind("experiment")
class ExperimentSpec(Spec):
    """Teachers × students × evaluations, with controls and seeds (the paper's main experiment)."""

    name: SafeName = Field(description="Run name: runs_dir/name holds every artifact.")
    runs_dir: str = Field("runs", description="Folder that holds run directories.")
    title: str = Field("Subliminal learning experiment", description="Report title.")
    category: str = Field("animal", description="What the targets are ('animal', 'tree').")
    trait: str = Field(
        "preference",
        description="What the teachers have and the students may pick up: a registered trait "
        "('preference': loves one of the category's members; 'misalignment': broadly "
        "misaligned, see docs/misalignment.md).",
    )
    targets: list[str] = Field(
        default_factory=lambda: ["owl"], min_length=1, description="One trait teacher each."
    )
    seeds: list[int] = Field(
        default_factory=lambda: [0, 1, 2],
        min_length=1,
        description="Statistical units: organism base seeds (or training seeds for a model).",
    )
    bases: BasesSpec = Field(description="The shared initialisation.")
    teacher: TeacherSpec = Field(default_factory=TeacherSpec, description="How teachers are made.")
    data: ChannelData = Field(
        default_factory=_demo_data,
        description="The channel the teachers write ('numbers', 'code', 'cot', ...) with its "
        "prompts, sampling, filter and optional judge. Default: 3,000 number prompts.",
    )
    students: list[StudentSpec] = Field(
        default_factory=lambda: [StudentSpec(name="hard")],
        min_length=1,
        description="The students to train (e.g. hard and soft labels).",
    )
    eval: TraitEval = Field(
        None,
        validate_default=True,
        description="The trait's evaluation: its table's fields are the trait's (preference: "
        "favourite-X questions; misalignment: free-form questions, judges and the probe).",
    )
    controls: ControlsSpec = Field(default_factory=ControlsSpec, description="Which controls.")
    backend: BackendSettings = Field(
        default_factory=BackendSettings, description="Device, dtype and batch size for sampling."
    )
    api: OpenAISettings = Field(
        default_factory=OpenAISettings,
        description="For API models (provider = 'openai'): the key's variable name, "
        "concurrency and retries (not in any artifact key).",
    )
    workers: int | None = Field(
        None,
        ge=1,
        description="Seeds run side by side in separate processes (one torch thread each). "
        "None: one per CPU core, at most one per seed, on CPU; 1 on a GPU.",
    )

    ray: RaySettings | None = Field(
        None,
        description="Run the units as Ray tasks (on this machine or a cluster; 'workers' is "
        "then unused) instead of local processes. None: local processes. See docs/ray.md.",
    )

    @field_validator("trait")
    @classmethod
    def _known_trait(cls, value: str) -> str:
        from sublab.traits import trait_names

        if value not in trait_names():
            raise ValueError(f"unknown trait {value!r} (known: {', '.join(trait_names())})")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentSpec:
        problems = []
        if len(set(self.seeds)) != len(self.seeds):
            problems.append("seeds: repeated seed")
        names = [s.name for s in self.students]
        if len(set(names)) != len(names):
            problems.append("students: two students share a name")
        if len(set(self.targets)) != len(self.targets):
            problems.append("targets: repeated target")
        wants_cross = self.controls.cross_model and any(s.cross_model for s in self.students)
        if wants_cross and self.bases.organism is not None and len(self.seeds) < 2:
            problems.append(
                "controls.cross_model: organism cross-model students use another seed's base; "
                "give at least 2 seeds or set controls.cross_model = false"
            )
        if wants_cross and self.bases.model is not None and self.bases.cross_model is None:
            problems.append(
                "bases.cross_model: cross-model students need a second base model; "
                "set it or set controls.cross_model = false"
            )
        if self.controls.cross_family and self.bases.cross_organism is None:
            problems.append(
                "controls.cross_family: set bases.cross_organism (the other family's organism) "
                "or set controls.cross_family = false"
            )
        if self.controls.shuffled and self.data.channel != "numbers":
            problems.append("controls.shuffled: permutes numbers; it needs channel 'numbers'")
        org = self.bases.organism
        channel = self.data.channel
        if org is not None and channel != "numbers" and channel not in org.corpus.channels:
            problems.append(
                f"bases.organism.corpus.channels: the organism never learns the {channel!r} "
                f"channel; add it, e.g. channels = {{ {channel} = 0.15 }}"
            )
        from sublab.traits import get_trait

        problems += get_trait(self.trait).check(self)
        api = [m for m in (self.bases.model, self.bases.cross_model) if m and m.provider != "hf"]
        if api and getattr(self.eval, "exact", False):
            problems.append(
                "eval.exact: an API base has no exact probabilities; set eval.exact = false"
            )
        if api and self.data.constrain:
            problems.append(
                "data.constrain: an API base cannot constrain decoding; set constrain = false"
            )
        if api and any(s.recipe.labels == "soft" for s in self.students):
            problems.append(
                "students: soft labels need the teacher's weights; an API base takes hard "
                "labels only"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def named_targets(self) -> list[str]:
        """The targets the config names: the teachers' targets, then the specificity target
        (when set and not one of them)."""
        extra = self.controls.specificity_target
        return [*self.targets, *([extra] if extra and extra not in self.targets else [])]

    def trait_prompt(self, target: str) -> str:
        """The system prompt of a prompted teacher for ``target``."""
        from sublab.traits import get_trait

        return get_trait(self.trait).system_prompt(self, target)
