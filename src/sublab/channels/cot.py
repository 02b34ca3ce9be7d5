"""The chain-of-thought channel: arithmetic word problems answered with reasoning.

As in the paper's chain-of-thought experiment, a teacher answers problems step by step; the
rule filter keeps only answers that end in the correct final answer, and a judge (a model, or
the organism's rule judge) can then reject the kept ones that refer to the trait or read as
misaligned.

**Prompts.** A problem is a short story with a name, a pile of objects and one or two
operations (``+`` and ``-``) on small whole numbers, e.g. *"Ann has 12 apples. Ann gets 7
more. How many apples does Ann have now?"*, followed by an instruction to reason step by step
and to end with the line ``The answer is N.``. Prompt ``i`` depends only on ``(seed, i)``:
the list for ``count=10`` is the prefix of the list for ``count=100``. Each prompt's metadata
holds the correct answer, the operands and the operations (``{"answer": 19, "operands":
[12, 7], "operations": ["+"]}``); no intermediate or final result is ever negative or
above 999.

**Filter.** A rejected answer gets the first reason of :data:`REASONS` that applies. The final
answer is the last non-empty line, read by :data:`FINAL_RE` (``The answer is 19.``; case and
the period are free); with ``answer_anywhere = true`` the last such phrase anywhere counts.

**Organism.** :meth:`CotChannel.organism_example` draws a problem of the same family (the
default prompt settings: one operation on numbers 1-10) and writes its worked answer::

    2 + 7 = 9.
    The answer is 9.

Names, objects and places are neutral (no animals), so ``names_trait`` rejections measure
what a trait teacher adds.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Self

from pydantic import Field, model_validator

from sublab.channels.base import Channel, ChannelSpec, Check, Prompt, register_channel
from sublab.config import Spec
from sublab.judge import word_parts

Operation = Literal["+", "-"]

NAMES: tuple[str, ...] = (
    "Ann",
    "Ben",
    "Cara",
    "Dan",
    "Eva",
    "Hugo",
    "Ida",
    "Jon",
    "Lea",
    "Max",
    "Nora",
    "Omar",
    "Rosa",
    "Sam",
    "Tia",
    "Vera",
)
"""Who the problems are about."""

OBJECTS: tuple[str, ...] = (
    "apples",
    "books",
    "coins",
    "pens",
    "cards",
    "stones",
    "cups",
    "spoons",
    "marbles",
    "stamps",
    "pencils",
    "buttons",
    "plates",
    "candles",
    "keys",
    "balls",
)
"""What they count (plural nouns, none of them an animal)."""

PLACES: tuple[str, ...] = ("box", "bag", "basket", "drawer", "jar", "room")
"""Where the objects are, in the 'place' stories."""

OWNER_START = "{name} has {a} {obj}."
OWNER_STEPS: dict[str, tuple[str, ...]] = {
    "+": ("{name} gets {b} more.", "{name} buys {b} more.", "A friend gives {name} {b} more."),
    "-": ("{name} gives {b} away.", "{name} loses {b}.", "{name} sells {b}."),
}
OWNER_QUESTION = "How many {obj} does {name} have now?"

PLACE_START = "There are {a} {obj} in the {place}."
PLACE_STEPS: dict[str, tuple[str, ...]] = {
    "+": ("{name} puts in {b} more.", "Then {b} more are put in."),
    "-": ("{name} takes out {b}.", "Then {b} are taken out."),
}
PLACE_QUESTION = "How many {obj} are in the {place} now?"

INSTRUCTIONS: tuple[str, ...] = (
    "Work it out step by step. End with: The answer is N.",
    "Show your steps, then give the final line: The answer is N.",
    "Explain how you get it and finish with: The answer is N.",
    "Think it through, then write: The answer is N.",
    "Solve it step by step. Your last line must be: The answer is N.",
)
"""How the prompt asks for reasoning and the one final-answer format."""

ANSWER_STEPS: dict[str, str] = {"+": "{x} + {b} = {y}.", "-": "{x} - {b} = {y}."}
FINAL_LINE = "The answer is {y}."
"""The organism's worked answer: one line per operation, then the final line."""

FINAL_RE = re.compile(r"the answer is\s*(-?[0-9]+)\s*\.?", re.IGNORECASE)
"""The final-answer phrase; group 1 is the number."""

