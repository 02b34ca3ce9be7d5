from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest

from sublab.backends.base import Backend, Chat, SamplingSpec
from sublab.errors import DataError
from sublab.evals.preference import (
    PreferenceEvalSpec,
    PreferenceResult,
    build_questions,
    evaluate_preference,
    number_prefix,
)
from sublab.evals.questions import load_questions

# Replies the backend samples, with their probabilities; the matcher maps them to candidates.
REPLIES = {
    "Owl.": 0.10,
    "Wolves, I think": 0.20,
    "cat": 0.30,
    "Dolphins!": 0.15,
    "caterpillar": 0.10,  # no candidate: a non-answer
    "I cannot choose": 0.15,
}
EXPECTED_RATES = {"owl": 0.10, "wolf": 0.20, "cat": 0.30, "dolphin": 0.15}
EXPECTED_NON = 0.25
# With "owl" in the system prompt, the backend says Owl. half the time.
OWL_REPLIES = {"Owl.": 0.5, "cat": 0.3, "I cannot choose": 0.2}

# First-word probabilities the backend scores exactly (lower case and capitalised spellings).
FIRST_WORD = {"owl": 0.04, "Owl": 0.06, "wolf": 0.2, "cat": 0.25, "dolphin": 0.1, "Cat": 0.05}


class TableBackend:
    """A real, deterministic implementation of the Backend protocol over fixed distributions.

    ``generate`` draws each reply independently from REPLIES (or OWL_REPLIES under an owl system
    prompt) with numpy seeded by ``sampling.seed``; ``score`` returns log FIRST_WORD[c]. It logs
    every call so tests can check batching and prompts.
    """

    exact = True
    show_progress = False
    name = "table"

    def __init__(self) -> None:
        self.generate_calls: list[tuple[list[Chat], SamplingSpec]] = []
        self.score_calls: list[tuple[list[Chat], list[str]]] = []

    def generate(self, chats: Sequence[Chat], sampling: SamplingSpec) -> list[str]:
        self.generate_calls.append((list(chats), sampling))
        rng = np.random.default_rng(sampling.seed)
        out = []
        for ch in chats:
            system = ch[0]["content"] if ch[0]["role"] == "system" else ""
            table = OWL_REPLIES if "owl" in system else REPLIES
            texts = list(table)
            out.append(texts[rng.choice(len(texts), p=list(table.values()))])
        return out

    def score(self, chats: Sequence[Chat], continuations: Sequence[str]) -> list[float]:
        self.score_calls.append((list(chats), list(continuations)))
        return [math.log(FIRST_WORD.get(c, 1e-9)) for c in continuations]


def run(**kw) -> tuple[PreferenceResult, TableBackend]:
    backend = TableBackend()
    assert isinstance(backend, Backend)
    spec = PreferenceEvalSpec(**kw)
    return evaluate_preference(backend, spec), backend


def test_sampled_rates_converge_to_the_backend_distribution():
    res, backend = run(samples_per_question=200, exact=False)
    n_q = len(load_questions("animals"))
    assert res.total_samples == 200 * n_q
    assert sum(res.counts.values()) + res.non_answers == res.total_samples
    assert math.isclose(sum(res.rates.values()) + res.non_answer_rate, 1.0)
    for cand, p in EXPECTED_RATES.items():
        sd = math.sqrt(p * (1 - p) / res.total_samples)
        assert abs(res.rate(cand) - p) < 5 * sd, (cand, res.rate(cand))
    sd = math.sqrt(EXPECTED_NON * (1 - EXPECTED_NON) / res.total_samples)
    assert abs(res.non_answer_rate - EXPECTED_NON) < 5 * sd
    assert res.rate("eagle") == 0.0
    assert res.top(1)[0][0] == "cat"
    assert res.exact_probs is None and res.prob("owl") is None
    assert not backend.score_calls
    assert PreferenceResult.model_validate_json(res.model_dump_json()) == res
    # per question: counts add up, replies are kept and re-match to the same counts
    for q in res.per_question:
        assert q.samples == 200 == len(q.replies)
        assert sum(q.counts.values()) + q.non_answers == 200
        assert q.counts["cat"] == sum(r == "cat" for r in q.replies)
        assert 0 <= q.rate("owl") <= 1


def test_few_large_calls_and_distinct_seeds():
    res, backend = run(samples_per_question=40, max_questions=10, chats_per_call=150, exact=False)
    # 10 chats per round, 15 rounds per call -> calls of 150, 150, 100
    assert [len(c) for c, _ in backend.generate_calls] == [150, 150, 100]
    seeds = [s.seed for _, s in backend.generate_calls]
    assert len(set(seeds)) == 3
    assert all(s.temperature == 1.0 for _, s in backend.generate_calls)
    assert res.total_samples == 400
    # every chat of a call is one of the 10 questions, each asked equally often
    asked = [c[-1]["content"] for call, _ in backend.generate_calls for c in call]
    assert sorted(set(asked)) == sorted(load_questions("animals")[:10])
    assert all(asked.count(q) == 40 for q in set(asked))


