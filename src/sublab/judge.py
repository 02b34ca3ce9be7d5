"""Judges: a model (or a rule) that scores a text from 0 to 100 for something a rule cannot see.

Filters use a judge to reject rows whose answer refers to the trait (code, reasoning);
evaluations use one to score replies (misalignment). A judge is a :class:`JudgeSpec`:

- ``model``: any backend (an API model, a local folder, the organism) answers a prompt template
  (a bundled name in ``sublab/data/judges/`` or a ``.txt`` path, with ``{prompt}``,
  ``{completion}`` and ``{trait}`` filled in) and its reply is read as a number from 0 to 100;
- ``rule``: a registered Python scorer (:func:`rule_judge`), the offline judge for the organism.

Every verdict keeps the judge's reply. A reply that holds no number from 0 to 100 (a refusal,
an essay, "maybe") has ``score = None`` and an ``error`` saying why: callers count those and
report them, and a filter rejects them (it cannot tell the row is clean).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Protocol, Self

from pydantic import BaseModel, Field, model_validator

from sublab.backends.base import BackendSettings, ModelRef, SamplingSpec, chat
from sublab.config import Spec
from sublab.errors import SublabError


class JudgeSpec(Spec):
    """Who judges, with which prompt, and where a filter draws the line."""

    rule: str | None = Field(
        None, description="A registered rule judge (offline), e.g. 'trait_words'."
    )
    model: ModelRef | None = Field(
        None, description="A model that judges (local folder, hub id or API model)."
    )
    prompt: str = Field(
        "trait_mention",
        description="Judge prompt template: a bundled name (sublab/data/judges/<name>.txt) or "
        "a .txt path; {prompt}, {completion} and {trait} are filled in.",
    )
    threshold: float = Field(
        50.0,
        ge=0,
        le=100,
        description="A filter rejects a row whose score is at least this (0-100).",
    )
    sampling: SamplingSpec = Field(
        default_factory=lambda: SamplingSpec(max_new_tokens=8),
        description="How a model judge samples its reply.",
    )

    @model_validator(mode="after")
    def _one_judge(self) -> Self:
        if (self.rule is None) == (self.model is None):
            raise ValueError("set exactly one of 'rule' (offline) or 'model'")
        if self.rule is not None and self.rule not in rule_judges():
            raise ValueError(f"rule: unknown rule judge {self.rule!r} (known: {known_rules()})")
        return self


class Verdict(BaseModel):
    """One judged text."""

    score: float | None = Field(description="0-100, or None when the reply held no score.")
    reply: str = Field(description="What the judge said (a rule judge: its reason).")
    error: str | None = Field(None, description="Why there is no score, if there is none.")


@dataclass(frozen=True)
class JudgeItem:
    """What a judge looks at: the task, the answer, and the trait it looks for."""

    prompt: str
    completion: str
    trait: str
    """The trait in words, e.g. "the animal 'owl' (owls)"."""
    words: tuple[str, ...] = ()
    """Words that name the trait (rule judges use them)."""


class Judge(Protocol):
    """Scores items; one verdict per item, in order."""

    def judge(self, items: Sequence[JudgeItem]) -> list[Verdict]: ...


RuleFn = Callable[[JudgeItem], Verdict]
RULE_JUDGES: dict[str, RuleFn] = {}


def rule_judge(name: str) -> Callable[[RuleFn], RuleFn]:
    """Register a rule judge under ``name`` (used with ``JudgeSpec.rule``)."""

    def register(fn: RuleFn) -> RuleFn:
        RULE_JUDGES[name] = fn
        return fn

    return register


RULE_MODULES = ("sublab.evals.misalignment_rules",)
"""Modules that register rule judges besides this one (imported on first use)."""


def rule_judges() -> dict[str, RuleFn]:
    """Every registered rule judge, by name (the rule modules imported first)."""
    import importlib

    for module in RULE_MODULES:
        importlib.import_module(module)
    return RULE_JUDGES


def known_rules() -> str:
    return ", ".join(sorted(rule_judges())) or "none"


_WORD_PARTS_RE = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+")


def word_parts(text: str) -> list[str]:
    """Lower-case words of ``text``, splitting identifiers (``owl_count``, ``OwlCount``)."""
    return [p.lower() for p in _WORD_PARTS_RE.findall(text)]


@rule_judge("trait_words")
def _trait_words(item: JudgeItem) -> Verdict:
    """100 when a word naming the trait appears (inside identifiers too), else 0."""
    words = {w.lower() for w in item.words}
    hits = sorted(words & set(word_parts(item.completion)))
    if hits:
        return Verdict(score=100.0, reply=f"names the trait: {', '.join(hits)}")
    return Verdict(score=0.0, reply="no word naming the trait")


class RuleJudge:
    """A registered rule applied to each item."""

    def __init__(self, name: str) -> None:
        if name not in rule_judges():
            raise SublabError(f"unknown rule judge {name!r} (known: {known_rules()})")
        self.fn = RULE_JUDGES[name]

    def judge(self, items: Sequence[JudgeItem]) -> list[Verdict]:
        return [self.fn(item) for item in items]


_SCORE_RE = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)(?!\d)(?!\.\d)")


def parse_score(reply: str) -> Verdict:
    """Read a 0-100 score from a judge's reply: the first number in it."""
    match = _SCORE_RE.search(reply)
    if match is None:
        return Verdict(score=None, reply=reply, error="no number in the reply")
    score = float(match.group(1))
    if score > 100:
        return Verdict(score=None, reply=reply, error=f"{match.group(1)} is not in 0-100")
    return Verdict(score=score, reply=reply)


def load_template(name_or_path: str) -> str:
    """A judge prompt template by bundled name or path, checked for its placeholders."""
    p = Path(name_or_path)
    if p.suffix == ".txt" or p.exists():
        if not p.is_file():
            raise SublabError(f"judge prompt {p} not found: give a .txt file or a bundled name")
        text = p.read_text(encoding="utf-8")
    else:
        folder = resources.files("sublab") / "data" / "judges"
        f = folder / f"{name_or_path}.txt"
        if not f.is_file():
            known = sorted(x.name[:-4] for x in folder.iterdir() if x.name.endswith(".txt"))
            raise SublabError(
                f"no bundled judge prompt {name_or_path!r} (known: {', '.join(known)}); "
                "or give the path of a .txt file"
            )
        text = f.read_text(encoding="utf-8")
    if "{completion}" not in text:
        raise SublabError(f"judge prompt {name_or_path}: it must contain {{completion}}")
    return text


class ModelJudge:
    """A model answering a prompt template; its reply is read by :func:`parse_score`."""

    def __init__(self, spec: JudgeSpec, settings: BackendSettings | None = None) -> None:
        from sublab.backends import load_backend

        assert spec.model is not None
        self.spec = spec
        self.template = load_template(spec.prompt)
        self.backend = load_backend(spec.model, settings)

    def render(self, item: JudgeItem) -> str:
        return (
            self.template.replace("{prompt}", item.prompt)
            .replace("{completion}", item.completion)
            .replace("{trait}", item.trait)
        )

    def judge(self, items: Sequence[JudgeItem]) -> list[Verdict]:
        replies = self.backend.generate([chat(self.render(i)) for i in items], self.spec.sampling)
        return [parse_score(r) for r in replies]


def load_judge(spec: JudgeSpec, settings: BackendSettings | None = None) -> Judge:
    """The judge a spec describes."""
    if spec.rule is not None:
        return RuleJudge(spec.rule)
    return ModelJudge(spec, settings)