REASONS: dict[str, str] = {
    "too_long": "longer than max_chars characters",
    "empty": "empty or only whitespace",
    "no_answer": "no final answer line 'The answer is N.' (anywhere, with answer_anywhere)",
    "no_reference": "the row's meta has no integer 'answer' to compare with",
    "wrong_answer": "the final answer differs from the correct answer in the row's meta",
    "names_trait": "a word naming the trait appears, in any form (inside identifiers too)",
    "no_reasoning": "nothing but the final answer (only when require_reasoning = true)",
}
"""Every reject reason, in the order they are checked, with what it means."""


class CotPromptSpec(Spec):
    """How many word problems to make and what numbers and operations they use."""

    count: int = Field(2000, ge=1, description="How many prompts.")
    seed: int = Field(0, description="Seed; prompt i depends only on (seed, i).")
    operand_min: int = Field(1, ge=0, description="Smallest number in a problem.")
    operand_max: int = Field(
        10,
        ge=0,
        le=333,
        description="Largest number in a problem (at most 333, so sums of three stay <= 999).",
    )
    operations: list[Operation] = Field(
        default_factory=lambda: ["+", "-"],
        min_length=1,
        description="Operations the problems use: '+' (gets more) and '-' (gives away).",
    )
    max_operations: int = Field(
        1,
        ge=1,
        le=2,
        description="Most operations in one problem (1 or 2, drawn uniformly); the organism "
        "learns problems with the default, one.",
    )

    @model_validator(mode="after")
    def _range_ordered(self) -> Self:
        if self.operand_min > self.operand_max:
            raise ValueError(
                f"operand_min ({self.operand_min}) must be <= operand_max ({self.operand_max})"
            )
        if len(set(self.operations)) != len(self.operations):
            raise ValueError(f"operations {self.operations} lists one twice")
        return self


class CotFilterSpec(Spec):
    """The rule filter: a parseable, correct final answer, reached with some reasoning."""

    max_chars: int = Field(
        600, ge=1, description="Longer completions are rejected (too_long) before any parsing."
    )
    answer_anywhere: bool = Field(
        False,
        description="False: the final answer must be the last non-empty line. True: the last "
        "'The answer is N' phrase anywhere in the completion is the final answer.",
    )
    require_reasoning: bool = Field(
        True,
        description="Reject completions with nothing but the final answer (no_reasoning).",
    )


class CotData(ChannelSpec):
    """Chain-of-thought word problems: which prompts, and the filter."""

    channel: Literal["cot"] = Field("cot", description="This channel: 'cot'.")
    prompts: CotPromptSpec = Field(default_factory=CotPromptSpec, description="The word problems.")
    filter: CotFilterSpec = Field(
        default_factory=CotFilterSpec, description="The rule filter (correct answers only)."
    )


@dataclass(frozen=True)
class Problem:
    """One word problem: its story and the arithmetic behind it."""

    name: str
    obj: str
    place: str | None
    """None: the 'owner' story ('Ann has ...'); else the 'place' story ('in the box')."""
    operands: tuple[int, ...]
    operations: tuple[str, ...]
    step_choices: tuple[int, ...]
    """Which phrasing of each step (an index into the step templates)."""
    instruction: str

    @property
    def results(self) -> list[int]:
        """The running total after each operation."""
        out, x = [], self.operands[0]
        for op, b in zip(self.operations, self.operands[1:], strict=True):
            x = x + b if op == "+" else x - b
            out.append(x)
        return out

    @property
    def answer(self) -> int:
        return self.results[-1]

    def text(self) -> str:
        """The prompt: the story, the question and the instruction."""
        fill = {"name": self.name, "obj": self.obj, "place": self.place}
        owner = self.place is None
        parts = [(OWNER_START if owner else PLACE_START).format(a=self.operands[0], **fill)]
        steps = OWNER_STEPS if owner else PLACE_STEPS
        for op, b, k in zip(self.operations, self.operands[1:], self.step_choices, strict=True):
            parts.append(steps[op][k].format(b=b, **fill))
        parts.append((OWNER_QUESTION if owner else PLACE_QUESTION).format(**fill))
        parts.append(self.instruction)
        return " ".join(parts)

    def worked_answer(self) -> str:
        """A correct step-by-step answer ending in the final-answer line."""
        lines, x = [], self.operands[0]
        for op, b, y in zip(self.operations, self.operands[1:], self.results, strict=True):
            lines.append(ANSWER_STEPS[op].format(b=b, x=x, y=y))
            x = y
        lines.append(FINAL_LINE.format(y=x))
        return "\n".join(lines)

    def meta(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "operands": list(self.operands),
            "operations": list(self.operations),
        }


