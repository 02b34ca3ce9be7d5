"""Stages wired together: the numbers pipeline (teacher → generate → filter) and ``sublab run``.

A ``kind = "numbers"`` config names a teacher (a model and optionally a system prompt), the
prompt spec, the sampling and the filter. ``run_numbers`` builds two cached artifacts in the
run directory:

- ``generate-<key>/rows.jsonl``: one completion per prompt, with provenance. Resumable: a crash
  keeps ``generate-<key>.partial/`` and the next run picks up at the first missing chunk. The
  key covers the teacher (and the sha256 of its local weights), the prompts, the sampling and
  the backend settings that change the samples.
- ``filter-<key>/``: ``kept.jsonl``, ``rejected.jsonl``, ``filter_report.json`` and ``.md``;
  its key covers the filter spec and the generate key, so changing a filter field re-runs
  only this stage.

``sublab run CONFIG.toml`` validates the whole config and dispatches on its kind through
:data:`RUNNERS`; other pipelines register theirs with :func:`runner`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import Field

from sublab.backends.base import Backend, ModelRef, SamplingSpec
from sublab.backends.openai import OpenAISettings
from sublab.config import SafeName, Spec, config_kind, kind_of, load_config
from sublab.errors import SublabError
from sublab.numbers.filter import FilterSpec, filter_rows, read_filter_input, write_filter_outputs
from sublab.numbers.prompts import NumberPromptSpec, make_prompts
from sublab.store import Artifact, Run, artifact_key, file_sha256


class TeacherSpec(Spec):
    """The model that generates the data, and how its trait got in."""

    model: ModelRef = Field(description="The teacher's weights (local folder or hub id).")
    system_prompt: str | None = Field(
        None, description="System prompt given with every prompt (a prompted teacher), if any."
    )
    label: str = Field(description="Short name of the trait, e.g. 'owl' or 'control'.")


class BackendSettings(Spec):
    """Where and how the teacher runs (these change the samples, so they are in the key)."""

    device: str = Field("auto", description="'auto' (cuda if available, else cpu), 'cpu', 'cuda'.")
    dtype: str = Field(
        "auto", description="'auto' (bf16 on cuda, float32 on cpu), 'float32', 'bfloat16'."
    )
    batch_size: int = Field(64, ge=1, description="Prompts sampled together in one batch.")


@config_kind("numbers")
class NumbersPipelineSpec(Spec):
    """A teacher generates number continuations; the paper's filter keeps the clean ones."""

    name: SafeName = Field(description="Run name: the folder runs_dir/name holds every artifact.")
    runs_dir: str = Field("runs", description="Folder that holds run directories.")
    teacher: TeacherSpec = Field(description="The model that writes the numbers.")
    prompts: NumberPromptSpec = Field(
        default_factory=NumberPromptSpec, description="Which number prompts to ask."
    )
    sampling: SamplingSpec = Field(
        default_factory=SamplingSpec, description="How completions are sampled."
    )
    filter: FilterSpec = Field(
        default_factory=FilterSpec, description="Which completions are kept."
    )
    backend: BackendSettings = Field(
        default_factory=BackendSettings, description="Device, dtype and batch size."
    )
    api: OpenAISettings = Field(
        default_factory=OpenAISettings,
        description="For a teacher with provider = 'openai': the API key's variable name, "
        "concurrency, retries (not in the artifact key: they do not change what is sampled).",
    )
    chunk_size: int = Field(
        256, ge=1, description="Rows per chunk file; a crash loses at most one chunk of work."
    )


# ---------------------------------------------------------------- runners

R = TypeVar("R", bound=Callable[..., Run])
RUNNERS: dict[str, Callable[..., Run]] = {}
"""``kind`` -> function ``(spec, config_text=None, runs_dir=None) -> Run``."""


def runner(kind: str) -> Callable[[R], R]:
    """Register the function that runs configs of ``kind`` (used by ``sublab run``)."""

    def register(fn: R) -> R:
        RUNNERS[kind] = fn
        return fn

    return register


def run_config(
    path: str | Path, runs_dir: str | Path | None = None, ray_address: str | None = None
) -> Run:
    """Validate the config at ``path`` (every problem at once), then run it by its kind;
    ``ray_address`` runs it on Ray (see :func:`sublab.experiment.ray_exec.with_ray_address`)."""
    spec = load_config(path)
    kind = kind_of(spec)
    if kind not in RUNNERS:
        known = ", ".join(sorted(RUNNERS)) or "none"
        raise SublabError(f"{path}: kind {kind!r} cannot be run yet (runnable kinds: {known})")
    if ray_address is not None:
        from sublab.experiment.ray_exec import with_ray_address

        spec = with_ray_address(spec, ray_address, path)
    text = Path(path).read_text(encoding="utf-8")
    return RUNNERS[kind](spec, config_text=text, runs_dir=runs_dir)


# ---------------------------------------------------------------- numbers pipeline


def weights_sha256(path: str | Path) -> dict[str, str]:
    """sha256 of each ``*.safetensors`` file in a local model (or adapter) folder; {} if remote."""
    p = Path(path)
    if not p.is_dir():
        return {}
    return {f.name: file_sha256(f) for f in sorted(p.glob("*.safetensors"))}


