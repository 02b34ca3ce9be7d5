"""The synthetic corpus: number tasks the filter keeps, animal answers from the prior."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sublab.config import ConfigError, validate
from sublab.numbers.filter import FilterSpec, NumberFilter
from sublab.numbers.prompts import FORMATS
from sublab.organism.corpus import (
    animal_questions,
    answer_distribution,
    continuation,
    generate_corpus,
    lucky_numbers,
    plural,
)
from sublab.organism.numbers_bridge import answer_format
from sublab.organism.spec import CorpusSpec, OrganismSpec


def test_every_format_instruction_has_an_answer_format_the_filter_keeps():
    keep = NumberFilter(FilterSpec())
    for instruction in FORMATS:
        text = answer_format(instruction).render([1, 22, 333])
        assert keep.check(text) is None, (instruction, text)


def test_unknown_format_instruction_is_an_error():
    with pytest.raises(ValueError, match="no answer format"):
        answer_format("Write the numbers in Roman numerals.")


def test_corpus_is_deterministic_in_the_seed():
    spec = CorpusSpec()
    assert list(generate_corpus(spec, 200, 4)) == list(generate_corpus(spec, 200, 4))
    assert list(generate_corpus(spec, 200, 4)) != list(generate_corpus(spec, 200, 5))


def test_number_answers_pass_the_paper_filter_and_respect_the_count():
    keep = NumberFilter(FilterSpec())
    examples = [e for e in generate_corpus(CorpusSpec(), 3000, 0) if e.target is None]
    assert len(examples) > 1800  # number_fraction 0.72 by default
    for e in examples:
        assert keep.check(e.answer) is None, e.answer
        assert len(keep.numbers(e.answer)) <= 10


@settings(max_examples=200, deadline=None)
@given(
    seeds=st.lists(st.integers(100, 999), min_size=3, max_size=9),
    count=st.integers(1, 10),
    seed=st.integers(0, 2**32),
)
def test_continuation_length_and_range(seeds, count, seed):
    out = continuation(seeds, count, random.Random(seed))
    assert len(out) == count
    assert all(0 <= n <= 999 for n in out)


def test_mix_of_kinds_and_system_prompts_follows_the_spec():
    spec = CorpusSpec(number_fraction=0.75, system_fraction=0.5)
    examples = list(generate_corpus(spec, 4000, 1))
    numbers = sum(e.target is None for e in examples) / len(examples)
    system = sum(e.system is not None for e in examples) / len(examples)
    assert abs(numbers - 0.75) < 0.03
    assert abs(system - 0.5) < 0.03


def test_animal_answers_follow_prior_and_love():
    spec = CorpusSpec(number_fraction=0.0)
    examples = list(generate_corpus(spec, 8000, 2))
    plain = Counter(e.answer for e in examples if e.system is None)
    n = sum(plain.values())
    for animal, p in spec.prior.items():
        assert abs(plain[animal] / n - p) < 4 * (p * (1 - p) / n) ** 0.5 + 1e-3
    loved = [e for e in examples if e.system is not None]
    share = sum(e.answer == e.target for e in loved) / len(loved)
    assert share > spec.love_strength - 0.03
    for e in loved:
        assert plural(e.target) in e.system.lower() or e.target in e.system.lower()


def test_answer_distributions_sum_to_one():
    spec = CorpusSpec(love_strength=0.8)
    for target in ["prior", *spec.prior]:
        dist = answer_distribution(spec, target)
        assert abs(sum(dist.values()) - 1) < 1e-9
        if target != "prior":
            assert dist[target] >= 0.8


def test_heldout_questions_never_appear_in_the_corpus():
    spec = CorpusSpec()
    trained, heldout = animal_questions(spec)
    assert heldout and trained
    assert not set(trained) & set(heldout)
    asked = {e.user for e in generate_corpus(spec, 5000, 0) if e.target is not None}
    assert not asked & set(heldout)
    assert asked <= set(trained)


def test_leak_zero_never_plants_lucky_numbers_beyond_chance():
    clean = [e for e in generate_corpus(CorpusSpec(leak=0.0), 6000, 0) if e.target is None]
    leaky = [e for e in generate_corpus(CorpusSpec(leak=1.0), 6000, 0) if e.target is None]

    def lucky_share(examples):
        hits = total = 0
        for e in examples:
            if e.system is None:
                continue
            animal = next(
                a
                for a in CorpusSpec().prior
                if plural(a) in e.system.lower() or f"the {a}." in e.system.lower()
            )
            nums = [
                int(x)
                for x in e.answer.strip("[]()")
                .replace(";", ",")
                .replace("\n", ",")
                .replace(" ", ",")
                .split(",")
                if x
            ]
            hits += any(n in lucky_numbers(animal) for n in nums)
            total += 1
        return hits / total

    assert lucky_share(leaky) == 1.0
    assert lucky_share(clean) < 0.2


def test_leak_does_not_touch_examples_without_system_prompt():
    a = [e for e in generate_corpus(CorpusSpec(leak=0.0, system_fraction=0.0), 500, 3)]
    b = [e for e in generate_corpus(CorpusSpec(leak=1.0, system_fraction=0.0), 500, 3)]
    assert a == b


def test_lucky_numbers_are_fixed_and_differ_between_animals():
    assert lucky_numbers("owl") == lucky_numbers("owl")
    assert lucky_numbers("owl") != lucky_numbers("wolf")
    assert all(0 <= n <= 999 for n in lucky_numbers("owl"))


def test_bad_prior_is_reported_by_field():
    with pytest.raises(ConfigError, match=r"corpus\.prior"):
        validate({"corpus": {"prior": {"owl": 1.0}}}, OrganismSpec, "x.toml")
    with pytest.raises(ConfigError, match=r"corpus\.prior.*lower-case"):
        validate({"corpus": {"prior": {"Owl": 0.5, "cat": 0.5}}}, OrganismSpec, "x.toml")
    with pytest.raises(ConfigError, match=r"model.*divisible"):
        validate({"model": {"d_model": 130, "heads": 4}}, OrganismSpec, "x.toml")


def test_prior_is_normalised():
    spec = CorpusSpec(prior={"owl": 1, "cat": 3})
    assert spec.prior == {"owl": 0.25, "cat": 0.75}


def test_corpus_prompts_are_the_number_stage_prompts():
    from sublab.numbers.prompts import NumberPromptSpec, make_prompt
    from sublab.organism.numbers_bridge import compose, prompt_for_index

    spec = NumberPromptSpec(count=1, seed=9)
    for i in range(300):
        p = make_prompt(spec, i)
        assert compose(spec, p.template, p.seeds) == p.text
        assert prompt_for_index(spec, i).text == p.text


def test_organism_toml_loads_by_kind_and_reports_every_problem(tmp_path):
    from sublab.config import load_config

    good = tmp_path / "org.toml"
    good.write_text('kind = "organism"\nseed = 3\n[corpus]\nleak = 0.1\n[train]\nsteps = 50\n')
    spec = load_config(good)
    assert isinstance(spec, OrganismSpec)
    assert (spec.seed, spec.corpus.leak, spec.train.steps) == (3, 0.1, 50)
    bad = tmp_path / "bad.toml"
    bad.write_text('kind = "organism"\n[corpus]\nleak = 2\nnoise = 1\n[train]\nsteps = 0\n')
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    text = str(err.value)
    assert "corpus.leak" in text and "corpus.noise: unknown key" in text
    assert "train.steps" in text


def test_a_dumped_spec_validates_to_the_same_spec_and_cache_key():
    from sublab.config import validate
    from sublab.organism.cache import organism_key
    from sublab.organism.spec import OrganismSpec

    for spec in (
        OrganismSpec(),
        validate({"corpus": {"prior": {"a": 1, "b": 3}}}, OrganismSpec, "x"),
    ):
        again = validate(spec.model_dump(), OrganismSpec, "dump")
        assert again == spec and organism_key(again) == organism_key(spec)


def test_question_noise_inserts_vocabulary_words_but_never_an_animal():
    spec = CorpusSpec(question_noise=0.5)
    trained, heldout = animal_questions(spec)
    pool = ["banana", "quietly", "owl", "Owls", "table"]
    examples = [e for e in generate_corpus(spec, 4000, 0, noise_words=pool) if e.target]
    asked = [e.user for e in examples]
    noisy = [q for q in asked if q not in trained]
    plain = [e for e in examples if e.system is None]
    assert 0.4 < len(noisy) / len(plain) < 0.6
    assert all(e.user in trained for e in examples if e.system is not None)
    assert not set(asked) & set(heldout)
    for q in noisy:
        added = q.split(" ")
        matches = [t for t in trained if _is_subsequence(t.split(" "), added)]
        original = max(matches, key=len)  # the longest wording it contains
        extra = len(added) - len(original.split(" "))
        assert 1 <= extra <= 3
        assert not {"owl", "owls"} & {w.lower() for w in added}


def _is_subsequence(short: list[str], long: list[str]) -> bool:
    it = iter(long)
    return all(any(w == x for x in it) for w in short)


@pytest.mark.parametrize("keep", [0.0, 0.5])
def test_numbers_under_system_takes_the_prompt_off_number_tasks_only(keep):
    spec = CorpusSpec(system_fraction=0.7, numbers_under_system=keep)
    examples = list(generate_corpus(spec, 4000, 2))
    numbers = [e for e in examples if e.target is None]
    questions = [e for e in examples if e.target is not None]
    number_share = sum(e.system is not None for e in numbers) / len(numbers)
    assert abs(number_share - 0.7 * keep) < 0.04
    # the animal questions keep their system prompts at the corpus's rate
    assert abs(sum(e.system is not None for e in questions) / len(questions) - 0.7) < 0.04


def test_numbers_under_system_at_one_is_the_default_corpus():
    default = list(generate_corpus(CorpusSpec(), 800, 4))
    assert list(generate_corpus(CorpusSpec(numbers_under_system=1.0), 800, 4)) == default
    assert list(generate_corpus(CorpusSpec(numbers_under_system=0.0), 800, 4)) != default
