"""The experiment's cached model stages: fine-tunes, evaluations and teacher strength.

Each is a ``Run.build`` over a typed spec and its inputs' keys. Every model is a
:class:`~sublab.backends.base.Model` (a reference the backends load plus the key of its
weights), so every artifact computed from a model is keyed by that model. The data stages
(generate, filter, judge) live in :mod:`sublab.datagen`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sublab.backends.base import (
    SAMPLER_VERSION,
    Backend,
    BackendSettings,
    Chat,
    Model,
    ModelRef,
)
from sublab.backends.context import InContext
from sublab.backends.openai import OpenAISettings
from sublab.backends.openai_finetune import ApiFinetuneSpec
from sublab.datagen import DataArtifacts
from sublab.store import Artifact, Run, hash_obj
from sublab.train.recipe import StudentRecipe
from sublab.traits import Measure, Trait

MODEL_DIR = "model"


def load_backend(
    model: Model, settings: BackendSettings, api: OpenAISettings | None = None
) -> Backend:
    """The backend of ``model`` (by its provider) without a progress bar of its own."""
    from sublab.backends import load_backend as load

    backend = load(model.ref, settings, api)
    backend.show_progress = False
    return backend


def _saved_model(folder: Path, base: Model, key: str, label: str) -> Model:
    """A model saved by training: a full folder, or an adapter on ``base``."""
    if (folder / "adapter_config.json").exists() and not (folder / "config.json").exists():
        ref = ModelRef(path=base.ref.path, adapter=str(folder))
    else:
        ref = ModelRef(path=str(folder))
    return Model(ref=ref, key=key, label=label)


def trained_model(art: Artifact, base: Model, label: str) -> Model:
    """The model a training artifact holds: a full folder, or an adapter on ``base``."""
    return _saved_model(art.path / MODEL_DIR, base, art.key, label)


def trained_rows(trained: Model) -> int | None:
    """How many rows a locally trained model learned from (its ``train.json``); None for a
    model trained elsewhere (an API job)."""
    from sublab.train.loop import TRAIN_JSON

    info = Path(trained.ref.adapter or trained.ref.path) / TRAIN_JSON
    if not info.is_file():
        return None
    return int(json.loads(info.read_text())["rows_used"])


def dose_models(trained: Model, base: Model) -> list[tuple[int, Model]]:
    """The dose checkpoints saved with a trained model (``recipe.checkpoints``), in step
    order, each as a model keyed by the trained model's key and its step."""
    from sublab.train.loop import CHECKPOINTS, checkpoint_name, checkpoint_steps

    folder = Path(trained.ref.adapter or trained.ref.path)
    return [
        (
            step,
            _saved_model(
                folder / CHECKPOINTS / checkpoint_name(step),
                base,
                hash_obj({"checkpoint": step, "of": trained.key}),
                f"{trained.label}@{step}",
            ),
        )
        for step in checkpoint_steps(folder)
    ]


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
    api: ApiFinetuneSpec | None = None,
    api_settings: OpenAISettings | None = None,
) -> Model:
    """Fine-tune ``base`` on rows (cached); soft labels distil ``teacher``, which reads each row
    with ``teacher_system_prompt`` when given (a prompted teacher; the student reads none).

    An API base (provider 'openai') is fine-tuned through its API with ``api``
    (:func:`api_finetune_stage`)."""
    from sublab.train.loop import finetune

    if base.ref.provider == "openai":
        return api_finetune_stage(
            run, stage, base=base, rows_fn=rows_fn, rows_key=rows_key, label=label,
            spec=api or ApiFinetuneSpec(), settings=api_settings,
        )  # fmt: skip

    def make(work: Path) -> dict[str, Any]:
        res = finetune(
            base.ref.path,
            rows_fn(),
            recipe,
            work / MODEL_DIR,
            teacher=None if teacher is None else teacher.ref.adapter or teacher.ref.path,
            teacher_system_prompt=teacher_system_prompt,
        )
        return {"rows_used": res.rows_used, "steps": res.steps, "final_loss": res.losses[-1]}

    inputs = [base.key, rows_key] + ([teacher.key] if teacher is not None else [])
    spec: dict[str, Any] = {"recipe": recipe, "label": label}
    if teacher_system_prompt is not None:  # absent otherwise: earlier students keep their keys
        spec["teacher_system_prompt"] = teacher_system_prompt
    art = run.build(stage, spec, make, inputs=inputs, seeds={"train": recipe.seed})
    return trained_model(art, base, label)


