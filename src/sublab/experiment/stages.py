"""The experiment's cached stages: each a ``Run.build`` over a typed spec and its inputs' keys.

Every model is a :class:`Model`: a reference the backends can load plus a key that identifies
its weights (an organism spec hash, a weights hash, or the artifact key that produced it), so
that any artifact computed from a model is keyed by that model.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sublab.backends.base import Backend, ModelRef, SamplingSpec
from sublab.evals.preference import PreferenceEvalSpec, PreferenceResult, evaluate_preference
from sublab.evals.questions import load_questions
from sublab.jsonl import read_jsonl, write_jsonl
from sublab.numbers.filter import FilterSpec, filter_rows, write_filter_outputs
from sublab.pipeline import BackendSettings
from sublab.store import Artifact, Run, hash_obj
from sublab.train.recipe import StudentRecipe

MODEL_DIR = "model"
RESULT = "result.json"


@dataclass(frozen=True)
class Model:
    """A model the experiment uses: how to load it and the key of its weights."""

    ref: ModelRef
    key: str
    label: str


def load_backend(model: Model, settings: BackendSettings) -> Backend:
    """An HF backend for ``model`` with the experiment's device settings."""
    from sublab.backends.hf import HFBackend

    backend = HFBackend(
        model.ref, device=settings.device, dtype=settings.dtype, batch_size=settings.batch_size
    )
    backend.show_progress = False
    return backend


def trained_model(art: Artifact, base: Model, label: str) -> Model:
    """The model a training artifact holds: a full folder, or an adapter on ``base``."""
    folder = art.path / MODEL_DIR
    if (folder / "adapter_config.json").exists() and not (folder / "config.json").exists():
        ref = ModelRef(path=base.ref.path, adapter=str(folder))
    else:
        ref = ModelRef(path=str(folder))
    return Model(ref=ref, key=art.key, label=label)


def trait_rows(questions: str, target: str, n: int, seed: int) -> list[dict[str, str]]:
    """``n`` fine-tuning rows: favourite-X questions answered with ``target`` (cycled, shuffled)."""
    qs = load_questions(questions)
    rng = random.Random(f"sublab-trait:{seed}:{target}")
    order = [qs[i % len(qs)] for i in range(n)]
    rng.shuffle(order)
    return [{"prompt": q, "completion": target} for q in order]


def finetune_stage(
    run: Run,
    stage: str,
    *,
    base: Model,
    rows_fn: Callable[[], list[dict[str, Any]]],
    rows_key: str,
    recipe: StudentRecipe,
    label: str,
    teacher: Model | None = None,
    teacher_system_prompt: str | None = None,
) -> Model:
    """Fine-tune ``base`` on rows (cached); soft labels distil ``teacher``, which reads each row
    with ``teacher_system_prompt`` when given (a prompted teacher; the student reads none)."""
    from sublab.train.loop import finetune

    def make(work: Path) -> dict[str, Any]:
        res = finetune(
            base.ref.path,
            rows_fn(),
            recipe,
            work / MODEL_DIR,
            teacher=None if teacher is None else teacher.ref.path,
            teacher_system_prompt=teacher_system_prompt,
        )
        return {"rows_used": res.rows_used, "steps": res.steps, "final_loss": res.losses[-1]}

    inputs = [base.key, rows_key] + ([teacher.key] if teacher is not None else [])
    spec: dict[str, Any] = {"recipe": recipe, "label": label}
    if teacher_system_prompt is not None:  # absent otherwise: earlier students keep their keys
        spec["teacher_system_prompt"] = teacher_system_prompt
    art = run.build(stage, spec, make, inputs=inputs, seeds={"train": recipe.seed})
    return trained_model(art, base, label)


