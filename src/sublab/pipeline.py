"""``sublab run``: configs dispatched by kind, and the ``kind = "data"`` pipeline.

A ``kind = "data"`` config names a teacher (a model and optionally a system prompt) and a
``[data]`` table: the channel (``numbers``, ``code``, ``cot``, ...), its prompts, sampling and
filter, optionally a judge. ``run_data`` builds the data stages of :mod:`sublab.datagen` in the
run directory (generate, filter, judge) and records the kept fraction.

``sublab run CONFIG.toml`` validates the whole config and dispatches on its kind through
:data:`RUNNERS`; each pipeline registers its runner with :func:`runner`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from pydantic import Field

from sublab.backends.base import Backend, BackendSettings, Model, ModelRef
from sublab.backends.openai import OpenAISettings
from sublab.channels import ChannelData, ChannelSpec, default_data, get_channel
from sublab.config import SafeName, Spec, config_kind, kind_of, load_config
from sublab.errors import SublabError
from sublab.store import Artifact, Run, hash_obj

if TYPE_CHECKING:
    from sublab.datagen import TraitTerms


class TeacherSpec(Spec):
    """The model that generates the data, and how its trait got in."""

    model: ModelRef = Field(description="The teacher's weights (local folder or hub id).")
    system_prompt: str | None = Field(
        None, description="System prompt given with every prompt (a prompted teacher), if any."
    )
    label: str = Field(description="Short name of the trait, e.g. 'owl' or 'control'.")


@config_kind("data")
class DataPipelineSpec(Spec):
    """A teacher answers a channel's prompts; the channel's filter keeps the clean answers."""

    name: SafeName = Field(description="Run name: the folder runs_dir/name holds every artifact.")
    runs_dir: str = Field("runs", description="Folder that holds run directories.")
    teacher: TeacherSpec = Field(description="The model that writes the data.")
    trait: str | None = Field(
        None,
        description="The trait the filters look for (e.g. 'owl'): rows that name it in any "
        "form are rejected by channels that check names (code, reasoning) and by a judge.",
    )
    data: ChannelData = Field(
        default_factory=default_data,
        description="The channel ('numbers', 'code', 'cot', ...) with its prompts, sampling, "
        "filter and optional judge.",
    )
    backend: BackendSettings = Field(
        default_factory=BackendSettings, description="Device, dtype and batch size."
    )
    api: OpenAISettings = Field(
        default_factory=OpenAISettings,
        description="For a teacher with provider = 'openai': the API key's variable name, "
        "concurrency, retries (not in the artifact key: they do not change what is sampled).",
    )


# ---------------------------------------------------------------- runners

RUNNER_MODULES = (
    "sublab.pipeline",
    "sublab.experiment.run",
    "sublab.experiment.sweep",
    "sublab.mnist.experiment",
    "sublab.organism.runner",
    "sublab.audit.benchmark",
)
"""Modules that register runners; imported before ``sublab run`` dispatches."""

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
    import importlib

    spec = load_config(path)
    for module in RUNNER_MODULES:
        importlib.import_module(module)
    kind = kind_of(spec)
    if kind not in RUNNERS:
        known = ", ".join(sorted(RUNNERS)) or "none"
        raise SublabError(f"{path}: kind {kind!r} cannot be run yet (runnable kinds: {known})")
    if ray_address is not None:
        from sublab.experiment.ray_exec import with_ray_address

        spec = with_ray_address(spec, ray_address, path)
    text = Path(path).read_text(encoding="utf-8")
    return RUNNERS[kind](spec, config_text=text, runs_dir=runs_dir)


# ---------------------------------------------------------------- data pipeline


def trait_terms(trait: str | None) -> TraitTerms:
    """The words and the description the filters use for ``trait`` (None: no trait)."""
    from sublab.datagen import TraitTerms
    from sublab.evals.matching import word_forms

    if trait is None:
        return TraitTerms("nothing in particular")
    return TraitTerms(f"'{trait}'", tuple(word_forms(trait)))


def teacher_model(ref: ModelRef, label: str) -> Model:
    """A teacher named by reference: its key covers the reference and its weight files (for a
    catalogued model, ``catalog:<name>``, its catalogue entry)."""
    from sublab.catalog import catalog_model, is_catalog_path
    from sublab.datagen import weights_sha256

    if is_catalog_path(ref.path):
        return catalog_model(ref, label)

    weights = {"model": weights_sha256(ref.path) if ref.provider != "openai" else {}}
    if ref.adapter is not None:
        weights["adapter"] = weights_sha256(ref.adapter)
    return Model(ref, key=hash_obj({"ref": ref, "weights": weights}), label=label)


def _loader(ref: ModelRef, settings: BackendSettings, api: OpenAISettings) -> Backend:
    from sublab.backends import load_backend

    return load_backend(ref, settings, api)


@runner("data")
def run_data(
    spec: DataPipelineSpec,
    config_text: str | None = None,
    runs_dir: str | Path | None = None,
) -> Run:
    """Generate the teacher's answers, filter (and judge) them, and record the run.

    Re-running skips finished stages; a missing teacher model fails before anything is written.
    The run's manifest gets ``stages`` (artifact folder names) and a headline with the row count
    and the kept fraction.
    """
    from sublab.datagen import data_stages, generate_key_spec
    from sublab.store import artifact_key

    root = Path(runs_dir if runs_dir is not None else spec.runs_dir)
    channel = get_channel(spec.data.channel)
    prompts = channel.prompts(spec.data)
    teacher = teacher_model(spec.teacher.model, spec.teacher.label)
    label = spec.teacher.label
    gen_spec = generate_key_spec(
        teacher, spec.data, prompts, spec.teacher.system_prompt, spec.backend, label
    )
    gen_key = artifact_key("generate", gen_spec, [teacher.key])
    backend: Backend | None = None
    if not Run(root / spec.name).artifact_dir("generate", gen_key).exists():
        # load first: a missing model must fail before any folder is made
        backend = _loader(spec.teacher.model, spec.backend, spec.api)
    run = Run.create(spec.name, kind="data", config=spec, config_text=config_text, runs_dir=root)
    with run.running():
        arts = data_stages(
            run,
            teacher=teacher,
            data=spec.data,
            prompts=prompts,
            system_prompt=spec.teacher.system_prompt,
            terms=trait_terms(spec.trait),
            settings=spec.backend,
            backend=lambda: backend or _loader(spec.teacher.model, spec.backend, spec.api),
            label=label,
            seeds=_prompt_seed(spec.data),
        )
        report = arts.report()
        total = report["total"]
        headline = {
            "rows": total,
            "kept": report["kept"],
            "kept_fraction": round(report["kept"] / total, 4) if total else 0.0,
        }
        stages = {"generate": arts.generate.path.name, "filter": arts.filter.path.name}
        if arts.judge is not None:
            stages["judge"] = arts.judge.path.name
        run.update_manifest(stages=stages)
        run.finish(headline)
    return run


def _prompt_seed(data: ChannelSpec) -> dict[str, int]:
    prompts = getattr(data, "prompts", None)
    seed = getattr(prompts, "seed", None)
    return {"prompts": seed} if isinstance(seed, int) else {}


def stage_artifact(run: Run, stage: str) -> Artifact:
    """The artifact a finished run used for ``stage`` (from its manifest)."""
    name = run.manifest().get("stages", {}).get(stage)
    found = None if name is None else Artifact.finished(run.path / name)
    if found is None:
        raise SublabError(f"run {run.path} has no finished {stage!r} stage: run its config first")
    return found


# ---------------------------------------------------------------- standalone generation


def generate_data_file(
    model: ModelRef,
    out: str | Path,
    *,
    data: ChannelSpec,
    system_prompt: str | None = None,
    label: str | None = None,
    settings: BackendSettings | None = None,
    api: OpenAISettings | None = None,
) -> Path:
    """Sample a channel's prompts into ``out`` (JSONL, written atomically), resumably.

    Work happens in a hidden folder beside ``out`` (``.<name>.work/``): re-running the same
    command after a crash resumes there; the folder is removed once ``out`` is written.
    """
    import shutil

    from sublab.datagen import sample_prompts
    from sublab.store import atomic_write_bytes

    backend = _loader(model, settings or BackendSettings(), api or OpenAISettings())
    prompts = get_channel(data.channel).prompts(data)
    target = Path(out)
    work = target.with_name(f".{target.name}.work")
    rows = sample_prompts(backend, prompts, data, system_prompt, work, label)
    atomic_write_bytes(target, rows.read_bytes())
    shutil.rmtree(work)
    return target
