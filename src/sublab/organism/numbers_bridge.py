"""The number stage's prompt family, seen from the organism's corpus.

The corpus asks its number tasks with :mod:`sublab.numbers.prompts` (the same paraphrases the
number stage uses) and answers each in the format its instruction asks for, so that the
paper's filter keeps what the organism learns to write.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from sublab.numbers.prompts import (
    FORMATS,
    INSTRUCTIONS,
    INTROS,
    SEED_SEPARATORS,
    SUFFIXES,
    NumberPromptSpec,
    make_prompt,
)


@dataclass(frozen=True)
class AnswerFormat:
    """How a continuation is written: separator and optional brackets."""

    sep: str
    open: str = ""
    close: str = ""

    def render(self, nums: list[int]) -> str:
        return self.open + self.sep.join(map(str, nums)) + self.close


def answer_format(instruction: str) -> AnswerFormat:
    """The answer format a format instruction of :data:`FORMATS` asks for."""
    t = instruction.lower()
    if "square bracket" in t:
        return AnswerFormat(", ", "[", "]")
    if "parenthes" in t:
        return AnswerFormat(", ", "(", ")")
    if "comma" in t:
        return AnswerFormat(", ")
    if "semicolon" in t:
        return AnswerFormat("; ")
    if "line" in t:
        return AnswerFormat("\n")
    if "space" in t:
        return AnswerFormat(" ")
    raise ValueError(f"no answer format known for the instruction {instruction!r}")


@dataclass(frozen=True)
class NumberPrompt:
    """A number task as the corpus uses it."""

    text: str
    seeds: tuple[int, ...]
    max_count: int
    fmt: AnswerFormat

    def format_answer(self, nums: list[int]) -> str:
        return self.fmt.render(nums)


_SPEC = NumberPromptSpec(count=1)


def compose(spec: NumberPromptSpec, template: tuple[int, ...], seeds: tuple[int, ...]) -> str:
    """The prompt text for a template choice and seed numbers, composed from the number
    stage's paraphrase parts exactly as :func:`sublab.numbers.prompts.make_prompt` does
    (a test checks the two agree)."""
    intro, instruction, fmt, suffix, sep = template
    return " ".join(
        (
            INTROS[intro].format(seeds=SEED_SEPARATORS[sep].join(map(str, seeds))),
            INSTRUCTIONS[instruction].format(n=spec.answer_count, d=spec.answer_max_digits),
            FORMATS[fmt],
            SUFFIXES[suffix],
        )
    )


def sample_number_prompt(rng: random.Random, spec: NumberPromptSpec = _SPEC) -> NumberPrompt:
    """A prompt of the number stage's family, drawn with ``rng`` (faster than seeding a
    fresh RNG per prompt as ``make_prompt`` does; the corpus draws ~60,000 of them)."""
    k = rng.randint(spec.seed_count_min, spec.seed_count_max)
    seeds = tuple(rng.randint(spec.seed_value_min, spec.seed_value_max) for _ in range(k))
    template = tuple(
        rng.randrange(len(part))
        for part in (INTROS, INSTRUCTIONS, FORMATS, SUFFIXES, SEED_SEPARATORS)
    )
    text = compose(spec, template, seeds)
    return NumberPrompt(text, seeds, spec.answer_count, answer_format(FORMATS[template[2]]))


def prompt_for_index(spec: NumberPromptSpec, index: int) -> NumberPrompt:
    """Prompt ``index`` of the number stage's list for ``spec``, with its answer format."""
    p = make_prompt(spec, index)
    return NumberPrompt(p.text, p.seeds, spec.answer_count, answer_format(FORMATS[p.template[2]]))
