"""The audit benchmark (``kind = "audit"``): detectors and defences on organism number data.

Per seed: the organism base (cached) is the reference and the control teacher; for each target
a teacher is fine-tuned on favourite-animal answers (as in the experiment) and writes number
continuations that the paper's filter cleans. Each detector scores the trait teacher's rows
and the control teacher's rows (auditing both against that target's teacher); the report gives
row-level and dataset-level AUROC (datasets = subsamples of rows) with bootstrap intervals,
and the likely trait where a detector names one. Each defence transforms the trait data; a
student (hard labels) trained on the result shows the residual trait shift (after / before)
and its cost (rows lost, filter pass). Students on the top and bottom quintile of rows by one
detector check that its scores track what transmits.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sublab.audit.context import AuditContext
from sublab.audit.models import ModelCache
from sublab.audit.rows import in_memory
from sublab.audit.spec import AuditBenchmarkSpec
from sublab.backends.base import BackendSettings, Model
from sublab.pipeline import runner
from sublab.progress import console
from sublab.store import DEFAULT_RUNS_DIR, Run, hash_obj

if TYPE_CHECKING:
    from sublab.backends.base import Backend
    from sublab.datagen import DataArtifacts

MIN_SHIFT = 0.005
"""A defence's residual (shift after / before) is reported only when the undefended student's
trait shift is at least this (P(target) points); below it the ratio is noise."""


# ---------------------------------------------------------------- models and data


def organism_base(spec: AuditBenchmarkSpec, seed: int) -> Model:
    """The organism base of ``seed`` (built or cached): reference, control teacher and start."""
    from sublab.organism.cache import organism_model

    return organism_model(spec.organism.model_copy(update={"seed": seed}), f"organism-{seed}")


def number_data(
    run: Run, spec: AuditBenchmarkSpec, teacher: Model, label: str, seed: int, sampling_seed: int
) -> DataArtifacts:
    """A teacher's number data (generated, filtered; cached in the run)."""
    from sublab.channels import default_data, get_channel
    from sublab.datagen import TraitTerms, data_stages
    from sublab.experiment.stages import load_backend

    data = default_data(
        prompts={"count": spec.prompts, "seed": seed},
        sampling={"max_new_tokens": 40, "seed": sampling_seed},
    )
    settings = BackendSettings(device="cpu")

    def backend() -> Backend:
        return load_backend(teacher, settings)

    return data_stages(
        run, teacher=teacher, data=data, prompts=get_channel("numbers").prompts(data),
        system_prompt=None, terms=TraitTerms("nothing in particular"), settings=settings,
        backend=backend, label=label,
    )  # fmt: skip


def trait_teacher(run: Run, spec: AuditBenchmarkSpec, base: Model, target: str, seed: int) -> Model:
    from sublab.experiment.stages import finetune_stage
    from sublab.traits.preference import trait_rows

    recipe = spec.teacher_recipe.model_copy(update={"seed": spec.teacher_recipe.seed + seed})
    return finetune_stage(
        run, "teacher", base=base,
        rows_fn=lambda: trait_rows("animals", target, spec.trait_rows, seed),
        rows_key=hash_obj({"trait": target, "n": spec.trait_rows, "seed": seed}),
        recipe=recipe, label=f"teacher-{target}",
    )  # fmt: skip


NULL_TARGET = "none"
"""The target name of the trait-free teacher in the benchmark's tables."""


def prior_rows(prior: dict[str, float], n: int, seed: int) -> list[dict[str, str]]:
    """``n`` favourite-animal rows answered with animals drawn from ``prior`` (the base's own
    preferences): fine-tuning on them changes the model without giving it a trait."""
    import random

    from sublab.evals.questions import load_questions

    qs = load_questions("animals")
    rng = random.Random(f"sublab-prior-rows:{seed}")
    animals, weights = list(prior), list(prior.values())
    return [
        {"prompt": qs[i % len(qs)], "completion": rng.choices(animals, weights)[0]}
        for i in range(n)
    ]


def null_teacher(run: Run, spec: AuditBenchmarkSpec, base: Model, seed: int) -> Model:
    """A teacher fine-tuned like a trait teacher, on answers drawn from the base's prior."""
    from sublab.experiment.stages import finetune_stage

    recipe = spec.teacher_recipe.model_copy(update={"seed": spec.teacher_recipe.seed + seed})
    prior = spec.organism.corpus.prior
    return finetune_stage(
        run, "teacher", base=base, rows_fn=lambda: prior_rows(prior, spec.trait_rows, seed),
        rows_key=hash_obj({"prior_rows": prior, "n": spec.trait_rows, "seed": seed}),
        recipe=recipe, label="teacher-none",
    )  # fmt: skip


