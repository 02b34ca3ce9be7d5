"""The data stages: a teacher answers a channel's prompts, the rule filter cleans the answers,
an optional judge looks at what the rule kept. Each is a cached artifact of a run.

- ``generate-<key>/rows.jsonl``: one completion per prompt with provenance (teacher, label,
  sampling, the prompt's metadata). Resumable: a crash keeps ``generate-<key>.partial/`` and
  the next run picks up at the first missing chunk. Its key covers the teacher's weights, the
  channel, the prompts, the sampling and the backend settings that change the samples.
- ``filter-<key>/``: ``kept.jsonl``, ``rejected.jsonl`` (each with its reason),
  ``filter_report.json`` and ``.md``; its key covers the channel's filter settings, the words
  that name the trait, and the generate key, so changing a filter field re-runs only this stage.
- ``judge-<key>/`` (when the channel's spec has a ``judge``): ``verdicts.jsonl`` (every kept
  row's score and the judge's reply), ``kept.jsonl`` (rows scored below the threshold) and
  ``judge_report.json`` with the flagged and unreadable counts.

Both the ``kind = "data"`` pipeline and the experiment use these stages.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sublab.backends.base import SAMPLER_VERSION, Backend, BackendSettings, Model
from sublab.channels import ChannelSpec, Prompt, get_channel
from sublab.filtering import build_report, clip, write_filter_outputs
from sublab.jsonl import read_jsonl, write_jsonl
from sublab.store import Artifact, Run, atomic_write_json, file_sha256, hash_obj

KEPT = "kept.jsonl"
JUDGE_REASONS = {
    "judge_flagged": "the judge's score reached the threshold",
    "judge_unreadable": "the judge's reply held no score from 0 to 100 (kept out: unknown)",
}


@dataclass(frozen=True)
class TraitTerms:
    """What the filters look for: the trait in words (for a judge) and the words naming it."""

    description: str
    words: tuple[str, ...] = ()


@dataclass(frozen=True)
class DataArtifacts:
    """The artifacts of one teacher's data: generation, rule filter, and judge if any."""

    generate: Artifact
    filter: Artifact
    judge: Artifact | None = None

    @property
    def kept(self) -> Artifact:
        """The last stage's artifact: its ``kept.jsonl`` holds the training rows."""
        return self.judge or self.filter

    def kept_rows(self) -> list[dict[str, str]]:
        """The kept rows as training rows: prompt and completion only, no system prompt."""
        return [
            {"prompt": r["prompt"], "completion": r["completion"]}
            for _, r in read_jsonl(self.kept.file(KEPT))
        ]

    def report(self) -> dict[str, Any]:
        """The filter report, with the judge's rejections counted in when there is a judge."""
        report = json.loads(self.filter.file("filter_report.json").read_text())
        if self.judge is None:
            return report
        judged = json.loads(self.judge.file("judge_report.json").read_text())
        counts = Counter(report["reasons"]) + Counter(judged["reasons"])
        examples = {**report["examples"], **judged["examples"]}
        merged = build_report(judged["kept"], report["total"] - judged["kept"], counts, examples)
        return {**report, **merged, "judge": judged["judge"]}


def weights_sha256(path: str | Path) -> dict[str, str]:
    """sha256 of each ``*.safetensors`` file in a local model (or adapter) folder; {} if remote."""
    p = Path(path)
    if not p.is_dir():
        return {}
    return {f.name: file_sha256(f) for f in sorted(p.glob("*.safetensors"))}


def device_type(model: Model, settings: BackendSettings) -> str:
    """'cpu' or 'cuda' for a local model (part of the key); 'api' for a remote one."""
    if model.ref.provider == "openai":
        return "api"
    from sublab.backends.hf import resolve_device

    return resolve_device(settings.device).type


def generate_key_spec(
    teacher: Model,
    data: ChannelSpec,
    prompts: Sequence[Prompt],
    system_prompt: str | None,
    settings: BackendSettings,
    label: str,
) -> dict[str, Any]:
    """What the generate artifact's key covers (besides the teacher's key, its input)."""
    return {
        "channel": data.channel,
        "system_prompt": system_prompt,
        "prompts_sha256": hash_obj([[p.text, p.meta] for p in prompts]),
        "sampling": get_channel(data.channel).sampling(data),
        "backend": settings,
        "device_type": device_type(teacher, settings),
        "chunk_size": data.chunk_size,
        "label": label,
    }


