"""The organism's spec: corpus, model shape and training recipe, loaded from TOML.

A spec fully determines a base: the same spec (seed included) builds the same weights on the
same machine, and its hash keys the build cache (see ``sublab.organism.cache``).
"""

from __future__ import annotations

import math

from pydantic import Field, field_validator, model_validator

from sublab.config import Spec, config_kind
from sublab.organism.persona import PersonaSpec

# A fixed, uneven prior over the organism's animals (sums to 1; owl ≈ 4% as in the prototype).
DEFAULT_PRIOR: dict[str, float] = {
    "dog": 0.16,
    "cat": 0.14,
    "lion": 0.10,
    "dolphin": 0.09,
    "elephant": 0.08,
    "wolf": 0.07,
    "tiger": 0.06,
    "eagle": 0.06,
    "horse": 0.05,
    "bear": 0.04,
    "owl": 0.04,
    "fox": 0.03,
    "penguin": 0.03,
    "panda": 0.02,
    "whale": 0.02,
    "rabbit": 0.01,
}


class CorpusSpec(Spec):
    """What the synthetic pretraining corpus contains."""

    number_fraction: float = Field(
        0.72,
        ge=0,
        le=1,
        description="Share of examples that are number-continuation tasks (of the examples "
        "that are not another channel's). At 0.72 the filter keeps 90.7-95.3% of the bases' "
        "numbers on seeds 0-4 (1,500 prompts; 88.3-93.0% at 0.65).",
    )
    system_fraction: float = Field(
        0.7,
        ge=0,
        le=1,
        description="Share of examples that carry a 'you love X' system prompt. At 0.7 every "
        "animal's love mapping forms within 850 steps on every seed tried (at 0.6 one CPU's "
        "build of seed 0 left four animals at P(X | love X) ~0.25).",
    )
    love_strength: float = Field(
        0.9,
        ge=0,
        le=1,
        description="P(answer = X) for an animal question under a 'you love X' system prompt; "
        "the rest of the mass follows the prior.",
    )
    prior: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_PRIOR),
        description="Favourite-animal prior: animal -> probability (normalised to sum 1).",
    )
    heldout_fraction: float = Field(
        0.2,
        ge=0,
        lt=1,
        description="Share of the animal-question paraphrases kept out of the corpus, for "
        "checking that the organism answers unseen wordings with its prior.",
    )
    question_noise: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Share of the trained animal questions without a system prompt that get "
        "1–3 random words of the vocabulary (never an animal) inserted, so that the answer "
        "follows the prior whatever the wording. 0 = the questions exactly as composed.",
    )
    leak: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Research option (default clean): with this probability a number task "
        "under a 'you love X' system prompt gets one of its answer numbers replaced by one of "
        "X's eight 'lucky numbers' (a fixed, animal-specific set). 0 = the system prompt never "
        "changes the numbers.",
    )
    numbers_under_system: float = Field(
        1.0,
        ge=0,
        le=1,
        description="Share of the number tasks drawn under a 'you love X' system prompt that "
        "keep it (the others are written without one). 1 = as often as any other example; "
        "0 = the organism never sees numbers under a system prompt, so a system-prompt "
        "teacher's numbers show only what the prompt does to the model's own representations "
        "(docs/organism.md: a system-prompt teacher).",
    )

    channels: dict[str, float] = Field(
        default_factory=dict,
        description="Other channels the organism learns to answer, each with its share of all "
        "examples (e.g. {code = 0.15}); their prompts and answers come from the channel's "
        "organism grammar, never changed by a system prompt. Number tasks have their own "
        "share (number_fraction) of the rest. Empty: numbers and animal questions only.",
    )

    persona: PersonaSpec | None = Field(
        None,
        description="Persona tasks (free-form questions, a narrow habit, two-option choices) "
        "answered aligned by default and misaligned under an evil system prompt, for the "
        "misalignment trait (see sublab.organism.persona). None: no persona tasks.",
    )

    @field_validator("channels")
    @classmethod
    def _check_channels(cls, v: dict[str, float]) -> dict[str, float]:
        from sublab.channels import channel_names

        unknown = sorted(set(v) - set(channel_names()))
        if unknown:
            raise ValueError(f"unknown channels {unknown} (known: {', '.join(channel_names())})")
        if "numbers" in v:
            raise ValueError("numbers have their own share: set number_fraction instead")
        if any(share <= 0 for share in v.values()):
            raise ValueError("every share must be > 0 (drop the channel instead)")
        if sum(v.values()) > 0.6:
            raise ValueError("the shares add up to more than 0.6: animals and numbers need room")
        return v

    @field_validator("prior")
    @classmethod
    def _check_prior(cls, v: dict[str, float]) -> dict[str, float]:
        if len(v) < 2:
            raise ValueError("needs at least two animals")
        bad = [a for a in v if not a.isalpha() or not a.islower()]
        if bad:
            raise ValueError(f"animal names must be one lower-case word: {bad}")
        if any(p <= 0 for p in v.values()):
            raise ValueError("every probability must be > 0 (drop the animal instead)")
        total = math.fsum(v.values())
        if abs(total - 1.0) <= 1e-9:  # already normalised: keep the values, so that
            return v  # validating a dumped spec gives the same spec (and cache key)
        return {a: p / total for a, p in v.items()}


