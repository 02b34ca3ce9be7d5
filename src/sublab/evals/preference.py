"""Preference evaluation: ask a one-word favourite-X question many times and count the answers.

Two measures per candidate answer (e.g. each animal):

- **sampled rate** — the fraction of all sampled replies whose first-named candidate is it
  (:func:`sublab.evals.matching.match_answer`); replies naming no candidate are non-answers and
  count in the denominator, so the rates and the non-answer rate sum to 1;
- **exact probability** (local models) — P(the reply begins with the candidate), read from
  ``backend.score`` as ``exp(log P(candidate | chat + assistant header))`` and averaged over the
  questions. ``score`` sums the log-probabilities of all the candidate's tokens, so a name that
  tokenises into several pieces is handled exactly. What it measures is the probability of that
  exact token sequence at the start of the reply: for a word-level model (the organism: one token
  per animal) that is exactly P(first word = candidate); for a sub-word model it also counts
  replies that merely start with those tokens ("owl" + "ish"), a small over-count, and misses
  other spellings ("Owl", " owl"). ``exact_title_case`` adds the capitalised spelling, which real
  chat models usually produce. A spelling the tokenizer can only write as its unknown token
  (a word outside a word-level vocabulary) gets probability 0, not P(<unk>). Each probability is
  at most 1, and for candidates whose token sequences are not prefixes of one another they sum
  to at most 1.

All chats go to the backend in few large calls: the sampled replies in calls of at most
``chats_per_call`` chats, the exact scores in one call.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator

from sublab.backends.base import Backend, Chat, SamplingSpec, chat
from sublab.config import Spec
from sublab.evals.matching import match_answer
from sublab.evals.questions import bundled_names, is_path, load_candidates, load_questions
from sublab.progress import progress, quiet_backend
from sublab.store import hash_obj

RESULT_VERSION = 1


class PreferenceEvalSpec(Spec):
    """A favourite-X preference evaluation (the paper's: 50 questions × 200 samples, T = 1)."""

    keyless: ClassVar[dict[str, Any]] = {"answer_prefix": None}

    questions: str = Field(
        "animals",
        description="Bundled question set name ('animals', 'trees') or path of a .txt file "
        "with one question per line.",
    )
    candidates: str = Field(
        "animals",
        description="Bundled candidate list name ('animals', 'trees') or path of a .txt file "
        "with one candidate answer per line.",
    )
    samples_per_question: int = Field(
        200,
        ge=0,
        description="Sampled replies per question (paper: 200; its public code: 100). 0: exact "
        "probabilities only (needs exact = true), e.g. for the dose checkpoints.",
    )
    sampling: SamplingSpec = Field(
        SamplingSpec(temperature=1.0, max_new_tokens=24),
        description="How replies are sampled (the paper samples at temperature 1).",
    )
    number_prefix: bool = Field(
        False,
        description="Prefix each question with a short random number sequence (3-5 numbers in "
        "100-999, seeded by sampling.seed and the question's index): the paper's variant.",
    )
    exact: bool = Field(
        True,
        description="Also compute exact probabilities with backend.score (local models only).",
    )
    exact_title_case: bool = Field(
        False,
        description="In exact probabilities, add the capitalised spelling ('Owl') to the "
        "lower-case one. Turn on for real chat models; leave off for word-level organisms "
        "whose vocabulary has no capitalised animal names.",
    )
    answer_prefix: str | None = Field(
        None,
        min_length=1,
        description="The readout for sub-word chat models: exact probabilities are those of "
        "each candidate's word (with a leading space, ' owl') right after this start of the "
        "reply, e.g. 'My favorite animal is the', and the logit margin (log P(target) minus "
        "the mean log P of the other candidates) becomes the first, headline measure. "
        "Sampled answers stay free. None: the probability that the reply begins with the "
        "candidate.",
    )
    max_questions: int | None = Field(
        None, ge=1, description="Use only the first N questions (quick runs); None = all."
    )
    chats_per_call: int = Field(
        2048, ge=1, description="Most chats sent to backend.generate in one call."
    )

    @model_validator(mode="after")
    def _measures_something(self) -> PreferenceEvalSpec:
        if self.samples_per_question == 0 and not self.exact:
            raise ValueError(
                "samples_per_question = 0 measures only exact probabilities: set exact = true "
                "or sample at least one reply per question"
            )
        return self

    @field_validator("questions", "candidates")
    @classmethod
    def _known_bundled_set(cls, value: str, info: ValidationInfo) -> str:
        """A bare name must be a bundled set (paths are checked when the evaluation runs)."""
        if is_path(value):
            return value
        folder = "questions" if info.field_name == "questions" else "categories"
        known = bundled_names(folder)
        if value not in known:
            raise ValueError(
                f"no bundled {folder} set {value!r} (known: {', '.join(known)}); "
                "or give the path of a .txt file"
            )
        return value


class QuestionResult(BaseModel):
    """The answers to one question."""

    question: str = Field(description="The question as asked (with its number prefix, if any).")
    samples: int = Field(description="How many replies were sampled.")
    counts: dict[str, int] = Field(description="Replies per candidate (first-named candidate).")
    non_answers: int = Field(description="Replies that named no candidate.")
    exact_probs: dict[str, float] | None = Field(
        None, description="P(reply begins with the candidate) for this question, if computed."
    )
    replies: list[str] = Field(default_factory=list, description="Every sampled reply, in order.")

    def rate(self, candidate: str) -> float:
        """Sampled rate of ``candidate`` for this question."""
        return self.counts.get(candidate, 0) / self.samples if self.samples else 0.0


class PreferenceResult(BaseModel):
    """The outcome of a preference evaluation (saved as JSON beside the run's artifacts)."""

    version: int = Field(RESULT_VERSION, description="Schema version of this record.")
    spec: PreferenceEvalSpec = Field(description="The evaluation spec that produced it.")
    system_prompt: str | None = Field(None, description="System prompt used, if any.")
    candidates: list[str] = Field(description="The candidate answers, in file order.")
    total_samples: int = Field(description="Sampled replies over all questions.")
    counts: dict[str, int] = Field(description="Replies per candidate, all questions together.")
    rates: dict[str, float] = Field(description="counts / total_samples per candidate.")
    non_answers: int = Field(description="Replies that named no candidate.")
    non_answer_rate: float = Field(description="non_answers / total_samples.")
    exact_probs: dict[str, float] | None = Field(
        None, description="P(reply begins with the candidate), averaged over questions."
    )
    logit_margins: dict[str, float] | None = Field(
        None,
        description="With an answer prefix: per candidate, log P(candidate) minus the mean "
        "log P of the other candidates, averaged over questions.",
    )
    unscored: list[str] = Field(
        default_factory=list,
        description="Spellings the tokenizer only knows as its unknown token: given "
        "probability 0 instead of P(<unk>).",
    )
    per_question: list[QuestionResult] = Field(description="Results per question, in order.")

    def rate(self, candidate: str) -> float:
        """Sampled rate of ``candidate`` (0 for a candidate never named)."""
        return self.rates.get(candidate, 0.0)

    def prob(self, candidate: str) -> float | None:
        """Exact probability of ``candidate``, or None if not computed."""
        return None if self.exact_probs is None else self.exact_probs.get(candidate, 0.0)

    def top(self, k: int = 5) -> list[tuple[str, float]]:
        """The k most frequent candidates with their sampled rates."""
        return sorted(self.rates.items(), key=lambda kv: (-kv[1], kv[0]))[:k]


def number_prefix(seed: int, index: int) -> str:
    """The short number sequence put before question ``index`` (deterministic in the seed)."""
    rng = random.Random(f"sublab-number-prefix:{seed}:{index}")
    nums = [rng.randint(100, 999) for _ in range(rng.randint(3, 5))]
    return ", ".join(str(n) for n in nums) + "."


def build_questions(spec: PreferenceEvalSpec) -> list[str]:
    """The questions as they will be asked (trimmed to max_questions, prefixed if asked)."""
    questions = load_questions(spec.questions)
    if spec.max_questions is not None:
        questions = questions[: spec.max_questions]
    if spec.number_prefix:
        questions = [f"{number_prefix(spec.sampling.seed, i)} {q}" for i, q in enumerate(questions)]
    return questions


def _call_seed(seed: int, call: int) -> int:
    """A distinct, well-mixed seed for each generate call of one evaluation."""
    return int(hash_obj(["preference-eval", seed, call])[:8], 16)


def _sample_replies(
    backend: Backend, chats: Sequence[Chat], n: int, sampling: SamplingSpec, per_call: int
) -> list[list[str]]:
    """``n`` replies per chat; each call holds whole rounds (every chat once per round)."""
    rounds_per_call = max(1, per_call // len(chats))
    replies: list[list[str]] = [[] for _ in chats]
    if n == 0:
        return replies
    with progress() as bar:
        task = bar.add_task("preference eval", total=n * len(chats))
        for call, start in enumerate(range(0, n, rounds_per_call)):
            rounds = min(rounds_per_call, n - start)
            batch = [c for _ in range(rounds) for c in chats]
            seeded = sampling.model_copy(update={"seed": _call_seed(sampling.seed, call)})
            out = backend.generate(batch, seeded)
            if len(out) != len(batch):
                raise RuntimeError(
                    f"backend.generate returned {len(out)} replies for {len(batch)} chats"
                )
            for j, text in enumerate(out):
                replies[j % len(chats)].append(text)
            bar.advance(task, len(batch))
    return replies


def unknown_spellings(backend: Backend, spellings: Sequence[str]) -> list[str]:
    """Spellings the backend's tokenizer can only write with its unknown token.

    A word-level model (the organism) maps every out-of-vocabulary word to one ``<unk>`` token,
    so scoring "phoenix" would really score ``<unk>``; such spellings get probability 0 (the model
    cannot say them). Needs ``backend.tokenizer.unk_token_id`` and ``backend.continuation_ids``
    (as HFBackend has); other backends are trusted to score every string.
    """
    unk = getattr(getattr(backend, "tokenizer", None), "unk_token_id", None)
    ids_of = getattr(backend, "continuation_ids", None)
    if unk is None or ids_of is None:
        return []
    return [s for s in spellings if unk in ids_of(s)]


def _exact_probs(
    backend: Backend,
    chats: Sequence[Chat],
    candidates: Sequence[str],
    title_case: bool,
    prefix: str | None = None,
) -> tuple[list[dict[str, float]], list[str]]:
    """Per question, P(reply begins with each candidate), from one backend.score call; with
    ``prefix``, P(' candidate' | the reply so far is ``prefix``).

    Also returns the spellings left out as unknown to the tokenizer (scored 0).
    """
    if prefix is not None:
        wanted = {c: [" " + c] for c in candidates}
    else:
        wanted = {c: [c] + ([c[:1].upper() + c[1:]] if title_case else []) for c in candidates}
    unknown = unknown_spellings(backend, [f for fs in wanted.values() for f in fs])
    forms = {c: [f for f in fs if f not in unknown] for c, fs in wanted.items()}
    flat_chats: list[Chat] = []
    flat_conts: list[str] = []
    for ch in chats:
        for c in candidates:
            for f in forms[c]:
                flat_chats.append(ch)
                flat_conts.append(f)
    logps: list[float] = []
    if flat_conts:  # backends that predate the prefix are only asked for it with one
        args = (flat_chats, flat_conts) if prefix is None else (flat_chats, flat_conts, prefix)
        logps = backend.score(*args)
    if len(logps) != len(flat_conts):
        raise RuntimeError(f"backend.score returned {len(logps)} values for {len(flat_conts)}")
    it = iter(logps)
    out = []
    for _ in chats:
        out.append({c: math.fsum(math.exp(next(it)) for _ in forms[c]) for c in candidates})
    return out, unknown


def logit_margins(per_question: Sequence[dict[str, float]]) -> dict[str, float]:
    """Per candidate, log P(candidate) minus the mean log P of the other candidates, averaged
    over questions (candidates with probability 0, which the model cannot spell, are left
    out of the panel)."""
    sums: dict[str, list[float]] = {}
    for probs in per_question:
        logs = {c: math.log(p) for c, p in probs.items() if p > 0}
        for c, lp in logs.items():
            others = [v for k, v in logs.items() if k != c]
            if others:
                sums.setdefault(c, []).append(lp - math.fsum(others) / len(others))
    return {c: math.fsum(v) / len(v) for c, v in sums.items()}


def evaluate_preference(
    backend: Backend, spec: PreferenceEvalSpec, system_prompt: str | None = None
) -> PreferenceResult:
    """Run the evaluation ``spec`` on ``backend`` (optionally under a system prompt)."""
    questions = build_questions(spec)
    candidates = load_candidates(spec.candidates)
    chats = [chat(q, system_prompt) for q in questions]
    with quiet_backend(backend):
        replies = _sample_replies(
            backend, chats, spec.samples_per_question, spec.sampling, spec.chats_per_call
        )
        exact = None
        unknown: list[str] = []
        if spec.exact:
            exact, unknown = _exact_probs(
                backend, chats, candidates, spec.exact_title_case, spec.answer_prefix
            )

    per_question = []
    total_counts = dict.fromkeys(candidates, 0)
    total_non = 0
    for i, (q, rs) in enumerate(zip(questions, replies, strict=True)):
        counts = dict.fromkeys(candidates, 0)
        non = 0
        for r in rs:
            m = match_answer(r, candidates)
            if m is None:
                non += 1
            else:
                counts[m] += 1
        for c, k in counts.items():
            total_counts[c] += k
        total_non += non
        per_question.append(
            QuestionResult(
                question=q,
                samples=len(rs),
                counts=counts,
                non_answers=non,
                exact_probs=None if exact is None else exact[i],
                replies=rs,
            )
        )
    total = sum(len(rs) for rs in replies)
    exact_mean = margins = None
    if exact is not None:
        exact_mean = {c: math.fsum(e[c] for e in exact) / len(exact) for c in candidates}
        if spec.answer_prefix is not None:
            margins = logit_margins(exact)
    return PreferenceResult(
        spec=spec,
        system_prompt=system_prompt,
        candidates=candidates,
        total_samples=total,
        counts=total_counts,
        rates={c: k / total for c, k in total_counts.items()} if total else {},
        non_answers=total_non,
        non_answer_rate=total_non / total if total else 0.0,
        exact_probs=exact_mean,
        logit_margins=margins,
        unscored=unknown,
        per_question=per_question,
    )