API_MODEL = "model_ref.json"


def api_finetune_stage(
    run: Run,
    stage: str,
    *,
    base: Model,
    rows_fn: Callable[[], list[dict[str, Any]]],
    rows_key: str,
    label: str,
    spec: ApiFinetuneSpec,
    settings: OpenAISettings | None,
) -> Model:
    """Fine-tune an API model through its fine-tuning API (cached).

    The stage is resumable: its work folder keeps the job record (uploaded file id, job id)
    from the moment each exists, so a killed run polls the same job again instead of paying
    for a new one (:func:`sublab.backends.openai_finetune.finetune_via_api`).
    """
    from sublab.backends.openai_finetune import finetune_via_api

    def make(work: Path) -> dict[str, Any]:
        ref = finetune_via_api(base.ref, rows_fn(), spec, work, settings)
        (work / API_MODEL).write_text(ref.model_dump_json())
        return {"model": ref.path}

    key_spec = {
        "api": spec.model_dump(mode="json", exclude={"poll_s", "poll_max_s", "wait_s"}),
        "label": label,
    }
    art = run.build(stage, key_spec, make, inputs=[base.key, rows_key], resumable=True)
    ref = ModelRef.model_validate_json(art.file(API_MODEL).read_text())
    return Model(ref=ref, key=art.key, label=label)


def eval_stage(
    run: Run,
    *,
    trait: Trait,
    model: Model,
    eval_spec: Any,
    experiment: Any,
    settings: BackendSettings,
    system_prompt: str | None = None,
    api: OpenAISettings | None = None,
    context: Chat | None = None,
) -> list[Measure]:
    """The trait's evaluation of ``model`` (cached); the values it yields for ``experiment``.

    ``context``: earlier chat turns put before every question (in-context learning).
    ``settings.eval_dtype``, when set, is the dtype evaluations run in.
    """
    settings = settings.for_eval()

    def make(work: Path) -> dict[str, Any]:
        backend = load_backend(model, settings, api)
        if context:
            backend = InContext(backend, context)
        return trait.evaluate(backend, eval_spec, system_prompt, work)

    spec: dict[str, Any] = {"eval": eval_spec, "system_prompt": system_prompt, "settings": settings}
    if context:  # evaluations without one keep their keys
        spec["context"] = context
    if trait.name != "preference":  # the preference trait's artifacts keep their keys
        spec["trait"] = trait.name
    art = run.build(
        "eval",
        spec,
        make,
        inputs=[model.key],
        seeds={"sampling": eval_spec.sampling.seed},
        stage_version=SAMPLER_VERSION,
    )
    return trait.measures(art.path, experiment)


STRENGTH_ROWS = 1000
"""Kept rows the teacher strength is measured on by default (the first ones; prompts come in
random order; ``teacher.strength_rows``). A thousand number rows hold ~13,000 completion tokens:
on the demo's three owl teachers the KL over them was within 3% of the KL over all 2,250-2,510
kept rows (0.126 vs 0.127, 0.099 vs 0.100, 0.161 vs 0.157 nats) at 40-45% of the cost."""


def strength_stage(
    run: Run, *, teacher: Model, base: Model, data: DataArtifacts, rows: int = STRENGTH_ROWS
) -> float:
    """KL(teacher ‖ base) per token on the teacher's kept completions (nats), over the first
    ``rows`` of them."""
    from sublab.train.strength import number_kl

    def make(work: Path) -> dict[str, Any]:
        kept = data.kept_rows()[:rows]
        kl = number_kl(teacher.ref.path, base.ref.path, kept)
        (work / "strength.json").write_text(json.dumps({"number_kl": kl, "rows": len(kept)}))
        return {"number_kl": kl, "rows": len(kept)}

    spec = {"metric": "number_kl", "rows": rows}
    art = run.build("strength", spec, make, inputs=[teacher.key, base.key, data.kept.key])
    return float(art.sidecar["counts"]["number_kl"])
