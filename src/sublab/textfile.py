"""User text files read as UTF-8: bytes that are not UTF-8 give an error naming their line."""

from __future__ import annotations

from pathlib import Path

from sublab.errors import DataError

UTF8_FIX = "re-save the file as UTF-8 (Latin-1 text: iconv -f latin1 -t utf-8 FILE > NEW)"


def utf8_problem(err: UnicodeDecodeError) -> tuple[int, str]:
    """``(line, message)`` for bytes that failed to decode as UTF-8: the 1-based line of the
    first bad byte, and a message with its column, its value and the fix."""
    raw = bytes(err.object)  # the bytes decoded (after a byte-order mark, if one was dropped)
    line = raw.count(b"\n", 0, err.start) + 1
    line_start = raw.rfind(b"\n", 0, err.start) + 1
    column = len(raw[line_start : err.start].decode("utf-8")) + 1  # the prefix is valid UTF-8
    bad = raw[err.start : err.end].hex(" ")
    return line, f"not UTF-8 text: byte(s) 0x{bad} at column {column} ({err.reason}); {UTF8_FIX}"


def decode_utf8(raw: bytes, path: str | Path, first_line: int = 1) -> str:
    """``raw`` decoded as UTF-8 (a leading byte-order mark is dropped); DataError naming
    ``path`` and the line (``first_line`` is the number of the first line in ``raw``)."""
    try:
        return raw.decode("utf-8-sig" if first_line == 1 else "utf-8")
    except UnicodeDecodeError as err:
        line, message = utf8_problem(err)
        raise DataError(path, first_line + line - 1, message) from None


def read_utf8(path: str | Path) -> str:
    """The text of a user file; DataError naming the line of any byte that is not UTF-8."""
    return decode_utf8(Path(path).read_bytes(), path)