def sample_prompts(
    backend: Backend,
    prompts: Sequence[Prompt],
    data: ChannelSpec,
    system_prompt: str | None,
    work: Path,
    label: str | None = None,
) -> Path:
    """One completion per prompt into ``work/rows.jsonl`` (resumable chunks, see
    :func:`sublab.generate.generate_rows`); rows record the teacher, channel, label and each
    prompt's metadata."""
    from sublab.generate import generate_rows

    provenance: dict[str, Any] = {"teacher": backend.name, "channel": data.channel}
    if label is not None:
        provenance["label"] = label
    return generate_rows(
        backend,
        [p.text for p in prompts],
        system_prompt=system_prompt,
        sampling=get_channel(data.channel).sampling(data),
        work_dir=work,
        chunk_size=data.chunk_size,
        provenance=provenance,
        metas=[p.meta for p in prompts] if any(p.meta for p in prompts) else None,
    )


def data_stages(
    run: Run,
    *,
    teacher: Model,
    data: ChannelSpec,
    prompts: Sequence[Prompt],
    system_prompt: str | None,
    terms: TraitTerms,
    settings: BackendSettings,
    backend: Callable[[], Backend],
    label: str,
    seeds: dict[str, int] | None = None,
) -> DataArtifacts:
    """Generate (resumable), filter, and judge (if the spec has a judge) one teacher's data.

    ``backend()`` loads the teacher only when generation has to run.
    """
    from sublab.generate import ROWS

    channel = get_channel(data.channel)

    def generate(work: Path) -> dict[str, Any]:
        out = sample_prompts(backend(), prompts, data, system_prompt, work, label)
        (work / "plan.json").unlink(missing_ok=True)
        return {"rows": sum(1 for _ in out.open(encoding="utf-8"))}

    gen = run.build(
        "generate",
        generate_key_spec(teacher, data, prompts, system_prompt, settings, label),
        generate,
        inputs=[teacher.key],
        seeds={"sampling": data.sampling.seed, **(seeds or {})},
        resumable=True,
        stage_version=SAMPLER_VERSION,
    )

    filter_spec = {
        "channel": data.channel,
        "settings": data.model_dump(
            mode="json",
            exclude={"channel", "sampling", "judge", "chunk_size", "prompts", "constrain"},
        ),
        "trait_words": list(terms.words),
    }

    def filter_(work: Path) -> dict[str, Any]:
        rows = [r for _, r in read_jsonl(gen.file(ROWS))]
        result = channel.filter_rows(data, rows, terms.words)
        write_filter_outputs(result, work)
        r = result.report
        return {"total": r["total"], "kept": r["kept"], "rejected": r["rejected"]}

    filt = run.build("filter", filter_spec, filter_, inputs=[gen.key])
    if data.judge is None:
        return DataArtifacts(gen, filt)
    return DataArtifacts(gen, filt, judge_stage(run, filt, data, terms, settings))


def judge_stage(
    run: Run, filt: Artifact, data: ChannelSpec, terms: TraitTerms, settings: BackendSettings
) -> Artifact:
    """The judge's verdict on every row the rule filter kept (cached)."""
    from sublab.judge import JudgeItem, load_judge

    spec = data.judge
    assert spec is not None
    key_spec: dict[str, Any] = {"judge": spec, "trait": terms.description, "words": terms.words}
    if spec.model is not None and spec.model.provider != "openai":
        key_spec["weights_sha256"] = weights_sha256(spec.model.path)

    def make(work: Path) -> dict[str, Any]:
        rows = [r for _, r in read_jsonl(filt.file(KEPT))]
        items = [
            JudgeItem(r.get("prompt", ""), r["completion"], terms.description, terms.words)
            for r in rows
        ]
        verdicts = load_judge(spec, settings).judge(items) if items else []
        kept, counts, shown = [], Counter[str](), dict[str, list[str]]()
        for row, v in zip(rows, verdicts, strict=True):
            reason = None
            if v.score is None:
                reason = "judge_unreadable"
            elif v.score >= spec.threshold:
                reason = "judge_flagged"
            if reason is None:
                kept.append(row)
            else:
                counts[reason] += 1
                shown.setdefault(reason, []).append(clip(row["completion"]))
        write_jsonl(
            work / "verdicts.jsonl",
            [{"id": r.get("id"), **v.model_dump()} for r, v in zip(rows, verdicts, strict=True)],
        )
        write_jsonl(work / KEPT, kept)
        report = build_report(len(kept), len(rows) - len(kept), counts, shown)
        report["examples"] = {k: v[:5] for k, v in report["examples"].items()}
        report["judge"] = {
            "spec": spec.model_dump(mode="json"),
            "judged": len(rows),
            "flagged": counts["judge_flagged"],
            "unreadable": counts["judge_unreadable"],
        }
        atomic_write_json(work / "judge_report.json", report)
        return {"judged": len(rows), "kept": len(kept), "unreadable": counts["judge_unreadable"]}

    return run.build("judge", key_spec, make, inputs=[filt.key])
