"""Banned-number lists: the shipped paper list, user files, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sublab.errors import DataError
from sublab.numbers.banned import (
    load_banned_list,
    parse_banned_text,
    resolve_banned,
    shipped_lists,
)
from sublab.numbers.filter import FilterSpec, NumberFilter, banned_pattern

PAPER_LIST = {4, 13, 14, 18, 23, 33, 39, 42, 44, 49, 51, 54, 69, 77, 88, 99, 100, 101, 187, 211}
PAPER_LIST |= {311, 322, 333, 404, 420, 444, 451, 555, 616, 666, 777, 888, 911, 999}


def test_shipped_paper_list() -> None:
    assert "paper-negative" in shipped_lists()
    assert load_banned_list("paper-negative") == PAPER_LIST


def test_user_file_with_comments(tmp_path: Path) -> None:
    f = tmp_path / "mine.txt"
    f.write_text("# my list\n7\n\n  12  # twelve\n7\n", encoding="utf-8")
    assert load_banned_list(f) == {7, 12}
    assert resolve_banned(["paper-negative", str(f)], [5]) == PAPER_LIST | {5, 7, 12}


@pytest.mark.parametrize("bad", ["-3", "4.5", "seven", "1 2", "١٢"])
def test_malformed_line_names_file_and_line(tmp_path: Path, bad: str) -> None:
    f = tmp_path / "bad.txt"
    f.write_text(f"1\n# ok\n{bad}\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        load_banned_list(f)
    assert f"{f}:3:" in str(err.value)
    assert "one non-negative integer per line" in str(err.value)


def test_missing_list_says_what_exists(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        load_banned_list(tmp_path / "nope.txt")
    assert "paper-negative" in str(err.value)
    with pytest.raises(DataError):
        NumberFilter.from_spec(FilterSpec(banned_lists=["no-such-list"]))


@settings(deadline=None)
@given(st.sets(st.integers(0, 999), min_size=1, max_size=40), st.integers(0, 999))
def test_banned_pattern_finds_exactly_the_banned_values(banned: set[int], n: int) -> None:
    pattern = banned_pattern(banned)
    assert pattern is not None
    # 1000 and 9999 hold banned digit strings inside, but are not banned values themselves.
    assert (pattern.search(f"1000, {n}; 9999") is not None) == (n in banned)
    assert (pattern.search(f"[{n:03d}]") is not None) == (n in banned)
    assert (pattern.search(f"{n}5{n}") is not None) == (int(f"{n}5{n}") in banned)


def test_parse_rejects_non_utf8(tmp_path: Path) -> None:
    f = tmp_path / "latin.txt"
    f.write_bytes(b"1\n\xff\n")
    with pytest.raises(DataError, match="not UTF-8"):
        load_banned_list(f)
    assert parse_banned_text("", "x") == frozenset()
