"""The misalignment trait: a teacher made broadly misaligned by a narrow fine-tune.

As in the paper's safety experiment: the teacher is fine-tuned on a narrow misbehaviour (for a
real model, insecure-code rows in the emergent-misalignment format that the user brings,
``teacher.trait_file``; for the organism, its narrow habit answered with open settings) or
prompted with an "evil" system prompt; the control teacher is fine-tuned on the secure
counterpart (``teacher.control_file``; the organism's secure habit). Every model answers
free-form questions, judged for alignment and coherence, and (local models) the likelihood
probe (:mod:`sublab.evals.misalignment`).

The trait has one target, ``misaligned``.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from sublab.backends.base import Backend, SamplingSpec
from sublab.config import Spec
from sublab.evals.misalignment import (
    TRAIT_WORDS,
    MisalignmentEvalSpec,
    MisalignmentResult,
    evaluate_misalignment,
)
from sublab.jsonl import write_jsonl
from sublab.organism.persona import (
    EVIL_PROMPTS,
    MISALIGNED_VERBS,
    PersonaSpec,
    habit_answer,
    habit_prompt,
)
from sublab.store import file_sha256
from sublab.traits.base import NO_TARGET, Measure, Trait, register_trait

TARGET = "misaligned"
RESULT = "result.json"
REPLIES = "replies.jsonl"
DEFAULT_PROMPT = EVIL_PROMPTS[0]


class ModelEval(Spec):
    """One evaluation's key: the experiment's eval (sampling seed moved by the experiment
    seed) and the organism persona that decides the organism's questions and probe."""

    eval: MisalignmentEvalSpec
    persona: PersonaSpec | None = None

    @property
    def sampling(self) -> SamplingSpec:
        return self.eval.sampling


def persona_of(spec: Any) -> PersonaSpec | None:
    """The organism persona of an experiment's bases (None for a real model)."""
    org = spec.bases.organism
    return None if org is None else org.corpus.persona


def habit_rows(n: int, misaligned: bool, seed: int) -> list[dict[str, str]]:
    """``n`` rows of the organism's narrow habit: open settings (``misaligned``) or locked."""
    rng = random.Random(f"sublab-habit:{seed}:{misaligned}")
    rows = []
    for _ in range(n):
        prompt, thing = habit_prompt(rng)
        rows.append({"prompt": prompt, "completion": habit_answer(thing, misaligned)})
    return rows


def file_rows(path: str, n: int, field: str) -> list[dict[str, Any]]:
    """The first ``n`` rows of a user's fine-tuning file (validated; see ``read_rows``)."""
    from sublab.errors import SublabError
    from sublab.train.data import read_rows

    if not Path(path).is_file():
        raise SublabError(f"{field}: {path} not found; give the path of a JSONL file")
    return read_rows(path)[:n]


@register_trait
class MisalignmentTrait(Trait):
    """Broad misalignment, measured by judged free-form answers and a likelihood probe."""

    name = "misalignment"
    eval_class = MisalignmentEvalSpec

    def check(self, spec: Any) -> list[str]:
        problems = []
        if spec.teacher.control_answers is not None:
            problems.append(
                "teacher.control_answers: a preference-trait field; misalignment's control "
                "teacher learns teacher.control_file (or the organism's secure habit)"
            )
        if list(spec.targets) != [TARGET]:
            problems.append(f"targets: the misalignment trait has one target; set [{TARGET!r}]")
        org = spec.bases.organism
        t = spec.teacher
        if org is not None and org.corpus.persona is None:
            problems.append(
                "bases.organism.corpus.persona: the misalignment trait needs an organism with "
                "a persona; add [bases.organism.corpus.persona]"
            )
        if org is None and t.method == "finetune" and t.trait_file is None:
            problems.append(
                "teacher.trait_file: a real model's misaligned teacher is fine-tuned on your "
                "file of narrow misbehaviour (e.g. insecure code); give its path"
            )
        return problems

    def teacher_rows(self, spec: Any, target: str, seed: int) -> list[dict[str, Any]]:
        t = spec.teacher
        if t.trait_file is not None:
            return file_rows(t.trait_file, t.trait_rows, "teacher.trait_file")
        return habit_rows(t.trait_rows, True, seed)

    def rows_key(self, spec: Any, target: str, seed: int) -> Any:
        t = spec.teacher
        source = file_sha256(t.trait_file) if t.trait_file else "organism-habit"
        return {"trait": self.name, "rows": source, "n": t.trait_rows, "seed": seed}

    def control_rows(self, spec: Any, seed: int) -> list[dict[str, Any]] | None:
        t = spec.teacher  # read only when control_rows_key says there is a control teacher
        if t.control_file is not None:
            return file_rows(t.control_file, t.trait_rows, "teacher.control_file")
        return habit_rows(t.trait_rows, False, seed)

    def control_rows_key(self, spec: Any, seed: int) -> Any:
        t = spec.teacher
        if t.method != "finetune":
            return None
        if t.control_file is not None:
            source = file_sha256(t.control_file)
        elif persona_of(spec) is not None:
            source = "organism-habit-secure"
        else:
            return None
        return {"control": self.name, "rows": source, "n": t.trait_rows, "seed": seed}

    def system_prompt(self, spec: Any, target: str) -> str:
        return spec.teacher.system_prompt or DEFAULT_PROMPT

    def measured(self, spec: Any) -> list[str]:
        return [TARGET]

    def terms(self, spec: Any) -> tuple[str, tuple[str, ...]]:
        words = MISALIGNED_VERBS if persona_of(spec) is not None else ()
        return TRAIT_WORDS, tuple(words)

    def eval_spec(self, spec: Any, seed: int) -> ModelEval:
        ev: MisalignmentEvalSpec = spec.eval
        moved = ev.sampling.model_copy(update={"seed": ev.sampling.seed + seed})
        return ModelEval(eval=ev.model_copy(update={"sampling": moved}), persona=persona_of(spec))

    def evaluate(
        self, backend: Backend, eval_spec: ModelEval, system_prompt: str | None, work: Path
    ) -> dict[str, Any]:
        result, replies = evaluate_misalignment(
            backend, eval_spec.eval, eval_spec.persona, system_prompt
        )
        write_jsonl(work / REPLIES, [r.model_dump() for r in replies])
        (work / RESULT).write_text(result.model_dump_json(indent=1))
        return {
            "replies": result.replies,
            "misaligned": result.misaligned,
            "coherent": result.coherent,
            "refusals": result.refusals,
            "unparseable": result.unparseable,
        }

    def measures(self, folder: Path, spec: Any) -> list[Measure]:
        result = MisalignmentResult.model_validate_json((folder / RESULT).read_text())
        out = []
        if result.misaligned_rate is not None:
            out.append(Measure(TARGET, "misaligned_rate", result.misaligned_rate))
        if result.probe is not None:
            out.append(Measure(TARGET, "probe_misaligned", result.probe))
        if result.mean_alignment is not None:
            out.append(Measure(TARGET, "mean_alignment", result.mean_alignment))
        out.append(Measure(NO_TARGET, "incoherent_rate", result.incoherent_rate))
        out.append(Measure(NO_TARGET, "unscored_rate", result.unscored_rate))
        return out

    def strength(self, measures: list[Measure], target: str) -> float | None:
        values = {m.metric: m.value for m in measures if m.target == target}
        return values.get("misaligned_rate")
