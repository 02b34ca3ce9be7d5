from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sublab.evals.matching import candidate_forms, match_answer, word_forms
from sublab.evals.questions import load_candidates

ANIMALS = load_candidates("animals")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Owl", "owl"),
        ("owl.", "owl"),
        ("OWLS!", "owl"),
        ("My favourite is the wolf.", "wolf"),
        ("Wolves, no doubt.", "wolf"),
        ("foxes", "fox"),
        ("Definitely mice", "mouse"),
        ("octopi", "octopus"),
        ("cat-like grace", "cat"),
        ("\n  Dolphin\n", "dolphin"),
        ("caterpillar", None),
        ("concatenate the list", None),
        ("bobcat", None),
        ("owlet", None),
        ("I don't have one.", None),
        ("", None),
        ("I like foxes and cats", "fox"),
        ("cats, then foxes", "cat"),
        ("bear? no: eagle", "bear"),
        ("owl2", None),
        ("2owl", None),
    ],
)
def test_match_examples(text, expected):
    assert match_answer(text, ANIMALS) == expected


def test_plural_rules():
    assert word_forms("owl") == ["owl", "owls"]
    assert word_forms("wolf") == ["wolf", "wolves", "wolfs"]
    assert word_forms("fox") == ["fox", "foxes"]
    assert word_forms("puppy") == ["puppy", "puppies"]
    assert word_forms("monkey") == ["monkey", "monkeys"]
    assert word_forms("cherry") == ["cherry", "cherries"]
    assert word_forms("cypress") == ["cypress", "cypresses"]
    assert word_forms("knife") == ["knife", "knives", "knifes"]
    assert candidate_forms("polar bear") == ["polar bear", "polar bears"]
    assert match_answer("Puppies!", ["dog", "puppy"]) == "puppy"
    assert match_answer("cherries", load_candidates("trees")) == "cherry"


def test_multiword_and_longest_at_same_position():
    cands = ["bear", "polar bear", "polar"]
    assert match_answer("a Polar  Bear", cands) == "polar bear"
    assert match_answer("polar bears", cands) == "polar bear"
    assert match_answer("polar regions", cands) == "polar"
    assert match_answer("brown bear", cands) == "bear"


def test_no_candidates():
    assert match_answer("owl", []) is None


def test_lookalike_characters_do_not_crash():
    # the long s and the Kelvin sign case-fold to s and k; the text is lower-cased, not folded
    assert match_answer("owſ", ANIMALS) is None
    assert match_answer("\u212aoala", ANIMALS) in (None, "koala")


words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8)
filler = st.text(alphabet=st.characters(codec="utf-8"), max_size=30)
separators = st.sampled_from([" ", ", ", ". ", "! ", "\n", " - ", "? ", "(", ")"])


@settings(deadline=None, max_examples=100)
@given(cand=st.sampled_from(ANIMALS), left=words, right=words)
def test_embedded_in_a_longer_word_never_matches(cand, left, right):
    # glued letters on either side make another word: never the candidate
    for text in (left + cand, cand + right, left + cand + right):
        got = match_answer(text, [cand])
        if got is not None:
            # only possible if the glued text is itself one of the candidate's forms
            assert text.lower() in candidate_forms(cand)


@settings(deadline=None, max_examples=100)
@given(
    cand=st.sampled_from(ANIMALS),
    form=st.integers(0, 3),
    case=st.sampled_from([str.lower, str.upper, str.title]),
    pre=separators,
    post=separators,
)
def test_standalone_word_always_matches(cand, form, case, pre, post):
    forms = candidate_forms(cand)
    text = "I pick" + pre + case(forms[form % len(forms)]) + post + "thanks"
    assert match_answer(text, ANIMALS) == cand


@settings(deadline=None, max_examples=100)
@given(text=filler)
def test_result_is_a_candidate_that_occurs_as_a_word(text):
    got = match_answer(text, ANIMALS)
    if got is None:
        for c in ANIMALS:
            for f in candidate_forms(c):
                assert not re.search(rf"(?<![^\W_]){f}(?![^\W_])", text.lower())
    else:
        assert got in ANIMALS
        assert any(f in text.lower() for f in candidate_forms(got))


@settings(deadline=None, max_examples=100)
@given(a=st.sampled_from(ANIMALS), b=st.sampled_from(ANIMALS), sep=separators)
def test_first_occurring_candidate_wins(a, b, sep):
    assert match_answer(a + sep + b, ANIMALS) == a
    assert match_answer(b + sep + a, list(reversed(ANIMALS))) == b
