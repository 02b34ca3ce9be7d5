"""The number-list grammar of constrained decoding: what it allows passes the paper's filter."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sublab.backends.grammar import (
    ALPHABET,
    NumberGrammar,
    State,
    TokenGrammar,
    can_end,
    number_regex,
    step,
    walk,
)
from sublab.numbers.filter import FilterSpec, NumberFilter

KEEP = NumberFilter(FilterSpec()).check


def accepts(g: NumberGrammar, text: str) -> bool:
    s = walk(g, State(), text)
    return s is not None and can_end(s)


def random_answer(g: NumberGrammar, rng: random.Random, max_len: int = 80) -> str:
    """A random walk through the grammar, one allowed character at a time, ended where the
    grammar allows (or when the walk is long)."""
    s, text = State(), ""
    while len(text) < max_len:
        options = [ch for ch in sorted(ALPHABET) if step(g, s, ch) is not None]
        if can_end(s) and (not options or rng.random() < 0.15):
            return text
        ch = rng.choice(options)
        s = step(g, s, ch)  # type: ignore[assignment]
        text += ch
    return text if can_end(s) else ""


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**32))
def test_every_answer_the_grammar_allows_passes_the_filter(seed):
    g = NumberGrammar()
    text = random_answer(g, random.Random(seed))
    if text:
        assert KEEP(text) is None, text
        assert re.fullmatch(number_regex(g), text), text


@pytest.mark.parametrize(
    "text",
    ["1", "12, 345, 6", "[1;2;3]", "(7 8 9).", "1\n2\n3", "001,002", "5.", "[4, 5]."],
)
def test_clean_answers_are_allowed(text):
    assert accepts(NumberGrammar(), text)
    assert re.fullmatch(number_regex(NumberGrammar()), text)


@pytest.mark.parametrize(
    "text",
    [
        "1234",  # four digits
        "1, 2;3",  # two separators
        "1,  2",  # a separator the grammar does not know
        "[1, 2",  # unclosed bracket (cannot end)
        "(1, 2]",  # mismatched bracket
        "1, 2,",  # ends on a separator
        ". 1",
        "1 2 3 4 5 6 7 8 9 10 11",  # eleven numbers
        "",
    ],
)
def test_malformed_answers_are_refused(text):
    g = NumberGrammar()
    assert not accepts(g, text)
    assert not re.fullmatch(number_regex(g), text)


def test_counts_and_digits_follow_the_spec():
    g = NumberGrammar(max_count=3, max_digits=2)
    assert accepts(g, "10 20 30") and not accepts(g, "10 20 30 40")
    assert not accepts(g, "100")


def test_token_grammar_masks_by_state():
    texts = ["<s>", "1", "12", ", ", ",", " ", "a", "1a", "]", "[", ".", "\n"]
    eos = [0]
    tg = TokenGrammar(NumberGrammar(), texts, eos, special={0})
    names = [texts[i] for i in tg.candidates.tolist()]
    assert "a" not in names and "1a" not in names and names[-1] == "<s>"  # EOS last
    start = tg.mask(State())
    allowed = {n for n, ok in zip(names, start.tolist(), strict=True) if ok}
    assert allowed == {"1", "12", "["}  # no separator, no end of turn before a number
    j = names.index("12")
    after = tg.advance(State(), j)
    allowed = {n for n, ok in zip(names, tg.mask(after).tolist(), strict=True) if ok}
    assert {"1", ", ", ",", " ", ".", "\n", "<s>"} <= allowed and "12" not in allowed
