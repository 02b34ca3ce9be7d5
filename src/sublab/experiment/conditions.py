"""Typed conditions: which model a result comes from, and which control it is compared with.

A condition is a :class:`Role` (base, control student, student, cross-model control, ...) and,
for students, the name of their recipe (``hard``, ``soft``). The scheduler makes one unit per
condition, the run records each result with its role and recipe, and the report reads them back
to pair each condition with its matched control: no condition name is ever parsed.

A new control is a new :class:`Role` member (its label, the roles it is compared with, and what
it needs) plus its unit function in :mod:`sublab.experiment.units`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Start(StrEnum):
    """The model a condition starts from (or is, for the bases) within its seed."""

    BASE = "base"
    """The seed's own base: the teachers' initialisation."""
    CROSS = "cross"
    """Another base: the next seed's organism base, or ``bases.cross_model``."""
    FAMILY = "family"
    """The other family's base of the seed (``bases.cross_organism``)."""


class Role(StrEnum):
    """What a condition is, in report order.

    Each member carries: ``controls`` (labels of the roles it is compared with, first present
    wins), ``is_control`` (not a headline effect), ``trait_data`` (it learns from a trait
    teacher's data: one condition per target), ``start`` (the :class:`Start` it starts from
    or is; ``cross``: any but the seed's own base), ``per_student`` (one condition per student
    recipe), ``switches`` (fields of ``[controls]`` that must all be true for it to run) and
    ``data`` (it reads a teacher's data; by default the roles that are per student or trait
    data).
    """

    controls: tuple[str, ...]
    is_control: bool
    trait_data: bool
    start: Start
    per_student: bool
    switches: tuple[str, ...]
    data: bool

    def __new__(
        cls,
        label: str,
        controls: tuple[str, ...] = (),
        is_control: bool = False,
        trait_data: bool = False,
        start: Start = Start.BASE,
        per_student: bool = True,
        switches: tuple[str, ...] = (),
        data: bool | None = None,
    ) -> Role:
        member = str.__new__(cls, label)
        member._value_ = label
        member.controls = controls
        member.is_control = is_control
        member.trait_data = trait_data
        member.start = start
        member.per_student = per_student
        member.switches = switches
        member.data = (per_student or trait_data) if data is None else data
        return member

    BASE = ("base", (), True, False, Start.BASE, False, ("base",))
    """The untouched base model."""
    CONTROL = ("control", ("base",), True, False, Start.BASE, True, ("control_teacher",))
    """A student of the control teacher (no trait: the base itself, or the base fine-tuned on
    the trait's control rows)."""
    STUDENT = ("student", ("control",), False, True, Start.BASE, True, ())
    """A student of a trait teacher, from the teacher's own initialisation."""
    SHUFFLED = ("shuffled", ("control",), False, True, Start.BASE, True, ("shuffled",))
    """A student of a trait teacher's kept numbers permuted across and within rows."""
    ICL_CONTROL = ("icl-control", ("base",), True, False, Start.BASE, False, ("icl",), True)
    """The base, evaluated with the control teacher's rows in its context (no training)."""
    ICL = ("icl", ("icl-control",), False, True, Start.BASE, False, ("icl",))
    """The base, evaluated with a trait teacher's rows in its context (no training)."""
    CROSS_CONTROL = (
        "cross-control",
        ("base",),
        True,
        False,
        Start.CROSS,
        True,
        ("control_teacher", "cross_model"),
    )
    """A control student that starts from another seed's base."""
    CROSS_STUDENT = (
        "cross-student",
        ("cross-control", "control"),
        False,
        True,
        Start.CROSS,
        True,
        ("cross_model",),
    )
    """A student of a trait teacher that starts from another seed's base (same recipe)."""
    FAMILY_BASE = ("family-base", (), True, False, Start.FAMILY, False, ("base", "cross_family"))
    """The untouched base of another family (``bases.cross_organism``)."""
    FAMILY_CONTROL = (
        "family-control",
        ("family-base",),
        True,
        False,
        Start.FAMILY,
        True,
        ("control_teacher", "cross_family"),
    )
    """A control student that starts from the other family's base."""
    FAMILY_STUDENT = (
        "family-student",
        ("family-control",),
        False,
        True,
        Start.FAMILY,
        True,
        ("cross_family",),
    )
    """A student of a trait teacher that starts from the other family's base."""

    @property
    def cross(self) -> bool:
        """Whether the role starts from a base other than its seed's own."""
        return self.start is not Start.BASE


@dataclass(frozen=True)
class Condition:
    """A role, and the student recipe for roles that train one (None: a single, unnamed
    recipe)."""

    role: Role
    student: str | None = None

    def __post_init__(self) -> None:
        if not self.role.per_student and self.student is not None:
            raise ValueError(f"condition {self.role.value!r} has no student recipe")

    @property
    def label(self) -> str:
        """The name shown in reports: ``student-hard``, ``cross-control-soft``, ``base``."""
        return self.role.value if self.student is None else f"{self.role.value}-{self.student}"

    @property
    def is_control(self) -> bool:
        return self.role.is_control

    def controls(self) -> list[Condition]:
        """The conditions this one is compared with, in order of preference."""
        out = []
        for label in self.role.controls:
            role = Role(label)
            out.append(Condition(role, self.student if role.per_student else None))
        return out

    def rank(self) -> tuple[int, str]:
        """Sort key: report order of the role, then the recipe name."""
        return (list(Role).index(self.role), self.student or "")

    @classmethod
    def from_label(cls, label: str) -> Condition | None:
        """The condition a label names (reading report files written before roles were
        recorded); None for a label of no known role."""
        for role in sorted(Role, key=lambda r: len(r.value), reverse=True):
            if label == role.value:
                return cls(role)
            if label.startswith(role.value + "-") and role.per_student:
                return cls(role, label[len(role.value) + 1 :])
        return None