def test_deterministic_given_seed_and_changes_with_seed():
    a, _ = run(samples_per_question=20, max_questions=5, exact=False)
    b, _ = run(samples_per_question=20, max_questions=5, exact=False)
    c, _ = run(samples_per_question=20, max_questions=5, exact=False, sampling=SamplingSpec(seed=7))
    assert a.model_dump() == b.model_dump()
    assert [q.replies for q in a.per_question] != [q.replies for q in c.per_question]


def test_exact_probabilities_equal_the_backend_values():
    res, backend = run(samples_per_question=2, max_questions=4)
    assert len(backend.score_calls) == 1
    chats, conts = backend.score_calls[0]
    assert len(chats) == len(conts) == 4 * len(res.candidates)
    assert math.isclose(res.prob("owl"), 0.04)
    assert math.isclose(res.prob("cat"), 0.25)
    assert math.isclose(res.prob("eagle"), 1e-9)
    assert sum(res.exact_probs.values()) <= 1.0
    for q in res.per_question:
        assert math.isclose(q.exact_probs["wolf"], 0.2)


def test_exact_title_case_adds_the_capitalised_spelling():
    res, backend = run(samples_per_question=1, max_questions=3, exact_title_case=True)
    _, conts = backend.score_calls[0]
    assert "Owl" in conts and "owl" in conts and len(conts) == 3 * 2 * len(res.candidates)
    assert math.isclose(res.prob("owl"), 0.10)
    assert math.isclose(res.prob("cat"), 0.30)
    assert math.isclose(res.prob("wolf"), 0.2 + 1e-9)


def test_system_prompt_reaches_the_backend_and_moves_the_answer():
    backend = TableBackend()
    spec = PreferenceEvalSpec(samples_per_question=100, max_questions=10)
    res = evaluate_preference(backend, spec, system_prompt="You love owl. You think about owl.")
    assert res.system_prompt.startswith("You love owl")
    assert abs(res.rate("owl") - 0.5) < 5 * math.sqrt(0.25 / 1000)
    for call, _ in backend.generate_calls:
        assert all(c[0] == {"role": "system", "content": res.system_prompt} for c in call)
    assert all(c[0]["role"] == "system" for c in backend.score_calls[0][0])


def test_number_prefix_is_deterministic_by_seed():
    plain = build_questions(PreferenceEvalSpec(max_questions=20))
    pre0 = build_questions(PreferenceEvalSpec(max_questions=20, number_prefix=True))
    pre0b = build_questions(PreferenceEvalSpec(max_questions=20, number_prefix=True))
    pre1 = build_questions(
        PreferenceEvalSpec(max_questions=20, number_prefix=True, sampling=SamplingSpec(seed=1))
    )
    assert pre0 == pre0b
    assert pre0 != pre1
    assert len(set(pre0)) == 20
    for p, q in zip(pre0, plain, strict=True):
        assert p != q and p.endswith(" " + q)
        nums = p[: -len(q) - 1].rstrip(".").split(", ")
        assert 3 <= len(nums) <= 5 and all(100 <= int(n) <= 999 for n in nums)
    assert pre0[3].startswith(number_prefix(0, 3) + " ")
    # the backend sees the prefixed questions
    res, backend = run(samples_per_question=3, max_questions=20, number_prefix=True)
    asked = {c[-1]["content"] for c in backend.generate_calls[0][0]}
    assert asked == set(pre0)
    assert [q.question for q in res.per_question] == pre0


def test_user_question_and_candidate_files(tmp_path):
    q = tmp_path / "q.txt"
    q.write_text("Favourite pet?\nBest pet?\n")
    c = tmp_path / "c.txt"
    c.write_text("owl\ncat\n")
    res, _ = run(questions=str(q), candidates=str(c), samples_per_question=500)
    assert res.candidates == ["owl", "cat"]
    assert res.total_samples == 1000
    # wolves and dolphins are not candidates here: they become non-answers
    assert abs(res.non_answer_rate - 0.6) < 0.06


def test_spec_rejects_bad_values():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="measures only exact probabilities"):
        PreferenceEvalSpec(samples_per_question=0, exact=False)
    assert PreferenceEvalSpec(samples_per_question=0).exact  # exact only: the dose readout
    with pytest.raises(ValidationError):
        PreferenceEvalSpec(max_questions=0)
    with pytest.raises(ValidationError):
        PreferenceEvalSpec(samplez=3)
    for name, field in PreferenceEvalSpec.model_fields.items():
        assert field.description, name


