"""Traits: what a teacher has and a student may pick up (see :mod:`sublab.traits.base`)."""

from sublab.traits.base import (
    NO_TARGET,
    TRAITS,
    Measure,
    Trait,
    get_trait,
    register_trait,
    trait_names,
)

__all__ = ["NO_TARGET", "TRAITS", "Measure", "Trait", "get_trait", "register_trait", "trait_names"]