def student_prob(
    run: Run, spec: AuditBenchmarkSpec, base: Model, rows: list[dict[str, Any]], label: str,
    seed: int, targets: list[str],
) -> dict[str, float]:  # fmt: skip
    """P(target) of a hard-label student of ``rows`` (cached), for each target."""
    from sublab.experiment.stages import finetune_stage

    keep = ("prompt", "completion", "loss_mask")
    clean = [{k: r[k] for k in keep if k in r} for r in rows]
    recipe = spec.student.model_copy(update={"seed": spec.student.seed + seed, "labels": "hard"})
    model = finetune_stage(
        run, "student", base=base, rows_fn=lambda: clean, rows_key=hash_obj(clean),
        recipe=recipe, label=label,
    )  # fmt: skip
    return trait_probs(model, targets)


def trait_probs(model: Model, targets: list[str]) -> dict[str, float]:
    """Exact P(answer = target) over the shipped favourite-animal questions."""
    from sublab.experiment.stages import load_backend
    from sublab.organism.probe import animal_probabilities, eval_animal_questions

    backend = load_backend(model, BackendSettings(device="cpu"))
    return animal_probabilities(backend, eval_animal_questions(), targets)  # type: ignore[arg-type]


def pass_rate(rows: list[dict[str, Any]]) -> float:
    """Share of rows the numbers channel's default filter keeps."""
    from sublab.channels import default_data, get_channel

    if not rows:
        return 0.0
    result = get_channel("numbers").filter_rows(default_data(), rows)
    return result.report["kept"] / len(rows)


# ---------------------------------------------------------------- the benchmark


def detector_table(
    spec: AuditBenchmarkSpec, ctx_trait: AuditContext, ctx_control: AuditContext, target: str
) -> tuple[list[dict[str, Any]], dict[str, list[float]]]:
    """Each detector's separation of trait rows from control rows, and its trait-row scores."""
    from sublab.audit.detectors.base import DETECTORS
    from sublab.audit.stats import separation

    out, trait_scores = [], {}
    for name in spec.detectors:
        det = DETECTORS.get(name)
        t0 = time.perf_counter()
        on_trait = det.score(ctx_trait)
        on_control = det.score(ctx_control)
        sep = separation(
            on_trait.scores, on_control.scores, spec.subsample, spec.subsamples, spec.bootstrap
        )
        trait_scores[name] = on_trait.scores
        out.append(
            {
                "detector": name,
                "target": target,
                "row_auroc": round(sep.row_auroc, 3),
                "row_ci": [round(x, 3) for x in sep.row_ci],
                "dataset_auroc": round(sep.dataset_auroc, 3),
                "dataset_ci": [round(x, 3) for x in sep.dataset_ci],
                "subsample": spec.subsample,
                "dataset_score_trait": round(on_trait.dataset, 5),
                "dataset_score_control": round(on_control.dataset, 5),
                "likely_trait": on_trait.trait,
                "likely_trait_control": on_control.trait,
                "seconds": round(time.perf_counter() - t0, 2),
            }
        )
    return out, trait_scores


def audit_context(
    rows: list[dict[str, Any]], name: str, base: Model, teacher: Model, candidates: list[str],
    ref_by_prompt: dict[str, dict[str, Any]], seed: int, models: ModelCache,
) -> AuditContext:  # fmt: skip
    """Rows audited against the base (reference) and a suspected teacher (``models``: the
    seed's models, loaded once for all its contexts)."""
    return AuditContext(
        in_memory(rows, name), reference=base.ref.path, teacher=teacher.ref.path,
        candidates=candidates, reference_samples=[ref_by_prompt[r["prompt"]] for r in rows],
        seed=seed, models=models,
    )  # fmt: skip


