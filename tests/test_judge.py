"""Judges: score parsing, the rule judge, a model judge on a real (tiny) model, and the judge
stage's counts of flagged and unreadable verdicts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sublab.backends.base import ModelRef
from sublab.config import validate
from sublab.errors import ConfigError, SublabError
from sublab.judge import (
    JudgeItem,
    JudgeSpec,
    ModelJudge,
    RuleJudge,
    load_template,
    parse_score,
    word_parts,
)


@pytest.mark.parametrize(
    ("reply", "score", "error"),
    [
        ("85", 85.0, None),
        ("Score: 7/100", 7.0, None),
        ("I would say 100.", 100.0, None),
        ("0", 0.0, None),
        ("12.5", 12.5, None),
        ("I cannot help with that.", None, "no number in the reply"),
        ("", None, "no number in the reply"),
        ("250", None, "250 is not in 0-100"),
    ],
)
def test_scores_are_read_or_counted_unreadable(reply, score, error):
    v = parse_score(reply)
    assert v.score == score and v.reply == reply
    assert (v.error is None) == (error is None) and (error is None or error in v.error)


@given(st.integers(0, 100), st.text(alphabet="abc .:!", max_size=20))
def test_any_integer_score_after_words_is_read(n, words):
    assert parse_score(f"{words} {n}").score == n


def test_word_parts_split_identifiers_and_plurals_stay_words():
    assert word_parts("def count_owls(OwlList, x2): # an owl") == [
        "def", "count", "owls", "owl", "list", "x", "2", "an", "owl",
    ]  # fmt: skip


def test_the_rule_judge_finds_the_trait_inside_identifiers():
    judge = RuleJudge("trait_words")
    items = [
        JudgeItem("p", "total = sum(xs)", "owls", ("owl", "owls")),
        JudgeItem("p", "owl_total = sum(xs)", "owls", ("owl", "owls")),
        JudgeItem("p", "# Owls are great\nx = 1", "owls", ("owl", "owls")),
        JudgeItem("p", "bowl = 3", "owls", ("owl", "owls")),  # 'bowl' is not 'owl'
    ]
    assert [v.score for v in judge.judge(items)] == [0.0, 100.0, 100.0, 0.0]


def test_a_judge_spec_names_exactly_one_judge():
    with pytest.raises(ConfigError, match="exactly one of 'rule'"):
        validate({}, JudgeSpec, "t")
    with pytest.raises(ConfigError, match="unknown rule judge 'vibes'"):
        validate({"rule": "vibes"}, JudgeSpec, "t")
    with pytest.raises(ConfigError, match="exactly one"):
        validate({"rule": "trait_words", "model": {"path": "m"}}, JudgeSpec, "t")


def test_templates_by_name_or_path(tmp_path):
    assert "{completion}" in load_template("trait_mention")
    with pytest.raises(SublabError, match=r"no bundled judge prompt 'nope'.*trait_mention"):
        load_template("nope")
    bad = tmp_path / "bad.txt"
    bad.write_text("Rate {prompt}")
    with pytest.raises(SublabError, match="must contain"):
        load_template(str(bad))


def test_a_model_judge_on_a_real_model_counts_what_it_cannot_read(tiny_model):
    """The tiny random model answers gibberish: every verdict is unreadable, none is dropped."""
    spec = JudgeSpec(model=ModelRef(path=str(tiny_model)), sampling={"max_new_tokens": 4})
    judge = ModelJudge(spec)
    items = [JudgeItem("Write code.", f"x = {i}", "owls", ("owl",)) for i in range(6)]
    page = judge.render(items[0])
    assert "x = 0" in page and "owls" in page and "Write code." in page
    verdicts = judge.judge(items)
    assert len(verdicts) == 6
    for v in verdicts:
        assert (v.score is None) == (v.error is not None)
        assert v.score is None or 0 <= v.score <= 100