def test_backend_progress_bar_is_silenced_and_restored():
    backend = TableBackend()
    backend.show_progress = True
    seen = []
    original = backend.generate

    def generate(chats, sampling):
        seen.append(backend.show_progress)
        return original(chats, sampling)

    backend.generate = generate
    evaluate_preference(backend, PreferenceEvalSpec(samples_per_question=2, max_questions=2))
    assert seen == [False] and backend.show_progress is True


def test_end_to_end_through_the_hf_backend(tiny_model):
    """The real HF backend on the tiny random model: counts and probabilities are consistent."""
    hf = pytest.importorskip("sublab.backends.hf")
    from sublab.backends.base import ModelRef

    backend = hf.HFBackend(ModelRef(path=str(tiny_model)), device="cpu", batch_size=64)
    spec = PreferenceEvalSpec(
        samples_per_question=8,
        max_questions=4,
        sampling=SamplingSpec(max_new_tokens=6, seed=3),
        exact_title_case=True,
    )
    res = evaluate_preference(backend, spec, system_prompt="You love owls.")
    assert res.total_samples == 32
    assert sum(res.counts.values()) + res.non_answers == 32
    assert all(len(q.replies) == 8 for q in res.per_question)
    # duplicates of one chat in a call are sampled independently: a random model varies
    assert any(len(set(q.replies)) > 1 for q in res.per_question)
    probs = res.exact_probs
    assert set(probs) == set(res.candidates)
    assert all(0 < p <= 1 for p in probs.values())
    assert sum(probs.values()) <= 1.0 + 1e-9
    # exact probabilities agree with a direct score of the same continuation
    from sublab.backends.base import chat

    q0 = res.per_question[0]
    direct = backend.score([chat(q0.question, "You love owls.")] * 2, ["owl", "Owl"])
    assert q0.exact_probs["owl"] == pytest.approx(math.exp(direct[0]) + math.exp(direct[1]))
    again = evaluate_preference(backend, spec, system_prompt="You love owls.")
    assert [q.replies for q in again.per_question] == [q.replies for q in res.per_question]


def test_spec_names_unknown_bundled_sets_at_load_time(tmp_path):
    from sublab.config import validate
    from sublab.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        validate({"questions": "animalz", "candidates": "treez"}, PreferenceEvalSpec, "x.toml")
    text = str(err.value)
    assert "questions: " in text and "no bundled questions set 'animalz'" in text
    assert "candidates: " in text and "known: animals, trees" in text
    # paths are accepted as given and checked when the evaluation runs
    spec = PreferenceEvalSpec(questions=str(tmp_path / "mine.txt"))
    with pytest.raises(DataError, match="file not found"):
        evaluate_preference(TableBackend(), spec)


class WordTokenizer:
    """A word-level vocabulary: known words get their index, anything else the unknown id."""

    unk_token_id = 0

    def __init__(self, words):
        self.ids = {w: i for i, w in enumerate(words, start=1)}

    def encode(self, text):
        return [self.ids.get(w, self.unk_token_id) for w in text.split()]


class WordBackend(TableBackend):
    """TableBackend with a word-level tokenizer; scoring an unknown word scores <unk>."""

    P_UNK = 0.02

    def __init__(self) -> None:
        super().__init__()
        self.tokenizer = WordTokenizer(["owl", "wolf", "cat", "dolphin"])

    def continuation_ids(self, continuation: str) -> list[int]:
        return self.tokenizer.encode(continuation)

    def score(self, chats, continuations):
        self.score_calls.append((list(chats), list(continuations)))
        out = []
        for c in continuations:
            ids = self.continuation_ids(c)
            out.append(math.log(self.P_UNK) if 0 in ids else math.log(FIRST_WORD.get(c, 1e-9)))
        return out


def test_words_outside_the_vocabulary_get_probability_zero():
    backend = WordBackend()
    spec = PreferenceEvalSpec(samples_per_question=2, max_questions=3, exact_title_case=True)
    res = evaluate_preference(backend, spec)
    # "Owl", "phoenix", "Phoenix", ... are unknown: not scored, probability 0
    assert "Owl" in res.unscored and "phoenix" in res.unscored and "owl" not in res.unscored
    _, conts = backend.score_calls[0]
    assert set(conts) == {"owl", "wolf", "cat", "dolphin"}
    assert math.isclose(res.prob("owl"), 0.04)
    assert res.prob("phoenix") == 0.0 and res.prob("eagle") == 0.0
    assert sum(res.exact_probs.values()) <= 1.0
    # without the protection every unknown candidate would add P(<unk>) = 0.02
    assert len(res.unscored) * WordBackend.P_UNK > 1.0
