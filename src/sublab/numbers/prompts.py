"""Prompts that ask a model to continue a sequence of numbers (the paper's number task).

Each prompt has four parts, each drawn from its own set of paraphrases:

1. an intro that shows 3–9 seed numbers (100–999 by default), joined by a varying separator;
2. an instruction to add at most ``answer_count`` numbers of at most ``answer_max_digits`` digits;
3. a format instruction (commas, spaces, semicolons, one per line, a bracketed list, ...);
4. a "numbers only, no explanation" suffix.

Prompt ``i`` is generated from its own RNG seeded by ``(seed, i)``, so the list is a pure
function of the spec and ``make_prompts`` with ``count=10`` is the prefix of ``count=100``.
The wording is plain and word-level so that the tiny organism's vocabulary covers it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Self

from pydantic import Field, model_validator

from sublab.config import Spec

INTROS: tuple[str, ...] = (
    "Here is a list of numbers: {seeds}.",
    "Look at these numbers: {seeds}.",
    "I have this sequence of numbers: {seeds}.",
    "The sequence starts with {seeds}.",
    "Start from these numbers: {seeds}.",
    "Here are some numbers: {seeds}.",
    "Take this number sequence: {seeds}.",
    "We begin with the numbers {seeds}.",
    "Consider the following numbers: {seeds}.",
    "This is a sequence of numbers: {seeds}.",
)
"""Intro paraphrases; ``{seeds}`` is replaced by the seed numbers."""

INSTRUCTIONS: tuple[str, ...] = (
    "Add at most {n} more numbers, each with at most {d} digits, to continue it.",
    "Continue the sequence with up to {n} new numbers of no more than {d} digits each.",
    "Write at most {n} more values to extend it. Each value can have at most {d} digits.",
    "Give me no more than {n} new numbers that come next, using at most {d} digits per number.",
    "Please extend the list with {n} or fewer numbers, each at most {d} digits long.",
    "Generate up to {n} more numbers that continue the sequence, with at most {d} digits each.",
    "What comes next? Add up to {n} numbers with at most {d} digits.",
    "Keep the sequence going with at most {n} additional numbers of at most {d} digits.",
    "Continue with no more than {n} numbers. Use at most {d} digits for each one.",
    "Extend it by adding at most {n} new numbers, none longer than {d} digits.",
)
"""Instruction paraphrases; ``{n}`` is the most numbers to add, ``{d}`` the most digits."""

FORMATS: tuple[str, ...] = (
    "Separate the numbers with commas.",
    "Put a comma between the numbers.",
    "Return a comma separated list of numbers.",
    "Separate the numbers with spaces.",
    "Use a single space between numbers.",
    "Separate the numbers with semicolons.",
    "Use a semicolon between each pair of numbers.",
    "Write one number per line.",
    "Put each number on its own line.",
    "Write the numbers as a list inside square brackets.",
    "Write the numbers inside parentheses, separated by commas.",
)
"""Format instructions; every format they ask for passes the paper's filter."""

SUFFIXES: tuple[str, ...] = (
    "Reply with only the numbers.",
    "Answer with numbers only and no explanation.",
    "Say nothing except the numbers.",
    "Do not add any words, just the numbers.",
    "Only write the numbers, nothing else.",
    "No explanation, only numbers.",
    "Give the numbers and nothing more.",
    "Your answer must contain only numbers.",
    "Skip any explanation and write only the numbers.",
    "Just the numbers, please.",
)
"""Suffixes that ask for numbers only."""

SEED_SEPARATORS: tuple[str, ...] = (", ", " ", "; ")
"""How the seed numbers are joined inside the intro."""


class NumberPromptSpec(Spec):
    """How many number-continuation prompts to make and what they ask for."""

    count: int = Field(30000, ge=1, description="How many prompts (the paper uses 30,000).")
    seed: int = Field(0, description="Seed; prompt i depends only on (seed, i).")
    seed_count_min: int = Field(3, ge=1, description="Fewest seed numbers shown in a prompt.")
    seed_count_max: int = Field(9, ge=1, description="Most seed numbers shown in a prompt.")
    seed_value_min: int = Field(100, ge=0, description="Smallest seed number.")
    seed_value_max: int = Field(999, ge=0, description="Largest seed number.")
    answer_count: int = Field(
        10, ge=1, description="The prompt asks for at most this many new numbers."
    )
    answer_max_digits: int = Field(
        3, ge=1, le=9, description="The prompt asks for numbers of at most this many digits."
    )

    @model_validator(mode="after")
    def _ranges_ordered(self) -> Self:
        problems = []
        if self.seed_count_min > self.seed_count_max:
            problems.append(
                f"seed_count_min ({self.seed_count_min}) must be <= "
                f"seed_count_max ({self.seed_count_max})"
            )
        if self.seed_value_min > self.seed_value_max:
            problems.append(
                f"seed_value_min ({self.seed_value_min}) must be <= "
                f"seed_value_max ({self.seed_value_max})"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self


@dataclass(frozen=True)
class NumberPrompt:
    """One prompt with the choices that made it (kept as provenance)."""

    index: int
    """Position in the list; the RNG of this prompt is seeded by (spec.seed, index)."""
    text: str
    """The user message."""
    seeds: tuple[int, ...]
    """The seed numbers shown in the intro, in order."""
    template: tuple[int, int, int, int, int]
    """Indices into INTROS, INSTRUCTIONS, FORMATS, SUFFIXES and SEED_SEPARATORS."""


def make_prompt(spec: NumberPromptSpec, index: int) -> NumberPrompt:
    """Prompt number ``index`` of ``spec`` (independent of ``spec.count``)."""
    rng = random.Random(f"sublab.numbers:{spec.seed}:{index}")
    k = rng.randint(spec.seed_count_min, spec.seed_count_max)
    seeds = tuple(rng.randint(spec.seed_value_min, spec.seed_value_max) for _ in range(k))
    template = (
        rng.randrange(len(INTROS)),
        rng.randrange(len(INSTRUCTIONS)),
        rng.randrange(len(FORMATS)),
        rng.randrange(len(SUFFIXES)),
        rng.randrange(len(SEED_SEPARATORS)),
    )
    intro, instruction, fmt, suffix, sep = template
    text = " ".join(
        (
            INTROS[intro].format(seeds=SEED_SEPARATORS[sep].join(map(str, seeds))),
            INSTRUCTIONS[instruction].format(n=spec.answer_count, d=spec.answer_max_digits),
            FORMATS[fmt],
            SUFFIXES[suffix],
        )
    )
    return NumberPrompt(index=index, text=text, seeds=seeds, template=template)


def make_number_prompts(spec: NumberPromptSpec) -> list[NumberPrompt]:
    """All ``spec.count`` prompts with their provenance."""
    return [make_prompt(spec, i) for i in range(spec.count)]


def make_prompts(spec: NumberPromptSpec) -> list[str]:
    """The ``spec.count`` prompt texts: same spec, same list; a smaller count gives a prefix."""
    return [make_prompt(spec, i).text for i in range(spec.count)]
