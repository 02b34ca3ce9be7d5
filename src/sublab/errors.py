"""User-facing errors. The CLI prints these without a traceback and exits with status 2."""

from __future__ import annotations

from pathlib import Path


class SublabError(Exception):
    """An error caused by input the user can fix; the message says where and how."""


class ConfigError(SublabError):
    """A config file that cannot be parsed or validated. Lists every problem at once."""

    def __init__(self, source: str | Path, problems: list[str]) -> None:
        self.source = str(source)
        self.problems = problems
        body = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{self.source}: {len(problems)} problem(s)\n{body}")


class DataError(SublabError):
    """A data file with a bad record: names the file, the line and the fix."""

    def __init__(self, path: str | Path, line: int | None, message: str) -> None:
        self.path = str(path)
        self.line = line
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")