def numbers_stage(
    run: Run,
    *,
    teacher: Model,
    system_prompt: str | None,
    prompts: list[str],
    sampling: SamplingSpec,
    filter_spec: FilterSpec,
    settings: BackendSettings,
    chunk_size: int,
    label: str,
) -> tuple[Artifact, Artifact]:
    """The teacher's number completions (resumable) and the filter's verdict on them."""
    from sublab.generate import ROWS, generate_rows

    def generate(work: Path) -> dict[str, Any]:
        backend = load_backend(teacher, settings)
        out = generate_rows(
            backend,
            prompts,
            system_prompt=system_prompt,
            sampling=sampling,
            work_dir=work,
            chunk_size=chunk_size,
            provenance={"teacher": teacher.label, "label": label},
        )
        (work / "plan.json").unlink(missing_ok=True)
        return {"rows": sum(1 for _ in out.open(encoding="utf-8"))}

    gen_spec = {
        "system_prompt": system_prompt,
        "prompts_sha256": hash_obj(prompts),
        "sampling": sampling,
        "backend": settings,
        "chunk_size": chunk_size,
        "label": label,
    }
    gen = run.build(
        "generate",
        gen_spec,
        generate,
        inputs=[teacher.key],
        seeds={"sampling": sampling.seed},
        resumable=True,
    )

    def filter_(work: Path) -> dict[str, Any]:
        result = filter_rows([r for _, r in read_jsonl(gen.file(ROWS))], filter_spec)
        write_filter_outputs(result, work)
        r = result.report
        return {"total": r["total"], "kept": r["kept"], "rejected": r["rejected"]}

    filt = run.build("filter", filter_spec, filter_, inputs=[gen.key])
    return gen, filt


def kept_rows(filt: Artifact) -> list[dict[str, str]]:
    """The filter's kept rows as training rows: prompt and completion only, no system prompt."""
    return [
        {"prompt": r["prompt"], "completion": r["completion"]}
        for _, r in read_jsonl(filt.file("kept.jsonl"))
    ]


def eval_stage(
    run: Run,
    *,
    model: Model,
    spec: PreferenceEvalSpec,
    settings: BackendSettings,
    system_prompt: str | None = None,
) -> PreferenceResult:
    """The preference evaluation of ``model`` (cached as result.json)."""

    def make(work: Path) -> dict[str, Any]:
        result = evaluate_preference(load_backend(model, settings), spec, system_prompt)
        write_jsonl(work / "replies.jsonl", _reply_rows(result))
        slim = result.model_copy(
            update={
                "per_question": [q.model_copy(update={"replies": []}) for q in result.per_question]
            }
        )
        (work / RESULT).write_text(slim.model_dump_json(indent=1))
        return {"samples": result.total_samples, "non_answer_rate": result.non_answer_rate}

    art = run.build(
        "eval",
        {"eval": spec, "system_prompt": system_prompt, "settings": settings},
        make,
        inputs=[model.key],
        seeds={"sampling": spec.sampling.seed},
    )
    return PreferenceResult.model_validate_json(art.file(RESULT).read_text())


def _reply_rows(result: PreferenceResult) -> list[dict[str, Any]]:
    return [{"question": q.question, "reply": r} for q in result.per_question for r in q.replies]


STRENGTH_ROWS = 1000
"""Kept rows the teacher strength is measured on (the first ones; prompts come in random order).
A thousand rows hold ~13,000 completion tokens: on the demo's three owl teachers the KL over
them was within 3% of the KL over all 2,250–2,510 kept rows (0.126 vs 0.127, 0.099 vs 0.100,
0.161 vs 0.157 nats) at 40–45% of the cost."""


def strength_stage(run: Run, *, teacher: Model, base: Model, filt: Artifact) -> float:
    """KL(teacher ‖ base) per token on the teacher's kept number completions (nats), over the
    first :data:`STRENGTH_ROWS` of them."""
    from sublab.train.strength import number_kl

    def make(work: Path) -> dict[str, Any]:
        rows = kept_rows(filt)[:STRENGTH_ROWS]
        kl = number_kl(teacher.ref.path, base.ref.path, rows)
        (work / "strength.json").write_text(json.dumps({"number_kl": kl, "rows": len(rows)}))
        return {"number_kl": kl, "rows": len(rows)}

    spec = {"metric": "number_kl", "rows": STRENGTH_ROWS}
    art = run.build("strength", spec, make, inputs=[teacher.key, base.key, filt.key])
    return float(art.sidecar["counts"]["number_kl"])
