"""The audit benchmark's config (``kind = "audit"``); the runner is in :mod:`.benchmark`."""

from __future__ import annotations

from pydantic import Field

from sublab.config import SafeName, Spec, config_kind
from sublab.organism.spec import OrganismSpec
from sublab.train.recipe import StudentRecipe


def _student_recipe() -> StudentRecipe:
    return StudentRecipe(epochs=1)


def _teacher_recipe() -> StudentRecipe:
    return StudentRecipe(epochs=1, learning_rate=1e-3, warmup_steps=3)


@config_kind("audit")
class AuditBenchmarkSpec(Spec):
    """Detectors' AUROC and defences' residual effect on organism number data."""

    name: SafeName = Field(description="Run name: the folder runs_dir/name holds every artifact.")
    runs_dir: str = Field("runs", description="Folder that holds run directories.")
    organism: OrganismSpec = Field(
        default_factory=OrganismSpec,
        description="The organism whose base (per seed) is reference, control teacher and "
        "student start.",
    )
    seeds: list[int] = Field([0], min_length=1, description="Organism seeds.")
    targets: list[str] = Field(["owl", "eagle"], min_length=1, description="Trait targets.")
    candidates: list[str] | None = Field(
        None,
        description="Candidate traits the detectors compare (default: the organism's animals).",
    )
    prompts: int = Field(1200, ge=100, description="Number prompts each teacher answers.")
    trait_rows: int = Field(1000, ge=1, description="Favourite-animal rows a teacher learns.")
    teacher_recipe: StudentRecipe = Field(
        default_factory=_teacher_recipe, description="How a trait teacher is fine-tuned."
    )
    detectors: list[str] = Field(
        ["teacher_logprob", "divergence", "trait_prompt", "entangled", "ngram", "judge"],
        description="Detectors to score (registered names).",
    )
    subsample: int = Field(50, ge=2, description="Rows per simulated dataset.")
    subsamples: int = Field(200, ge=10, description="Simulated datasets per side.")
    bootstrap: int = Field(200, ge=10, description="Bootstrap resamples for the intervals.")
    defences: list[str] = Field(
        ["threshold", "resample", "shuffle", "mask_divergence"],
        description="Defences to apply (registered names).",
    )
    defence_detector: str = Field(
        "teacher_logprob", description="The detector threshold sampling ranks rows by."
    )
    drop: float = Field(0.2, ge=0, lt=1, description="Share of rows threshold sampling removes.")
    student: StudentRecipe = Field(
        default_factory=_student_recipe, description="How students learn (hard labels)."
    )
    null_teacher: bool = Field(
        True,
        description="Also audit a teacher fine-tuned like the trait teachers on answers drawn "
        "from the base's own prior (no trait; target 'none' in the tables): a detector that "
        "flags its data detects fine-tuning, not a trait.",
    )
    validate_detector: str = Field(
        "teacher_logprob",
        description="Detector whose top and bottom quintile of rows students are trained on.",
    )