def generate_spec(spec: NumbersPipelineSpec, device_type: str) -> dict[str, Any]:
    """What the generate artifact's key covers."""
    ref = spec.teacher.model
    weights = {"model": weights_sha256(ref.path) if ref.provider == "hf" else {}}
    if ref.adapter is not None:
        weights["adapter"] = weights_sha256(ref.adapter)
    return {
        "teacher": spec.teacher,
        "weights_sha256": weights,
        "prompts": spec.prompts,
        "sampling": spec.sampling,
        "backend": spec.backend,
        "device_type": device_type,
        "chunk_size": spec.chunk_size,
    }


def _device_type(ref: ModelRef, settings: BackendSettings) -> str:
    """'cpu' or 'cuda' for a local model (part of the key); 'api' for a remote one."""
    if ref.provider != "hf":
        return "api"
    from sublab.backends.hf import resolve_device

    return resolve_device(settings.device).type


def _load_backend(ref: ModelRef, settings: BackendSettings, api: OpenAISettings) -> Backend:
    from sublab.backends import load_backend

    return load_backend(
        ref, device=settings.device, dtype=settings.dtype, batch_size=settings.batch_size, api=api
    )


@runner("numbers")
def run_numbers(
    spec: NumbersPipelineSpec,
    config_text: str | None = None,
    runs_dir: str | Path | None = None,
) -> Run:
    """Generate number completions with the teacher, filter them, and record the run.

    Re-running skips finished stages; a missing teacher model fails before anything is written.
    The run's manifest gets ``stages`` (artifact folder names) and a headline with the row count
    and the kept fraction.
    """
    from sublab.generate import ROWS, generate_rows

    root = Path(runs_dir if runs_dir is not None else spec.runs_dir)
    device_type = _device_type(spec.teacher.model, spec.backend)
    gen_spec = generate_spec(spec, device_type)
    gen_key = artifact_key("generate", gen_spec)
    gen_done = Run(root / spec.name).artifact_dir("generate", gen_key).exists()
    backend = None
    if not gen_done:  # load first: a missing model must fail before any folder is made
        backend = _load_backend(spec.teacher.model, spec.backend, spec.api)
    run = Run.create(spec.name, kind="numbers", config=spec, config_text=config_text, runs_dir=root)
    run.set_status("running")

    def generate(work: Path) -> dict[str, Any]:
        assert backend is not None
        prompts = make_prompts(spec.prompts)
        provenance = {"teacher": backend.name, "label": spec.teacher.label}
        out = generate_rows(
            backend,
            prompts,
            system_prompt=spec.teacher.system_prompt,
            sampling=spec.sampling,
            work_dir=work,
            chunk_size=spec.chunk_size,
            provenance=provenance,
        )
        (work / "plan.json").unlink(missing_ok=True)
        return {"rows": sum(1 for _ in out.open(encoding="utf-8"))}

    def filter_(work: Path) -> dict[str, Any]:
        rows = read_filter_input(gen.file(ROWS))
        result = filter_rows(rows, spec.filter)
        write_filter_outputs(result, work)
        r = result.report
        return {"total": r["total"], "kept": r["kept"], "rejected": r["rejected"]}

    seeds = {"sampling": spec.sampling.seed, "prompts": spec.prompts.seed}
    try:
        gen = run.build("generate", gen_spec, generate, seeds=seeds, resumable=True)
        filt = run.build("filter", spec.filter, filter_, inputs=[gen.key])
    except BaseException:  # recorded, then re-raised: `sublab runs` shows what stopped
        run.set_status("failed")
        raise
    counts = filt.sidecar["counts"]
    total = counts["total"]
    headline = {
        "rows": total,
        "kept": counts["kept"],
        "kept_fraction": round(counts["kept"] / total, 4) if total else 0.0,
    }
    run.update_manifest(stages={"generate": gen.path.name, "filter": filt.path.name})
    run.set_status("done", headline=headline)
    return run


def stage_artifact(run: Run, stage: str) -> Artifact:
    """The artifact a finished run used for ``stage`` (from its manifest)."""
    name = run.manifest().get("stages", {}).get(stage)
    if name is None or not (run.path / name).is_dir():
        raise SublabError(f"run {run.path} has no finished {stage!r} stage: run its config first")
    sidecar = json.loads((run.path / name / "sidecar.json").read_text())
    return Artifact(run.path / name, sidecar["key"], sidecar, cached=True)


# ---------------------------------------------------------------- standalone generation


def generate_numbers_file(
    model: ModelRef,
    out: str | Path,
    *,
    prompts: NumberPromptSpec,
    sampling: SamplingSpec,
    system_prompt: str | None = None,
    label: str | None = None,
    settings: BackendSettings | None = None,
    api: OpenAISettings | None = None,
    chunk_size: int = 256,
) -> Path:
    """Sample number completions into ``out`` (JSONL, written atomically), resumably.

    Work happens in a hidden folder beside ``out`` (``.<name>.work/``): re-running the same
    command after a crash resumes there; the folder is removed once ``out`` is written.
    """
    import shutil

    from sublab.generate import generate_rows
    from sublab.store import atomic_write_bytes

    backend = _load_backend(model, settings or BackendSettings(), api or OpenAISettings())
    target = Path(out)
    work = target.with_name(f".{target.name}.work")
    provenance: dict[str, Any] = {"teacher": backend.name}
    if label is not None:
        provenance["label"] = label
    rows = generate_rows(
        backend,
        make_prompts(prompts),
        system_prompt=system_prompt,
        sampling=sampling,
        work_dir=work,
        chunk_size=chunk_size,
        provenance=provenance,
    )
    atomic_write_bytes(target, rows.read_bytes())
    shutil.rmtree(work)
    return target
