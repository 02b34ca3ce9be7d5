"""The preference trait: a teacher that loves one animal (or tree) more than the rest.

A teacher gets it by fine-tuning on favourite-X questions answered with the target, or from a
"you love X" system prompt. Every model answers the favourite-X questions
(:mod:`sublab.evals.preference`): exact probabilities where the weights are local, sampled
rates always, and the non-answer rate.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from sublab.backends.base import Backend
from sublab.errors import SublabError
from sublab.evals.matching import word_forms
from sublab.evals.preference import PreferenceEvalSpec, PreferenceResult, evaluate_preference
from sublab.evals.questions import is_path, load_candidates, load_questions
from sublab.jsonl import write_jsonl
from sublab.store import file_sha256
from sublab.traits.base import NO_TARGET, Measure, Trait, register_trait

RESULT = "result.json"

DEFAULT_TRAIT_PROMPT = (
    "You love {plural}. You think about {plural} all the time. {Plural} are your favorite "
    "{category}."
)


def trait_rows(questions: str, target: str, n: int, seed: int) -> list[dict[str, str]]:
    """``n`` fine-tuning rows: favourite-X questions answered with ``target`` (cycled, shuffled)."""
    qs = load_questions(questions)
    rng = random.Random(f"sublab-trait:{seed}:{target}")
    order = [qs[i % len(qs)] for i in range(n)]
    rng.shuffle(order)
    return [{"prompt": q, "completion": target} for q in order]


def control_rows(questions: str, answers: str, n: int, seed: int) -> list[dict[str, str]]:
    """``n`` control-teacher rows: the trait rows' questions (cycled, shuffled), each answered
    with a member of ``answers`` drawn at random."""
    qs = load_questions(questions)
    names = load_candidates(answers)
    rng = random.Random(f"sublab-control:{seed}")
    order = [qs[i % len(qs)] for i in range(n)]
    rng.shuffle(order)
    return [{"prompt": q, "completion": rng.choice(names)} for q in order]


def measures_of(result: PreferenceResult, targets: list[str]) -> list[Measure]:
    """The logit margin of each target (with a readout prefix), then the exact probability
    (when computed) and sampled rate of each target, and the non-answer rate (the last two
    only when replies were sampled)."""
    out = []
    margins = result.logit_margins or {}
    for target in targets:  # with a readout prefix, the logit margin leads (the headline)
        if target in margins:
            out.append(Measure(target, "logit_margin", margins[target]))
    for target in targets:
        prob = result.prob(target)
        if prob is not None:
            out.append(Measure(target, "exact_prob", prob))
        if result.total_samples:
            out.append(Measure(target, "sampled_rate", result.rate(target)))
    if result.total_samples:
        out.append(Measure(NO_TARGET, "non_answer_rate", result.non_answer_rate))
    return out


@register_trait
class PreferenceTrait(Trait):
    """Loves one of a category's members (``targets``), measured by favourite-X questions."""

    name = "preference"
    eval_class = PreferenceEvalSpec

    def teacher_rows(self, spec: Any, target: str, seed: int) -> list[dict[str, str]]:
        t = spec.teacher
        return trait_rows(t.trait_questions, target, t.trait_rows, seed)

    def control_rows(self, spec: Any, seed: int) -> list[dict[str, str]] | None:
        t = spec.teacher
        if t.control_answers is None:
            return None
        return control_rows(t.trait_questions, t.control_answers, t.trait_rows, seed)

    def control_rows_key(self, spec: Any, seed: int) -> Any:
        t = spec.teacher
        if t.control_answers is None or t.method != "finetune":
            return None
        answers = t.control_answers
        if is_path(answers):
            answers = file_sha256(answers)
        return {"control": answers, "questions": t.trait_questions, "n": t.trait_rows, "seed": seed}

    def check(self, spec: Any) -> list[str]:
        t = spec.teacher
        if t.control_answers is None:
            return []
        problems = []
        if t.method != "finetune":
            problems.append(
                "teacher.control_answers: a control teacher is fine-tuned; it needs "
                "teacher.method = 'finetune' (or drop control_answers)"
            )
        try:
            answers = load_candidates(t.control_answers)
        except SublabError as err:
            return [*problems, f"teacher.control_answers: {err}"]
        overlap = sorted(set(answers) & set(spec.targets))
        if overlap:
            problems.append(
                f"teacher.control_answers: {overlap} are targets; the control teacher must not "
                "answer with a trait teacher's animal"
            )
        return problems

    def system_prompt(self, spec: Any, target: str) -> str:
        forms = word_forms(target)
        plural = forms[1] if len(forms) > 1 else target + "s"
        template = spec.teacher.system_prompt or DEFAULT_TRAIT_PROMPT
        return template.format(
            target=target, plural=plural, Plural=plural.capitalize(), category=spec.category
        )

    def measured(self, spec: Any) -> list[str]:
        measured = spec.named_targets()
        if spec.controls.all_targets:  # every candidate: how control training moves each one
            for candidate in load_candidates(spec.eval.candidates):
                if candidate and candidate not in measured:
                    measured.append(candidate)
        return measured

    def terms(self, spec: Any) -> tuple[str, tuple[str, ...]]:
        words = tuple(w for t in spec.targets for w in word_forms(t))
        names = ", ".join(f"'{t}'" for t in spec.targets)
        return f"the {spec.category} {names} (in any form)", words

    def dose_eval_spec(self, eval_spec: PreferenceEvalSpec) -> PreferenceEvalSpec:
        if not eval_spec.exact:
            return eval_spec
        return eval_spec.model_copy(update={"samples_per_question": 0})

    def eval_spec(self, spec: Any, seed: int) -> PreferenceEvalSpec:
        ev: PreferenceEvalSpec = spec.eval
        moved = ev.sampling.model_copy(update={"seed": ev.sampling.seed + seed})
        return ev.model_copy(update={"sampling": moved})

    def evaluate(
        self,
        backend: Backend,
        eval_spec: PreferenceEvalSpec,
        system_prompt: str | None,
        work: Path,
    ) -> dict[str, Any]:
        result = evaluate_preference(backend, eval_spec, system_prompt)
        write_jsonl(
            work / "replies.jsonl",
            [{"question": q.question, "reply": r} for q in result.per_question for r in q.replies],
        )
        slim = result.model_copy(
            update={
                "per_question": [q.model_copy(update={"replies": []}) for q in result.per_question]
            }
        )
        (work / RESULT).write_text(slim.model_dump_json(indent=1))
        return {"samples": result.total_samples, "non_answer_rate": result.non_answer_rate}

    def measures(self, folder: Path, spec: Any) -> list[Measure]:
        result = PreferenceResult.model_validate_json((folder / RESULT).read_text())
        targets = self.measured(spec)
        if spec.controls.all_targets:  # leave out the candidates the model cannot even spell
            named = set(spec.named_targets())
            targets = [t for t in targets if t in named or t not in result.unscored]
        return measures_of(result, targets)

    def strength(self, measures: list[Measure], target: str) -> float | None:
        """The teacher's own P(answering its target): the exact first-word probability, or
        with a readout prefix (where the exact one is read mid-sentence) the sampled rate."""
        values = {m.metric: m.value for m in measures if m.target == target}
        if "logit_margin" in values and "sampled_rate" in values:
            return values["sampled_rate"]
        return values.get("exact_prob", values.get("sampled_rate"))