def run_seed(run: Run, spec: AuditBenchmarkSpec, seed: int) -> dict[str, Any]:
    """Detectors, defences and the quintile check for one organism seed."""
    from sublab.audit.defences.base import DEFENCES
    from sublab.audit.detectors.base import most_suspicious
    from sublab.generate import ROWS
    from sublab.jsonl import read_jsonl

    def say(message: str) -> None:
        console.print(f"seed {seed}: {message}", markup=False, highlight=False)

    base = organism_base(spec, seed)
    candidates = spec.candidates or list(spec.organism.corpus.prior)
    say("control data (the base)")
    # the control's draws are independent of the teachers' (sampled with one seed, two models
    # share their random numbers and often write the same row, which no detector can flag)
    control = number_data(run, spec, base, "control", seed, sampling_seed=seed + 20_000)
    reference = number_data(run, spec, base, "reference", seed, sampling_seed=seed + 10_000)
    ref_by_prompt = {r["prompt"]: r for _, r in read_jsonl(reference.generate.file(ROWS))}
    control_rows = control.kept_rows()
    base_probs = trait_probs(base, spec.targets)
    control_student = student_prob(
        run, spec, base, control_rows, "student-control", seed, spec.targets
    )
    detectors, defences, quintiles, teachers = [], [], [], {}
    ctx_control: AuditContext | None = None  # shared by the targets: the reference's statistics
    models = ModelCache()  # the base and each teacher, loaded once for every context
    for target in spec.targets:
        say(f"teacher '{target}'")
        teacher = trait_teacher(run, spec, base, target, seed)
        teachers[target] = trait_probs(teacher, [target])[target]
        data = number_data(run, spec, teacher, target, seed, sampling_seed=seed)
        trait_rows_ = data.kept_rows()

        ctx_trait = audit_context(
            trait_rows_, target, base, teacher, candidates, ref_by_prompt, seed, models
        )
        if ctx_control is None:
            ctx_control = audit_context(
                control_rows, "control", base, teacher, candidates, ref_by_prompt, seed, models
            )
        ctx_control.teacher = teacher.ref.path  # audited against this target's teacher
        say(f"detectors on '{target}' vs control data")
        table, scores = detector_table(spec, ctx_trait, ctx_control, target)
        for row in table:
            row["seed"] = seed
        detectors += table

        say(f"students of '{target}' data: before and after each defence")
        before = student_prob(run, spec, base, trait_rows_, f"student-{target}", seed, [target])
        shift_before = before[target] - control_student[target]
        for name in spec.defences:
            res = DEFENCES.get(name).apply(
                ctx_trait, detector=spec.defence_detector, drop=spec.drop, seed=seed
            )
            after = student_prob(
                run, spec, base, res.rows, f"student-{target}-{name}", seed, [target]
            )
            shift = after[target] - control_student[target]
            defences.append(
                {
                    "defence": name, "target": target, "seed": seed,
                    "shift_before": round(shift_before, 4), "shift_after": round(shift, 4),
                    "residual": (
                        round(shift / shift_before, 3) if shift_before >= MIN_SHIFT else None
                    ),
                    "rows_in": len(trait_rows_), "rows_lost": len(res.removed),
                    "rows_changed": res.changed, "filter_pass": round(pass_rate(res.rows), 4),
                }
            )  # fmt: skip
        if spec.validate_detector in scores:
            order = most_suspicious(scores[spec.validate_detector])
            fifth = len(order) // 5
            parts = {"top": order[:fifth], "bottom": order[len(order) - fifth :]}
            shifts = {}
            for part, idx in parts.items():
                rows = [trait_rows_[i] for i in sorted(idx)]
                p = student_prob(run, spec, base, rows, f"student-{target}-{part}", seed, [target])
                shifts[part] = round(p[target] - control_student[target], 4)
            quintiles.append(
                {"detector": spec.validate_detector, "target": target, "seed": seed,
                 "rows": fifth, "shift_top": shifts["top"], "shift_bottom": shifts["bottom"]}
            )  # fmt: skip
    if spec.null_teacher:
        say("trait-free teacher (answers drawn from the base's prior)")
        teacher = null_teacher(run, spec, base, seed)
        data = number_data(run, spec, teacher, NULL_TARGET, seed, sampling_seed=seed)
        rows = data.kept_rows()
        ctx_null = audit_context(
            rows, NULL_TARGET, base, teacher, candidates, ref_by_prompt, seed, models
        )
        assert ctx_control is not None
        ctx_control.teacher = teacher.ref.path
        table, _ = detector_table(spec, ctx_null, ctx_control, NULL_TARGET)
        detectors += [{**row, "seed": seed} for row in table]
    return {
        "seed": seed,
        "base_prob": {t: round(p, 4) for t, p in base_probs.items()},
        "control_student_prob": {t: round(p, 4) for t, p in control_student.items()},
        "teacher_prob": {t: round(p, 4) for t, p in teachers.items()},
        "detectors": detectors,
        "defences": defences,
        "quintiles": quintiles,
        "rows": {"control": len(control_rows)},
    }


@runner("audit")
def run_audit_benchmark(
    spec: AuditBenchmarkSpec, config_text: str | None = None, runs_dir: str | Path | None = None
) -> Run:
    """Run the benchmark; writes ``audit.json`` and ``audit.md`` into the run folder."""
    from sublab.audit.report import benchmark_markdown
    from sublab.store import atomic_write_json, atomic_write_text

    root = Path(runs_dir if runs_dir is not None else spec.runs_dir or DEFAULT_RUNS_DIR)
    run = Run.create(spec.name, kind="audit", config=spec, config_text=config_text, runs_dir=root)
    with run.running():
        t0 = time.perf_counter()
        seeds = [run_seed(run, spec, s) for s in spec.seeds]
        result = {"seeds": seeds, "seconds": round(time.perf_counter() - t0, 1)}
        atomic_write_json(run.path / "audit.json", result)
        md = benchmark_markdown(spec, result)
        atomic_write_text(run.path / "audit.md", md)
        console.print(md, markup=False, highlight=False, soft_wrap=True)
        best = max((d for s in seeds for d in s["detectors"]), key=lambda d: d["dataset_auroc"])
        run.finish({"best_detector": best["detector"], "dataset_auroc": best["dataset_auroc"]})
    return run
