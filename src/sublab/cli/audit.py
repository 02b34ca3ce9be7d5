"""Audit commands: score a dataset for hidden traits (``audit``), transform it (``defend``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from sublab.audit.context import DEFAULT_TRAIT_PROMPT
from sublab.audit.defences.base import DEFENCES
from sublab.audit.detectors.base import DETECTORS
from sublab.cli.common import out, user_errors

if TYPE_CHECKING:
    from sublab.audit.context import AuditContext

Reference = Annotated[
    str,
    typer.Option(
        help="The reference model folder: the base the data's teacher was made from (same "
        "vocabulary)."
    ),
]
Teacher = Annotated[
    str | None, typer.Option(help="The suspected teacher's model folder (same vocabulary).")
]
Candidates = Annotated[
    str | None, typer.Option(help="Comma-separated candidate traits, e.g. owl,eagle,cat.")
]
Device = Annotated[str, typer.Option(help="Where the models run: cpu, cuda or auto.")]
TraitPrompt = Annotated[
    str,
    typer.Option(help="Suspected-trait system prompt; {trait} and {plural} are filled in."),
]


def register(app: typer.Typer) -> None:
    app.command()(audit)
    app.command()(defend)


def _context(
    data: Path, reference: str, teacher: str | None, candidates: str | None, trait_prompt: str,
    reference_samples: Path | None, device: str,
) -> AuditContext:  # fmt: skip
    from sublab.audit.context import AuditContext
    from sublab.audit.rows import read_audit_rows

    rows = read_audit_rows(data)
    names = [c.strip() for c in (candidates or "").split(",") if c.strip()]
    samples = None
    if reference_samples is not None:
        samples = reference_samples_for(rows.rows, reference_samples)
    ctx = AuditContext(
        rows, reference=reference, teacher=teacher, candidates=names, trait_prompt=trait_prompt,
        reference_samples=samples, device=device,
    )  # fmt: skip
    ctx.check()
    return ctx


def reference_samples_for(rows: list[dict[str, Any]], path: Path) -> list[dict[str, Any]]:
    """The reference's completion for each row's prompt, from a JSONL of the reference's own
    rows (matched by prompt); a prompt it lacks is a DataError naming the fix."""
    from sublab.audit.rows import read_audit_rows
    from sublab.errors import DataError

    by_prompt = {r["prompt"]: r for r in read_audit_rows(path).rows}
    missing = [r["prompt"] for r in rows if r["prompt"] not in by_prompt]
    if missing:
        raise DataError(
            path, None, f"has no completion for {len(missing)} of the audited prompts (first: "
            f"{missing[0][:60]!r}); generate it with the reference on the same prompts",
        )  # fmt: skip
    return [by_prompt[r["prompt"]] for r in rows]


def audit(
    data: Annotated[Path, typer.Argument(help="JSONL rows with prompt and completion.")],
    reference: Reference,
    teacher: Teacher = None,
    candidates: Candidates = None,
    detector: Annotated[
        list[str] | None,
        typer.Option(
            "--detector",
            help=f"A detector to run, one of {', '.join(DETECTORS.names())} (repeatable; "
            "default: every one whose inputs are given).",
        ),
    ] = None,
    trait_prompt: TraitPrompt = DEFAULT_TRAIT_PROMPT,
    reference_samples: Annotated[
        Path | None,
        typer.Option(
            help="JSONL of the reference's own completions for the same prompts "
            "(ngram detector); default: sampled from the reference."
        ),
    ] = None,
    top: Annotated[int, typer.Option(help="Suspicious rows listed per detector.")] = 10,
    device: Device = "cpu",
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Output folder (default: DATA.audit/).")
    ] = None,
) -> None:
    """Score a dataset for hidden traits: per-row and per-dataset scores of each detector,
    the likely trait among candidates; writes audit.json and audit.md."""
    import json

    from sublab.audit.report import audit_json, audit_markdown
    from sublab.store import atomic_output

    with user_errors():
        ctx = _context(
            data, reference, teacher, candidates, trait_prompt, reference_samples, device
        )
        names = detector or DETECTORS.names()
        results, skipped = {}, {}
        for name in names:
            det = DETECTORS.get(name)
            if det.needs_teacher and ctx.teacher is None:
                skipped[name] = "needs --teacher"
            elif det.needs_candidates and not ctx.candidates:
                skipped[name] = "needs --candidates"
            else:
                results[name] = det.score(ctx)
        report = audit_json(ctx, results, skipped, top)
        md = audit_markdown(report)
        target = out_dir or data.with_name(data.stem + ".audit")
        with atomic_output(target) as work:
            work.mkdir()
            (work / "audit.json").write_text(json.dumps(report, indent=1))
            (work / "audit.md").write_text(md)
    out.print(md, markup=False, highlight=False, soft_wrap=True)
    out.print(f"wrote {target}/ (audit.json, audit.md)")


def defend(
    data: Annotated[Path, typer.Argument(help="JSONL rows with prompt and completion.")],
    defence: Annotated[str, typer.Option(help=f"The defence: {', '.join(DEFENCES.names())}.")],
    reference: Reference,
    teacher: Teacher = None,
    candidates: Candidates = None,
    detector: Annotated[
        str | None,
        typer.Option(
            help="Detector that ranks rows for threshold (default teacher_logprob) and "
            f"resample (default: every row): {', '.join(DETECTORS.names())}."
        ),
    ] = None,
    drop: Annotated[
        float, typer.Option(help="Share of rows removed (threshold) or resampled (resample).")
    ] = 0.2,
    trait_prompt: TraitPrompt = DEFAULT_TRAIT_PROMPT,
    seed: Annotated[int, typer.Option(help="Seed of the shuffle.")] = 0,
    device: Device = "cpu",
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Output folder (default: DATA.<defence>/).")
    ] = None,
) -> None:
    """Write a defended copy of a dataset: rows.jsonl (changed rows carry their provenance),
    removed.jsonl (with the reason) and defence.json."""
    from sublab.audit.defences.base import write_defended

    with user_errors():
        ctx = _context(data, reference, teacher, candidates, trait_prompt, None, device)
        options: dict[str, Any] = {"drop": drop, "seed": seed}
        if detector is not None:  # else each defence's own default
            options["detector"] = detector
        result = DEFENCES.get(defence).apply(ctx, **options)
        target = out_dir or data.with_name(f"{data.stem}.{defence}")
        write_defended(result, target, defence, str(data))
    out.print(
        f"{defence}: {len(result.rows)} rows kept, {len(result.removed)} removed, "
        f"{result.changed} changed; wrote {target}/ (rows.jsonl, removed.jsonl, defence.json)"
    )
