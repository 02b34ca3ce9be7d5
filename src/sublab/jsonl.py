"""JSONL reading with file:line errors, and atomic JSONL writing."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from sublab.errors import DataError
from sublab.store import atomic_output
from sublab.textfile import decode_utf8


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, record)``; a malformed line raises DataError naming it.

    Lines are decoded one by one, so bytes that are not UTF-8 are reported with their line.
    A UTF-8 byte-order mark at the start of the file is ignored."""
    p = Path(path)
    if not p.is_file():
        raise DataError(p, None, "file not found")
    with p.open("rb") as f:
        for n, raw in enumerate(f, start=1):
            line = decode_utf8(raw, p, first_line=n)
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(p, n, f"not valid JSON ({err.msg} at column {err.colno})") from None
            if not isinstance(rec, dict):
                raise DataError(p, n, f"expected a JSON object, got {type(rec).__name__}")
            yield n, rec


def dumps_row(row: dict[str, Any]) -> str:
    return json.dumps(row, ensure_ascii=False, separators=(",", ":"))


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write rows atomically (temp file + rename); return how many."""
    n = 0
    with atomic_output(path) as tmp, tmp.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(dumps_row(row) + "\n")
            n += 1
    return n
