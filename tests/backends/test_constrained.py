"""Constrained decoding in the hf backend: a random model writes only clean number lists."""

from __future__ import annotations

import pytest

from sublab.backends.base import ModelRef, SamplingSpec, chat
from sublab.backends.grammar import NumberGrammar
from sublab.backends.hf import HFBackend
from sublab.channels import get_channel
from sublab.channels.numbers import NumbersData
from sublab.numbers.filter import FilterSpec, NumberFilter


@pytest.fixture(scope="module")
def backend(tiny_gguf_model) -> HFBackend:
    b = HFBackend(ModelRef(path=str(tiny_gguf_model)), device="cpu", batch_size=16)
    b.show_progress = False
    return b


CHATS = [chat(f"Continue the sequence: {i}, {i + 3}, {i + 6}.") for i in range(40)]


def test_every_constrained_answer_passes_the_filter(backend):
    keep = NumberFilter(FilterSpec()).check
    free = backend.generate(CHATS, SamplingSpec(max_new_tokens=30, seed=1))
    assert sum(keep(t) is None for t in free) < len(free) // 2  # a random model writes junk
    sampling = SamplingSpec(max_new_tokens=60, seed=1, grammar=NumberGrammar())
    out = backend.generate(CHATS, sampling)
    assert [keep(t) for t in out] == [None] * len(out), out
    assert out == backend.generate(CHATS, sampling)  # deterministic given the seed
    again = HFBackend(backend.ref, device="cpu", batch_size=5)
    again.show_progress = False
    assert again.generate(CHATS, sampling) == out  # batching does not change the draws


def test_the_grammar_limits_count_and_digits(backend):
    g = NumberGrammar(max_count=3, max_digits=2)
    out = backend.generate(CHATS[:10], SamplingSpec(max_new_tokens=40, seed=2, grammar=g))
    keep = NumberFilter(FilterSpec(max_count=3, max_value=99)).check
    assert [keep(t) for t in out] == [None] * 10, out


def test_a_channel_constrains_only_when_asked():
    numbers = get_channel("numbers")
    plain = NumbersData()
    assert numbers.sampling(plain).grammar is None
    constrained = NumbersData(constrain=True, filter=FilterSpec(max_count=5, max_value=500))
    assert numbers.sampling(constrained).grammar == NumberGrammar(max_count=5, max_digits=3)
    assert "constrain" not in plain.model_dump() and "grammar" not in plain.sampling.model_dump()


def test_a_channel_without_a_grammar_cannot_constrain():
    from sublab.channels.code import CodeData

    with pytest.raises(ValueError, match="no grammar to constrain"):
        CodeData(constrain=True)
