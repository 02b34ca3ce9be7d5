"""Banned-number lists: shipped ones by name, user files by path.

A list file holds one non-negative integer per line; ``#`` starts a comment (to the end of the
line) and blank lines are ignored. Shipped lists live in ``sublab/data/banned/<name>.txt``;
``paper-negative`` is the union of the paper's two lists of numbers with negative associations.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import resources
from pathlib import Path

from sublab.errors import DataError
from sublab.textfile import read_utf8

_SHIPPED_DIR = "data/banned"


def shipped_lists() -> list[str]:
    """Names of the banned lists that ship with sublab (usable as ``banned_lists`` entries)."""
    root = resources.files("sublab").joinpath(_SHIPPED_DIR)
    if not root.is_dir():
        return []
    return sorted(p.name[:-4] for p in root.iterdir() if p.name.endswith(".txt"))


def parse_banned_text(text: str, source: str | Path) -> frozenset[int]:
    """Parse a list's text; a bad line raises DataError naming ``source:line``."""
    numbers: set[int] = set()
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if not (line.isascii() and line.isdigit()):
            raise DataError(
                source,
                n,
                f"expected one non-negative integer per line, got {line!r} (use '#' for comments)",
            )
        numbers.add(int(line))
    return frozenset(numbers)


def load_banned_list(name_or_path: str | Path) -> frozenset[int]:
    """Numbers of a shipped list (by name) or of a user file (by path)."""
    name = str(name_or_path)
    if name in shipped_lists():
        res = resources.files("sublab").joinpath(f"{_SHIPPED_DIR}/{name}.txt")
        return parse_banned_text(res.read_text(encoding="utf-8"), f"<shipped list {name}>")
    path = Path(name_or_path)
    if not path.is_file():
        known = ", ".join(shipped_lists()) or "none"
        raise DataError(
            path,
            None,
            f"banned list not found: not a shipped list (shipped: {known}) and no such file; "
            "pass a shipped name or the path of a text file with one integer per line",
        )
    return parse_banned_text(read_utf8(path), path)


def resolve_banned(lists: Iterable[str | Path] = (), numbers: Iterable[int] = ()) -> frozenset[int]:
    """Union of the named/path lists and the extra numbers."""
    out: set[int] = set(numbers)
    for item in lists:
        out |= load_banned_list(item)
    return frozenset(out)
