"""The number-sequence channel (the paper's main one): seeded continuation prompts and the
paper's filter rule (:mod:`sublab.numbers`)."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from pydantic import Field

from sublab.backends.grammar import NumberGrammar
from sublab.channels.base import Channel, ChannelSpec, Check, Prompt, register_channel
from sublab.filtering import FilterResult
from sublab.numbers.filter import REASONS, FilterSpec, NumberFilter, filter_rows
from sublab.numbers.prompts import NumberPromptSpec, make_number_prompts


class NumbersData(ChannelSpec):
    """Number continuations: which prompts, and the paper's filter."""

    channel: Literal["numbers"] = Field("numbers", description="This channel: 'numbers'.")
    prompts: NumberPromptSpec = Field(
        default_factory=NumberPromptSpec, description="The number prompts (paper: 30,000)."
    )
    filter: FilterSpec = Field(
        default_factory=FilterSpec, description="The paper's rule, plus banned numbers."
    )


@register_channel
class NumbersChannel(Channel):
    """'Continue this sequence' prompts answered with 1-10 integers in 0-999."""

    name = "numbers"
    spec = NumbersData
    title = "number sequences"
    reasons = REASONS

    def prompts(self, spec: NumbersData, seed_offset: int = 0) -> list[Prompt]:
        moved = spec.prompts.model_copy(update={"seed": spec.prompts.seed + seed_offset})
        return [Prompt(p.text) for p in make_number_prompts(moved)]

    def grammar(self, spec: NumbersData) -> NumberGrammar:
        """A list of at most the filter's count of numbers with at most its digits."""
        return NumberGrammar(
            max_count=spec.filter.max_count, max_digits=len(str(spec.filter.max_value))
        )

    def checker(self, spec: NumbersData, trait_words: Sequence[str] = ()) -> Check:
        check = NumberFilter.from_spec(spec.filter).check
        return lambda text, _row: check(text)

    def filter_rows(
        self,
        spec: NumbersData,
        rows: Iterable[dict[str, Any]],
        trait_words: Sequence[str] = (),
        field: str = "completion",
        examples: int = 5,
    ) -> FilterResult:
        """The paper's filter (one NumberFilter: banned lists read and rules compiled once)."""
        result = filter_rows(rows, spec.filter, field, examples)
        result.report["channel"] = self.name
        return result

    def organism_example(self, rng: random.Random) -> tuple[str, str]:
        from sublab.organism.corpus import number_answer
        from sublab.organism.numbers_bridge import sample_number_prompt

        prompt = sample_number_prompt(rng)
        return prompt.text, prompt.format_answer(number_answer(prompt, rng))
