"""The ``kind = "mnist"`` config: the auxiliary-logit experiment (paper §6.2) and Theorem 1 check.

Defaults are the paper's recipe (Adam 3e-4, batch 1024, 5 + 5 epochs, MLP 256-256-(10+3),
uniform noise in [-1, 1], 100 models per condition) on the offline 8×8 digits set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from sublab.config import Spec, config_kind


class DataSpec(Spec):
    """Which labelled image set the teachers learn and everyone is scored on."""

    name: Literal["digits", "mnist", "fashion-mnist"] = Field(
        "digits",
        description="'digits': scikit-learn's 8×8 digits (offline, always available); "
        "'mnist' / 'fashion-mnist': the standard IDX files in `dir`.",
    )
    dir: Path | None = Field(
        None,
        description="Folder holding train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
        "t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz] (mnist / fashion-mnist only).",
    )
    download: bool = Field(
        False,
        description="Fetch missing MNIST files into `dir` and check their sha256 (needs internet).",
    )
    test_fraction: float = Field(
        0.2, gt=0, lt=1, description="Held-out share of the digits set used for scoring."
    )
    limit_train: int | None = Field(
        None, ge=1, description="Use only the first N training images (quick runs); all if unset."
    )

    @model_validator(mode="after")
    def _dir_needed(self) -> DataSpec:
        if self.name != "digits" and self.dir is None:
            raise ValueError(f"data.dir is required for data.name = {self.name!r}")
        return self


class ModelSpec(Spec):
    """The MLP: input → hidden layers (ReLU) → 10 class logits + auxiliary logits."""

    hidden: list[int] = Field(
        [256, 256], min_length=1, description="Widths of the hidden layers (paper: 256, 256)."
    )
    aux_logits: int = Field(
        3, ge=1, description="Number of extra logits never trained by the teacher (paper: 3)."
    )

    @model_validator(mode="after")
    def _positive(self) -> ModelSpec:
        if any(h < 1 for h in self.hidden):
            raise ValueError("every hidden width must be >= 1")
        return self


class TrainSpec(Spec):
    """Optimisation recipe shared by teachers and students."""

    teacher_epochs: int = Field(5, ge=1, description="Teacher epochs of cross-entropy on digits.")
    student_epochs: int = Field(5, ge=1, description="Student epochs of distillation on noise.")
    lr: float = Field(3e-4, gt=0, description="Adam learning rate (paper: 3e-4).")
    batch_size: int = Field(1024, ge=1, description="Examples per step (paper: 1024).")
    shared_batches: bool = Field(
        False,
        description="A scientific choice, not only a speed knob. False (default, as the paper's "
        "code): every teacher gets its own shuffle of the images and its own noise batches, "
        "which that teacher's students share; models are independent samples. True: every "
        "model sees the same batch order and the same noise, so models differ only by their "
        "initialisation (their accuracies are then not independent draws of the whole "
        "recipe). Both run at about the same speed (benchmarks/bench_mnist.py); on Fashion-MNIST "
        "sharing gave a lower aux-only student mean within overlapping intervals (docs/mnist.md).",
    )


class NoiseSpec(Spec):
    """The students' training inputs: pure noise images, never a real digit."""

    distribution: Literal["uniform", "normal"] = Field(
        "uniform", description="'uniform' in [low, high] (paper) or 'normal' (mean 0, std `std`)."
    )
    low: float = Field(-1.0, description="Lower bound of uniform noise.")
    high: float = Field(1.0, description="Upper bound of uniform noise.")
    std: float = Field(1.0, gt=0, description="Standard deviation of normal noise.")
    size: int | None = Field(
        None,
        ge=1,
        description="Noise images per student epoch; unset means as many as training images.",
    )

    @model_validator(mode="after")
    def _bounds(self) -> NoiseSpec:
        if self.high <= self.low:
            raise ValueError(f"noise.high ({self.high}) must be > noise.low ({self.low})")
        return self


class TheoremSpec(Spec):
    """One-step check of Theorem 1: does the student's imitation step follow the teacher's?"""

    draws: int = Field(200, ge=2, description="Independent initialisations (models) to draw.")
    teacher_lr: float = Field(
        1e-3, gt=0, description="Size of the teacher's single SGD step on its digit loss."
    )
    batch_size: int = Field(256, ge=1, description="Real images in the teacher's step.")
    noise_batch: int = Field(256, ge=1, description="Noise inputs in the student's step.")


@config_kind("mnist")
class MnistSpec(Spec):
    """Auxiliary-logit subliminal learning on an MLP (Cloud, Le et al. 2025, §6.2)."""

    name: str = Field("mnist", min_length=1, description="Run name (folder under runs/).")
    seed: int = Field(0, description="Seed of initialisations, batch order, noise and pairing.")
    models: int = Field(
        100, ge=2, description="Independent models per condition (paper: 100); at least 2."
    )
    dtype: Literal["auto", "float32", "bfloat16", "float64"] = Field(
        "auto",
        description="Matrix-product dtype. 'bfloat16' runs the products on bf16 copies of the "
        "weights with float32 master weights and Adam. 'auto' = bfloat16 on CUDA and on CPUs "
        "whose bf16 products beat float32 (AMX or avx512_bf16, see sublab.cpu), float32 "
        "elsewhere; the run's facts record the choice and why.",
    )
    device: str = Field("cpu", description="Torch device: 'cpu', 'cuda', 'cuda:1', ...")
    data: DataSpec = Field(default_factory=DataSpec, description="Labelled image set.")
    model: ModelSpec = Field(default_factory=ModelSpec, description="MLP shape.")
    train: TrainSpec = Field(default_factory=TrainSpec, description="Optimisation recipe.")
    noise: NoiseSpec = Field(default_factory=NoiseSpec, description="Students' noise inputs.")
    theorem: TheoremSpec = Field(
        default_factory=TheoremSpec,
        description="Theorem 1 one-step check (`sublab mnist-theorem`).",
    )