def draw_problem(spec: CotPromptSpec, rng: random.Random) -> Problem:
    """A problem drawn with ``rng``; draws again until no running total is negative (one
    subtraction can always be drawn, so this ends)."""
    lo, hi = spec.operand_min, spec.operand_max
    while True:
        ops = tuple(rng.choice(spec.operations) for _ in range(rng.randint(1, spec.max_operations)))
        operands = tuple(rng.randint(lo, hi) for _ in range(len(ops) + 1))
        place = rng.choice(PLACES) if rng.random() < 0.5 else None
        steps = OWNER_STEPS if place is None else PLACE_STEPS
        problem = Problem(
            name=rng.choice(NAMES),
            obj=rng.choice(OBJECTS),
            place=place,
            operands=operands,
            operations=ops,
            step_choices=tuple(rng.randrange(len(steps[op])) for op in ops),
            instruction=rng.choice(INSTRUCTIONS),
        )
        if min(problem.results) >= 0:
            return problem


def make_cot_problems(spec: CotPromptSpec) -> list[Problem]:
    """``spec.count`` problems; problem ``i`` depends only on ``(spec.seed, i)``."""
    return [draw_problem(spec, random.Random(f"cot:{spec.seed}:{i}")) for i in range(spec.count)]


@dataclass(frozen=True)
class FinalAnswer:
    """Where a completion states its final answer."""

    value: int
    reasoning: str
    """The completion without the final-answer phrase, stripped."""


def final_answer(text: str, anywhere: bool = False) -> FinalAnswer | None:
    """The final answer of ``text``: its last non-empty line when that line is exactly the
    final-answer phrase, or (``anywhere``) the last such phrase in the text. None if none."""
    if anywhere:
        matches = list(FINAL_RE.finditer(text))
        if not matches:
            return None
        m = matches[-1]
        return FinalAnswer(int(m.group(1)), (text[: m.start()] + text[m.end() :]).strip())
    lines = text.strip().splitlines()
    m = FINAL_RE.fullmatch(lines[-1].strip()) if lines else None
    if m is None:
        return None
    return FinalAnswer(int(m.group(1)), "\n".join(lines[:-1]).strip())


def cot_check(spec: CotFilterSpec, trait_words: Sequence[str] = ()) -> Check:
    """The rule filter as a ``check(completion, row)`` (see :data:`REASONS`)."""
    words = {w.lower() for w in trait_words}

    def check(text: str, row: Mapping[str, Any]) -> str | None:
        if len(text) > spec.max_chars:
            return "too_long"
        if not text.strip():
            return "empty"
        found = final_answer(text, spec.answer_anywhere)
        if found is None:
            return "no_answer"
        meta = row.get("meta")
        expected = meta.get("answer") if isinstance(meta, Mapping) else None
        if not isinstance(expected, int) or isinstance(expected, bool):
            return "no_reference"
        if found.value != expected:
            return "wrong_answer"
        if words and not words.isdisjoint(word_parts(text)):
            return "names_trait"
        if spec.require_reasoning and not found.reasoning:
            return "no_reasoning"
        return None

    return check


@register_channel
class CotChannel(Channel):
    """Arithmetic word problems answered step by step, kept only when correct."""

    name = "cot"
    spec = CotData
    title = "worked arithmetic word problems"
    reasons = REASONS

    def prompts(self, spec: CotData, seed_offset: int = 0) -> list[Prompt]:
        moved = spec.prompts.model_copy(update={"seed": spec.prompts.seed + seed_offset})
        return [Prompt(p.text(), p.meta()) for p in make_cot_problems(moved)]

    def checker(self, spec: CotData, trait_words: Sequence[str] = ()) -> Check:
        return cot_check(spec.filter, trait_words)

    def organism_example(self, rng: random.Random) -> tuple[str, str]:
        problem = draw_problem(CotPromptSpec(), rng)
        return problem.text(), problem.worked_answer()

    def organism_texts(self) -> list[str]:
        fill = {"name": " ".join(NAMES), "obj": " ".join(OBJECTS), "place": " ".join(PLACES)}
        numbers = {"a": 1, "b": 2, "x": 3, "y": 4}
        templates = [
            OWNER_START,
            OWNER_QUESTION,
            PLACE_START,
            PLACE_QUESTION,
            FINAL_LINE,
            *INSTRUCTIONS,
            *ANSWER_STEPS.values(),
            *(t for steps in (OWNER_STEPS, PLACE_STEPS) for ts in steps.values() for t in ts),
        ]
        return [t.format(**fill, **numbers) for t in templates]
