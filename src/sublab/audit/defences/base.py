"""The defence interface, its registry, and writing a defended dataset with provenance.

A defence turns the rows under audit into a new dataset: rows it changed carry a
``provenance`` entry saying which stage changed them, how and why; rows it removed go to
``removed.jsonl`` with the reason. Adding a defence is one module in this package with a
:class:`Defence` subclass decorated with ``@DEFENCES.register``.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sublab.errors import SublabError
from sublab.registry import Registry

if TYPE_CHECKING:
    from sublab.audit.context import AuditContext

ROWS = "rows.jsonl"
REMOVED = "removed.jsonl"
SUMMARY = "defence.json"


@dataclass
class DefenceResult:
    """A defended dataset."""

    rows: list[dict[str, Any]]
    removed: list[dict[str, Any]] = field(default_factory=list)
    """Each removed row with ``removed_by`` and ``reason``."""
    changed: int = 0
    summary: dict[str, Any] = field(default_factory=dict)


class Defence(ABC):
    """Transforms a dataset to weaken a hidden trait."""

    name: str
    summary: str

    @abstractmethod
    def apply(self, ctx: AuditContext, **options: Any) -> DefenceResult:
        """The defended rows of ``ctx.rows``."""


DEFENCES: Registry[Defence] = Registry("defence", "sublab.audit.defences")


def with_step(row: dict[str, Any], **step: Any) -> dict[str, Any]:
    """A copy of ``row`` with one more ``provenance`` entry."""
    return {**row, "provenance": [*(row.get("provenance") or []), step]}


def write_defended(result: DefenceResult, out_dir: str | Path, name: str, source: str) -> Path:
    """``rows.jsonl``, ``removed.jsonl`` and ``defence.json`` in ``out_dir``, all or nothing."""
    from sublab.jsonl import write_jsonl
    from sublab.store import atomic_output

    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SublabError(f"{out}: output folder exists and is not empty; pass a new --out")
    if out.is_dir():
        out.rmdir()
    with atomic_output(out) as work:
        work.mkdir()
        write_jsonl(work / ROWS, result.rows)
        write_jsonl(work / REMOVED, result.removed)
        summary = {
            "defence": name,
            "source": source,
            "rows_in": len(result.rows) + len(result.removed),
            "rows_out": len(result.rows),
            "removed": len(result.removed),
            "changed": result.changed,
            **result.summary,
        }
        (work / SUMMARY).write_text(json.dumps(summary, indent=1))
    return out