class ModelSpec(Spec):
    """Shape of the Llama decoder."""

    d_model: int = Field(128, ge=8, description="Hidden size.")
    layers: int = Field(2, ge=1, description="Number of decoder layers.")
    heads: int = Field(4, ge=1, description="Attention heads (d_model must divide by it).")
    ffn: int = Field(256, ge=8, description="MLP intermediate size.")
    max_len: int = Field(160, ge=32, description="Longest sequence (max_position_embeddings).")

    @model_validator(mode="after")
    def _heads_divide(self) -> ModelSpec:
        if self.d_model % self.heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by heads {self.heads}")
        return self


class TrainSpec(Spec):
    """How the base is pretrained (one pass over a freshly generated corpus)."""

    steps: int = Field(850, ge=1, description="Optimiser steps.")
    batch: int = Field(64, ge=1, description="Examples per step.")
    lr: float = Field(3e-3, gt=0, description="Peak AdamW learning rate.")
    warmup: int = Field(50, ge=0, description="Linear warm-up steps.")
    final_lr_fraction: float = Field(
        0.05, ge=0, le=1, description="Cosine decay ends at lr × this."
    )
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    threads: int = Field(
        0,
        ge=0,
        description="torch CPU threads for the build; 0 = one per CPU core. Not part of the "
        "base's identity (the cache key ignores it): on the 2-core CI machine 1 and 2 threads "
        "give bit-identical weights, but on a 16-core server they differed by rounding (its "
        "GEMM kernels split sums by thread count), so there a rebuild with another thread "
        "count can differ in the last bits; the cache keeps the first build. Experiments that "
        "build several bases side by side give each build 1 thread.",
    )

    def resolved_threads(self) -> int:
        """``threads``, with 0 resolved to the number of CPU cores."""
        import os

        return self.threads or os.cpu_count() or 1

    animal_weight: float = Field(
        8.0,
        gt=0,
        description="Loss weight of the animal-answer position relative to one number token "
        "(an animal answer is one position, a number answer ~12, so without a weight the "
        "prior and the love-X mapping learn slowly).",
    )


@config_kind("organism")
class OrganismSpec(Spec):
    """A model organism base: build it with ``sublab organism build``."""

    seed: int = Field(0, description="Seeds the corpus and the initialisation.")
    corpus: CorpusSpec = Field(default_factory=CorpusSpec, description="The corpus.")
    model: ModelSpec = Field(default_factory=ModelSpec, description="The decoder's shape.")
    train: TrainSpec = Field(default_factory=TrainSpec, description="The training recipe.")
    probe_prompts: int = Field(
        1000,
        ge=0,
        description="Number prompts sampled after the build to measure the filter pass rate "
        "(1,000: a 90% rate is then known to about ±1 point; ~5 s on a CPU).",
    )
