"""The generation stage: sample completions for many prompts, in chunks that survive a crash.

``generate_rows`` writes ``chunk-00000.jsonl``, ``chunk-00001.jsonl``, ... into a work folder,
each atomically (temp file + rename), so a chunk file that exists is complete. After a crash
(even ``kill -9``) the same call skips the chunks already there. The randomness of chunk ``k``
derives only from ``(sampling.seed, k)``, so a resumed run is byte-identical to an uninterrupted
one. At the end the chunks are concatenated into ``rows.jsonl`` (atomically) and removed.

A ``plan.json`` in the folder records what the chunks were made from; resuming with different
prompts, sampling or chunk size is refused instead of mixing two runs in one file.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sublab.backends.base import Backend, SamplingSpec, chat
from sublab.errors import SublabError
from sublab.jsonl import dumps_row
from sublab.progress import progress, quiet_backend
from sublab.store import atomic_write_bytes, atomic_write_json, hash_obj

ROWS = "rows.jsonl"
PLAN = "plan.json"


def chunk_name(k: int) -> str:
    return f"chunk-{k:05d}.jsonl"


def chunk_seed(seed: int, k: int) -> int:
    """The sampling seed of chunk ``k``: a function of ``(seed, k)`` only."""
    h = hashlib.sha256(f"sublab.generate:{seed}:{k}".encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 63) - 1)


def _check_plan(work_dir: Path, plan: dict[str, Any]) -> None:
    f = work_dir / PLAN
    if f.exists():
        old = json.loads(f.read_text())
        if old.get("hash") != plan["hash"]:
            raise SublabError(
                f"{work_dir} holds chunks of a different generation "
                f"(prompts, sampling, system prompt or chunk size changed); "
                "delete that folder or pick another output"
            )
    else:
        atomic_write_json(f, plan)


def generate_rows(
    backend: Backend,
    prompts: Sequence[str],
    *,
    system_prompt: str | None,
    sampling: SamplingSpec,
    work_dir: Path,
    chunk_size: int = 256,
    provenance: dict[str, Any] | None = None,
    metas: Sequence[dict[str, Any]] | None = None,
) -> Path:
    """Sample one completion per prompt into ``work_dir/rows.jsonl``; resume after a crash.

    Each row is ``{"id", "prompt", "completion", "system_prompt", "teacher", "sampling",
    "seed", "chunk_seed", "stage": "generate", **provenance}``, plus ``"meta"`` (the prompt's
    metadata, e.g. the expected answer) when ``metas`` gives one dict per prompt.
    ``provenance`` keys (e.g. ``teacher``, ``label``) are copied into every row; ``teacher``
    defaults to the backend's ``name``. Returns the path of ``rows.jsonl``.
    """
    if metas is not None and len(metas) != len(prompts):
        raise ValueError(f"{len(metas)} metas for {len(prompts)} prompts")
    if chunk_size < 1:
        raise SublabError(f"chunk_size must be >= 1 (got {chunk_size})")
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    out = work_dir / ROWS
    extra = dict(provenance or {})
    extra.setdefault("teacher", getattr(backend, "name", type(backend).__name__))
    sampling_json = sampling.model_dump(mode="json")
    plan = {
        "count": len(prompts),
        "chunk_size": chunk_size,
        "sampling": sampling_json,
        "system_prompt": system_prompt,
        "provenance": extra,
        "prompts_sha256": hash_obj(list(prompts)),
    }
    if metas is not None:
        plan["metas_sha256"] = hash_obj(list(metas))
    plan["hash"] = hash_obj(plan)
    _check_plan(work_dir, plan)
    if out.exists():
        return out
    for stale in work_dir.glob(".chunk-*.tmp"):  # a temp file left by a killed writer
        stale.unlink()

    n_chunks = (len(prompts) + chunk_size - 1) // chunk_size
    done = [k for k in range(n_chunks) if (work_dir / chunk_name(k)).exists()]
    resumed = sum(min(chunk_size, len(prompts) - k * chunk_size) for k in done)
    with progress() as bar, quiet_backend(backend):
        task = bar.add_task("generate", total=len(prompts), completed=resumed)
        for k in range(n_chunks):
            path = work_dir / chunk_name(k)
            if path.exists():
                continue
            lo, hi = k * chunk_size, min((k + 1) * chunk_size, len(prompts))
            seed = chunk_seed(sampling.seed, k)
            chunk_sampling = sampling.model_copy(update={"seed": seed})
            chats = [chat(p, system_prompt) for p in prompts[lo:hi]]
            completions = backend.generate(chats, chunk_sampling)
            if len(completions) != hi - lo:
                raise RuntimeError(
                    f"backend returned {len(completions)} completions for {hi - lo} prompts"
                )
            lines = []
            for i, (p, c) in enumerate(zip(prompts[lo:hi], completions, strict=True), start=lo):
                row = {
                    "id": i,
                    "prompt": p,
                    "completion": c,
                    "system_prompt": system_prompt,
                    **extra,
                    "sampling": sampling_json,
                    "seed": sampling.seed,
                    "chunk_seed": seed,
                    "stage": "generate",
                }
                if metas is not None:
                    row["meta"] = metas[i]
                lines.append(dumps_row(row) + "\n")
            atomic_write_bytes(path, "".join(lines).encode("utf-8"))
            bar.advance(task, hi - lo)

    data = b"".join((work_dir / chunk_name(k)).read_bytes() for k in range(n_chunks))
    atomic_write_bytes(out, data)
    for k in range(n_chunks):
        (work_dir / chunk_name(k)).unlink()
    return out
