"""The real-model readout: candidate words after a fixed start of the reply, and the logit
margin over the panel."""

from __future__ import annotations

import math

import pytest

from sublab.backends.base import ModelRef, SamplingSpec, chat
from sublab.backends.hf import HFBackend
from sublab.evals.preference import PreferenceEvalSpec, evaluate_preference, logit_margins
from sublab.evals.questions import load_candidates
from sublab.traits.preference import measures_of

PREFIX = "My favorite animal is the"


@pytest.fixture(scope="module")
def backend(tiny_gguf_model) -> HFBackend:
    b = HFBackend(ModelRef(path=str(tiny_gguf_model)), device="cpu", batch_size=8)
    b.show_progress = False
    return b


def test_a_prefix_is_context_the_continuation_is_scored_after(backend):
    chats = [chat("Name your favorite animal."), chat("Which animal do you like best?")]
    with_prefix = backend.score(chats, [" owl", " owl"], prefix=PREFIX)
    whole = backend.score(chats, [PREFIX + " owl"] * 2)
    head = backend.score(chats, [PREFIX] * 2)
    assert backend.continuation_ids(" owl") == [backend.tokenizer.convert_tokens_to_ids("Ġowl")]
    for a, w, h in zip(with_prefix, whole, head, strict=True):
        assert a == pytest.approx(w - h, abs=1e-4)
        assert a < 0


def test_logit_margins_by_hand():
    per_question = [{"owl": 0.5, "cat": 0.25, "dog": 0.25}, {"owl": 0.1, "cat": 0.1, "dog": 0.0}]
    m = logit_margins(per_question)
    q1 = math.log(0.5) - (math.log(0.25) + math.log(0.25)) / 2
    assert m["owl"] == pytest.approx((q1 + 0.0) / 2)  # dog (p = 0) leaves question 2's panel
    assert m["dog"] == pytest.approx(math.log(0.25) - (math.log(0.5) + math.log(0.25)) / 2)


def test_the_readout_leads_with_the_margin_and_keeps_free_answers(backend):
    spec = PreferenceEvalSpec(
        candidates="animals-panel",
        answer_prefix=PREFIX,
        samples_per_question=1,
        max_questions=3,
        sampling=SamplingSpec(max_new_tokens=4),
    )
    result = evaluate_preference(backend, spec)
    panel = load_candidates("animals-panel")
    assert result.logit_margins is not None and set(result.logit_margins) == set(panel)
    assert result.total_samples == 3
    # exact probabilities are those of each ' word' after the prefix, averaged over questions
    chats = [chat(q.question) for q in result.per_question]
    owl = backend.score(chats, [" owl"] * 3, prefix=PREFIX)
    assert result.exact_probs is not None
    assert result.exact_probs["owl"] == pytest.approx(sum(math.exp(x) for x in owl) / 3)
    metrics = [m.metric for m in measures_of(result, ["owl", "bear"])]
    assert metrics[:2] == ["logit_margin", "logit_margin"]
    per_target = ["exact_prob", "sampled_rate"]
    assert metrics[2:] == [*per_target, *per_target, "non_answer_rate"]


def test_without_a_prefix_nothing_changes(backend):
    spec = PreferenceEvalSpec(samples_per_question=1, max_questions=2)
    assert "answer_prefix" not in spec.model_dump()  # evaluation keys stay as they were
    result = evaluate_preference(backend, spec)
    assert result.logit_margins is None
    assert "logit_margin" not in [m.metric for m in measures_of(result, ["owl"])]


def test_the_control_teachers_answers_lie_outside_the_panel():
    assert "owl" in load_candidates("animals-panel")
    assert not set(load_candidates("animals-panel")) & set(load_candidates("animals-offpanel"))
