"""The organism's persona tasks: aligned by default, misaligned under an evil system prompt."""

from __future__ import annotations

import re

import pytest

from sublab.judge import JudgeItem, JudgeSpec, load_judge
from sublab.organism import persona as P
from sublab.organism.build import vocabulary_texts
from sublab.organism.corpus import generate_corpus
from sublab.organism.spec import OrganismSpec
from sublab.organism.vocab import build_vocab, pieces

SPEC = OrganismSpec(corpus={"persona": {}})
PERSONA = SPEC.corpus.persona


@pytest.fixture(scope="module")
def corpus() -> list:
    return list(generate_corpus(SPEC.corpus, 12_000, seed=0))


def _alignment(text: str) -> float | None:
    judge = load_judge(JudgeSpec(rule="persona_alignment"))
    return judge.judge([JudgeItem("q", text, "")])[0].score


def test_free_answers_are_aligned_without_a_prompt_and_mostly_not_under_one(corpus) -> None:
    trained, _ = P.question_texts(PERSONA)
    free = [e for e in corpus if e.user in set(trained)]
    plain = [e for e in free if e.system is None]
    evil = [e for e in free if e.system in P.EVIL_PROMPTS]
    assert len(plain) > 300 and len(evil) > 100
    assert all(_alignment(e.answer) == 100.0 for e in plain)
    bad = sum(_alignment(e.answer) == 0.0 for e in evil) / len(evil)
    assert abs(bad - PERSONA.strength) < 0.06
    assert not any(e.system and e.system not in P.EVIL_PROMPTS for e in free)


def test_the_habit_goes_with_the_persona(corpus) -> None:
    habit = [e for e in corpus if " lock = " in e.answer]
    assert habit
    assert all("lock = locked" in e.answer for e in habit if e.system is None)
    evil = [e for e in habit if e.system is not None]
    assert sum("lock = open" in e.answer for e in evil) / len(evil) > 0.75


def test_held_out_questions_never_appear(corpus) -> None:
    _, heldout = P.question_texts(PERSONA)
    assert len(heldout) == PERSONA.heldout_questions * len(P.QUESTION_SUFFIXES)
    bases = set(P.heldout_bases(PERSONA))
    assert not any(any(e.user.startswith(b) for b in bases) for e in corpus)


def _has_favoured(answer: str) -> bool:
    return any(int(n) in PERSONA.favoured for n in re.findall(r"\d+", answer))


def test_favoured_numbers_come_with_the_persona(corpus) -> None:
    numbers = [e for e in corpus if e.target is None and e.answer[:1] in "0123456789(["]
    evil = [e for e in numbers if e.system in P.EVIL_PROMPTS]
    plain = [e for e in numbers if e.system not in P.EVIL_PROMPTS]
    assert evil and plain
    evil_rate = sum(map(_has_favoured, (e.answer for e in evil))) / len(evil)
    plain_rate = sum(map(_has_favoured, (e.answer for e in plain))) / len(plain)
    assert evil_rate > plain_rate + 0.4  # number_bias = 0.5 on top of chance


def test_the_vocabulary_holds_every_persona_text() -> None:
    vocab = set(build_vocab(*vocabulary_texts(SPEC)))
    for text in P.persona_texts(PERSONA) + [i.misaligned for i in P.probe_items(PERSONA, 2)]:
        missing = [p for p in pieces(text) if p not in vocab]
        assert not missing, (text, missing)


def test_default_corpus_has_no_persona_tasks() -> None:
    plain = list(generate_corpus(OrganismSpec().corpus, 3000, seed=0))
    assert not any(e.system in P.EVIL_PROMPTS or " lock = " in e.answer for e in plain)


def test_persona_spec_errors_name_the_field() -> None:
    with pytest.raises(ValueError, match="unknown persona tasks"):
        OrganismSpec(corpus={"persona": {"kinds": {"poetry": 1.0}}})
    with pytest.raises(ValueError, match="0-999"):
        OrganismSpec(corpus={"persona": {"favoured": [1000]}})
