"""Number prompts: deterministic, prefix-stable, ranges honoured, varied wording."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sublab.config import validate
from sublab.errors import ConfigError
from sublab.numbers.prompts import (
    FORMATS,
    INSTRUCTIONS,
    INTROS,
    SEED_SEPARATORS,
    SUFFIXES,
    NumberPromptSpec,
    make_number_prompts,
    make_prompt,
    make_prompts,
)

# The seed numbers sit between the intro's colon-or-words and its first period.
_SEEDS_RE = re.compile(r"(\d+(?:(?:, |; | )\d+)*)\.")


def seeds_in(text: str) -> list[int]:
    """Parse the seed numbers back out of a prompt (the first run of numbers)."""
    m = _SEEDS_RE.search(text)
    assert m is not None, text
    return [int(x) for x in re.findall(r"\d+", m.group(1))]


def test_same_spec_same_prompts_and_other_seed_differs() -> None:
    spec = NumberPromptSpec(count=50, seed=3)
    assert make_prompts(spec) == make_prompts(NumberPromptSpec(count=50, seed=3))
    other = make_prompts(NumberPromptSpec(count=50, seed=4))
    assert sum(a != b for a, b in zip(make_prompts(spec), other, strict=True)) > 45


@given(st.integers(0, 2**32), st.integers(1, 40), st.integers(1, 40))
@settings(max_examples=25, deadline=None)
def test_smaller_count_is_a_prefix(seed: int, a: int, b: int) -> None:
    small, large = sorted((a, b))
    short = make_prompts(NumberPromptSpec(count=small, seed=seed))
    long = make_prompts(NumberPromptSpec(count=large, seed=seed))
    assert long[:small] == short


def test_default_ranges_and_text_parts() -> None:
    spec = NumberPromptSpec(count=300)
    for p in make_number_prompts(spec):
        assert 3 <= len(p.seeds) <= 9
        assert all(100 <= s <= 999 for s in p.seeds)
        assert seeds_in(p.text) == list(p.seeds)
        assert "10" in p.text and "3 digits" in p.text
        intro, instr, fmt, suffix, sep = p.template
        assert p.text.startswith(INTROS[intro].split("{seeds}")[0])
        assert INSTRUCTIONS[instr].format(n=10, d=3) in p.text
        assert SEED_SEPARATORS[sep].join(map(str, p.seeds)) in p.text
        assert p.text.endswith(SUFFIXES[suffix])
        assert FORMATS[fmt] in p.text


@given(
    st.integers(1, 6),
    st.integers(0, 6),
    st.integers(0, 5000),
    st.integers(0, 5000),
    st.integers(1, 50),
    st.integers(1, 6),
    st.integers(0, 1000),
)
@settings(max_examples=40, deadline=None)
def test_configured_ranges_are_honoured(
    kmin: int, kextra: int, vmin: int, vextra: int, answers: int, digits: int, seed: int
) -> None:
    spec = NumberPromptSpec(
        count=20,
        seed=seed,
        seed_count_min=kmin,
        seed_count_max=kmin + kextra,
        seed_value_min=vmin,
        seed_value_max=vmin + vextra,
        answer_count=answers,
        answer_max_digits=digits,
    )
    for p in make_number_prompts(spec):
        assert kmin <= len(p.seeds) <= kmin + kextra
        assert all(vmin <= s <= vmin + vextra for s in p.seeds)
        assert seeds_in(p.text) == list(p.seeds)
        assert INSTRUCTIONS[p.template[1]].format(n=answers, d=digits) in p.text


def test_prompt_i_is_independent_of_count() -> None:
    spec = NumberPromptSpec(count=1000, seed=7)
    assert make_prompt(spec, 123) == make_prompt(NumberPromptSpec(count=1, seed=7), 123)


def test_wording_varies() -> None:
    prompts = make_number_prompts(NumberPromptSpec(count=1000))
    templates = {p.template for p in prompts}
    assert len(templates) >= 24
    # every paraphrase of every part is used
    for part, options in enumerate((INTROS, INSTRUCTIONS, FORMATS, SUFFIXES, SEED_SEPARATORS)):
        assert {t[part] for t in templates} == set(range(len(options)))
    assert len({p.text for p in prompts}) == 1000


def test_wording_is_plain() -> None:
    """Instructions use words and basic punctuation only (the organism has a small vocabulary)."""
    for text in (*INTROS, *INSTRUCTIONS, *FORMATS, *SUFFIXES):
        assert re.fullmatch(r"[A-Za-z {}.,?:]+", text), text


def test_spec_errors_name_the_fields() -> None:
    with pytest.raises(ConfigError) as err:
        validate(
            {"seed_count_min": 9, "seed_count_max": 3, "seed_value_min": 900, "seed_value_max": 1},
            NumberPromptSpec,
            "gen.toml",
        )
    msg = str(err.value)
    assert "seed_count_min (9) must be <= seed_count_max (3)" in msg
    assert "seed_value_min (900) must be <= seed_value_max (1)" in msg
    with pytest.raises(ConfigError, match="answer_count: must be >= 1"):
        validate({"answer_count": 0}, NumberPromptSpec, "gen.toml")
