"""Reading the rows under audit: prompt and completion required, provenance kept."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sublab.errors import DataError
from sublab.jsonl import read_jsonl

PROVENANCE_FIELDS = ("teacher", "label", "system_prompt", "channel", "stage", "provenance")
"""Row fields that say which model, prompt and stage made a row (read where present)."""


@dataclass
class AuditRows:
    """Rows of one file, with the line each came from."""

    path: str
    rows: list[dict[str, Any]]
    lines: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)

    def where(self, i: int) -> tuple[str, int | None]:
        """(file, line) of row ``i``."""
        return self.path, (self.lines[i] if self.lines else None)

    def provenance(self) -> dict[str, dict[str, int]]:
        """For each provenance field present: how many rows carry each value."""
        out: dict[str, dict[str, int]] = {}
        for row in self.rows:
            for key in PROVENANCE_FIELDS:
                if key in row and key != "provenance":
                    value = str(row[key])[:80]
                    counts = out.setdefault(key, {})
                    counts[value] = counts.get(value, 0) + 1
            for step in row.get("provenance") or []:
                stage = str(step.get("stage", "?"))
                counts = out.setdefault("stages", {})
                counts[stage] = counts.get(stage, 0) + 1
        return out


def check_row(row: Any) -> str | None:
    """What is wrong with one row under audit (``"row<.field>: <problem> and the fix"``), or
    None: the training rows' check (:func:`sublab.train.data.row_problem`), since a defended
    dataset is training data."""
    from sublab.train.data import row_problem

    problem = row_problem(row)
    return None if problem is None else f"row{problem}"


def read_audit_rows(path: str | Path) -> AuditRows:
    """Rows of a JSONL file; a bad row raises DataError naming its line and the fix."""
    rows, lines = [], []
    for line, row in read_jsonl(path):
        problem = check_row(row)
        if problem is not None:
            raise DataError(path, line, problem)
        rows.append(row)
        lines.append(line)
    if not rows:
        raise DataError(path, None, "no rows; expected JSON lines of {prompt, completion}")
    return AuditRows(str(path), rows, lines)


def in_memory(rows: list[dict[str, Any]], name: str = "<rows>") -> AuditRows:
    """Rows given in memory (checked like a file's; row i is reported as line i + 1)."""
    for i, row in enumerate(rows):
        problem = check_row(row)
        if problem is not None:
            raise DataError(name, i + 1, problem)
    if not rows:
        raise DataError(name, None, "no rows; give at least one {prompt, completion} row")
    return AuditRows(name, list(rows), list(range(1, len(rows) + 1)))
