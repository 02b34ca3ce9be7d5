"""What a trait is, and the registry that finds traits by name.

A *trait* is what a teacher has and a student may pick up: a preference for an animal, broad
misalignment. A trait says how a teacher gets it (fine-tuning rows, or a system prompt), what
the data filters look for (words and a description for a judge), and how a model is measured
for it (an evaluation that yields named values per target). The experiment engine caches each
evaluation as an artifact and runs the statistics on the values.

Adding a trait is one module in ``sublab/traits/`` with a :class:`Trait` subclass decorated with
:func:`register_trait`; an experiment picks it with ``trait = "<name>"``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from sublab.backends.base import Backend
from sublab.registry import Registry

NO_TARGET = "(none)"
"""The target of values that belong to no target (e.g. the non-answer rate)."""


@dataclass(frozen=True)
class Measure:
    """One measured value of one model: a metric of one target."""

    target: str
    metric: str
    value: float


class Trait(ABC):
    """A trait (see the module docstring). ``spec`` arguments are the ExperimentSpec."""

    name: ClassVar[str]
    eval_class: ClassVar[type[Any]]
    """The spec class of the experiment's ``[eval]`` table for this trait."""

    def check(self, spec: Any) -> list[str]:
        """Problems of an experiment spec for this trait (each names its field and the fix)."""
        return []

    def rows_key(self, spec: Any, target: str, seed: int) -> Any:
        """What decides :meth:`teacher_rows` (part of the teacher's artifact key)."""
        t = spec.teacher
        return {"trait": target, "questions": t.trait_questions, "n": t.trait_rows, "seed": seed}

    def control_rows(self, spec: Any, seed: int) -> list[dict[str, str]] | None:
        """Fine-tuning rows of the control teacher (read only when :meth:`control_rows_key`
        is not None), or None: the base itself is the control teacher."""
        return None

    def control_rows_key(self, spec: Any, seed: int) -> Any:
        """What decides :meth:`control_rows` (part of the control teacher's artifact key), or
        None when the base itself is the control teacher (it writes the control data)."""
        return None

    @abstractmethod
    def teacher_rows(self, spec: Any, target: str, seed: int) -> list[dict[str, str]]:
        """Fine-tuning rows that give a teacher the trait ``target``."""

    @abstractmethod
    def system_prompt(self, spec: Any, target: str) -> str:
        """The system prompt of a prompted teacher of ``target``."""

    @abstractmethod
    def measured(self, spec: Any) -> list[str]:
        """Targets measured in every model (the teachers' targets and any specificity check)."""

    @abstractmethod
    def terms(self, spec: Any) -> tuple[str, tuple[str, ...]]:
        """(description, words) the data filters look for: the trait in words for a judge,
        and every word that names it."""

    @abstractmethod
    def eval_spec(self, spec: Any, seed: int) -> Any:
        """The evaluation's spec for one experiment seed (part of the eval artifact's key)."""

    def dose_eval_spec(self, eval_spec: Any) -> Any:
        """The evaluation of a dose checkpoint (default: the full one); a trait may measure
        checkpoints more cheaply (preference: exact probabilities only, no sampling)."""
        return eval_spec

    @abstractmethod
    def evaluate(
        self, backend: Backend, eval_spec: Any, system_prompt: str | None, work: Path
    ) -> dict[str, Any]:
        """Evaluate one model, writing its results into ``work`` (an artifact folder); return
        counts for the artifact's sidecar."""

    @abstractmethod
    def measures(self, folder: Path, spec: Any) -> list[Measure]:
        """The values to report, read from an evaluation's folder (fresh or cached)."""

    @abstractmethod
    def strength(self, measures: list[Measure], target: str) -> float | None:
        """How strongly a teacher of ``target`` shows it (from its own measures)."""


_REGISTRY: Registry[Trait] = Registry("trait", "sublab.traits")
TRAITS: dict[str, Trait] = _REGISTRY.items

T = TypeVar("T", bound=type[Trait])


def register_trait(cls: T) -> T:
    """Class decorator: register a trait under ``cls.name``."""
    return _REGISTRY.register(cls)


def trait_names() -> list[str]:
    """Names of every registered trait (this package's modules)."""
    return _REGISTRY.names()


def get_trait(name: str) -> Trait:
    """The trait registered as ``name``; a SublabError lists the known ones."""
    return _REGISTRY.get(name)
