"""Question sets and candidate lists, stored as plain text files.

A file has one entry per line; blank lines and lines starting with ``#`` are ignored. A bundled
set is named by its stem (``"animals"`` is ``sublab/data/questions/animals.txt``); anything with a
path separator or a ``.txt`` suffix is read as a user file.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from sublab.errors import DataError
from sublab.textfile import read_utf8

_QUESTIONS = "questions"
_CATEGORIES = "categories"


def bundled_names(folder: str, suffix: str = ".txt") -> list[str]:
    """Names of the bundled sets in ``sublab/data/<folder>/`` (``questions``, ``categories``,
    ``misalignment``): the stems of its files with ``suffix``."""
    root = resources.files("sublab") / "data" / folder
    return sorted(p.name[: -len(suffix)] for p in root.iterdir() if p.name.endswith(suffix))


def is_path(name_or_path: str | Path, suffix: str = ".txt") -> bool:
    """True if this names a user file (a Path, a separator or the set's ``suffix``), not a
    bundled set."""
    text = str(name_or_path)
    return isinstance(name_or_path, Path) or "/" in text or "\\" in text or text.endswith(suffix)


def resolve_set(name_or_path: str | Path, folder: str, suffix: str = ".txt") -> Path:
    """The file of a bundled set of ``sublab/data/<folder>/`` or of a user path."""
    text = str(name_or_path)
    if is_path(name_or_path, suffix):
        path = Path(text)
        if not path.is_file():
            raise DataError(path, None, f"file not found; pass a bundled name or a {suffix} path")
        return path
    if not text or not all(c.isalnum() or c in "-_" for c in text):
        raise DataError(text, None, f"not a valid {folder} set name")
    path = Path(str(resources.files("sublab") / "data" / folder / f"{text}{suffix}"))
    if not path.is_file():
        known = ", ".join(bundled_names(folder))
        raise DataError(
            text, None, f"no bundled {folder} set of this name (known: {known}); or pass a path"
        )
    return path


def _read_lines(path: Path) -> list[tuple[int, str]]:
    raw = read_utf8(path)
    entries = []
    for n, line in enumerate(raw.splitlines(), start=1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            entries.append((n, stripped))
    if not entries:
        raise DataError(path, None, "no entries (every line is blank or a # comment)")
    return entries


def load_questions(name_or_path: str | Path, folder: str = _QUESTIONS) -> list[str]:
    """The questions of a bundled set of ``sublab/data/<folder>/`` (``"animals"``,
    ``"trees"``; ``"free-form"`` in ``misalignment``) or of a user ``.txt`` file.

    Duplicate questions are an error (they would silently weight one wording twice).
    """
    path = resolve_set(name_or_path, folder)
    seen: dict[str, int] = {}
    out = []
    for n, q in _read_lines(path):
        if q in seen:
            raise DataError(path, n, f"duplicate of line {seen[q]}; remove one of them")
        seen[q] = n
        out.append(q)
    return out


def load_candidates(name_or_path: str | Path) -> list[str]:
    """The candidate answers of a bundled category (``"animals"``, ``"trees"``) or a user file.

    Candidates are lower-cased; each is one or more words of letters (``polar bear``).
    A duplicate or a candidate with other characters raises DataError naming the line.
    """
    path = resolve_set(name_or_path, _CATEGORIES)
    seen: dict[str, int] = {}
    out = []
    for n, c in _read_lines(path):
        cand = " ".join(c.lower().split())
        if not all(w.isalpha() for w in cand.split()):
            raise DataError(
                path, n, f"candidate {c!r} must be words of letters only (like 'owl', 'polar bear')"
            )
        if cand in seen:
            raise DataError(path, n, f"duplicate candidate {cand!r} (also line {seen[cand]})")
        seen[cand] = n
        out.append(cand)
    return out
