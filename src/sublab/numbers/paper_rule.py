"""The number filter's ``mode = "paper"``: the rule of the paper's public code, restated.

The authors' code (``parse_response`` and ``get_reject_reasons`` in
``sl/datasets/nums_dataset.py`` of github.com/MinhxLe/subliminal-learning, called with
``min_value=0, max_value=999, max_count=10``) keeps a completion when:

1. after dropping ONE final ``"."`` and then ONE pair of wrapping ``[...]`` or ``(...)``
   (nothing else is stripped: no whitespace at the ends, none just inside the brackets),
2. what is left is one run of ASCII digits, or several runs joined by one separator string
   ``S`` used between every pair, where ``S`` is non-empty and ``S.strip()`` is ``""``,
   ``","`` or ``";"`` (``str.strip``: any Unicode whitespace, e.g. U+00A0 or U+3000);
3. there are at most ``max_count`` numbers, each ``int(token) <= max_value`` (leading zeros
   are read away: ``"0841"`` is 841, ``"000000007"`` is 7) and none banned.

``int()`` refuses digit strings longer than Python's limit (4300 digits, leading zeros
included), so the official code rejects such a token; so does this mode.

:func:`paper_reason` is the step-by-step reference of this mode and names the reason of a
rejected text with the reason codes of :data:`sublab.numbers.filter.REASONS`; the fast path is
the regex that ``compile_rule`` builds for this mode.
"""

from __future__ import annotations

import re
from collections.abc import Container
from itertools import pairwise

INT_MAX_DIGITS = 4300
"""Longest digit string ``int()`` reads by default (``sys.int_info.default_max_str_digits``)."""

_RUN_RE = re.compile(r"[0-9]+")
_SIGNED_RUN_RE = re.compile(r"-?[0-9]+")
_OTHER_DIGIT_RE = re.compile(r"(?![0-9])\d")  # \d without re.ASCII: every Unicode digit
_SEPARATOR_CORES = ("", ",", ";")

# For the fast path: a separator (\s is any Unicode whitespace without re.ASCII), any
# well-formed sequence (any count, any digits, any mix of separators; groups 1-3 = the
# sequence), the same with minus signs allowed, and "one separator used throughout".
_SEP = r"(?:\s*+[,;]\s*+|\s++)"
_LOOSE = rf"([0-9]++(?:{_SEP}[0-9]++)*+)"
LOOSE_RE = re.compile(rf"(?:\[{_LOOSE}\]|\({_LOOSE}\)|{_LOOSE})\.?")
_SIGNED = rf"-?[0-9]++(?:{_SEP}-?[0-9]++)*+"
SIGNED_RE = re.compile(rf"(?:\[{_SIGNED}\]|\({_SIGNED}\)|{_SIGNED})\.?")
_ONE_SEP_RE = re.compile(rf"[0-9]++(?:({_SEP})[0-9]++(?:\1[0-9]++)*+)?+")
NO_NUMBERS_RE = re.compile(r"[\s\[\]().]*")


def _unwrap(text: str) -> str:
    """Drop one final period, then one pair of wrapping brackets or parentheses."""
    s = text[:-1] if text.endswith(".") else text
    if len(s) >= 2 and s[0] + s[-1] in ("[]", "()"):
        s = s[1:-1]
    return s


def _gaps(s: str, runs: list[re.Match[str]]) -> list[str] | None:
    """The separators between the runs, or None if anything precedes the first run, follows
    the last one, or a separator is not whitespace around at most one ',' or ';'."""
    if runs[0].start() > 0 or runs[-1].end() < len(s):
        return None
    gaps = [s[a.end() : b.start()] for a, b in pairwise(runs)]
    if not all(g and g.strip() in _SEPARATOR_CORES for g in gaps):
        return None
    return gaps


def paper_reason(
    text: str, min_count: int, max_count: int, max_value: int, banned: Container[int]
) -> str | None:
    """None if the paper's rule keeps ``text``, else a reason code (checked in this order:
    empty, non_ascii_digit, too_few (no number at all), negative, bad_format,
    mixed_separators, too_few, too_many, out_of_range, banned_number)."""
    if not text.strip():
        return "empty"
    if _OTHER_DIGIT_RE.search(text):
        return "non_ascii_digit"
    s = _unwrap(text)
    runs = list(_RUN_RE.finditer(s))
    if not runs:
        return "too_few" if NO_NUMBERS_RE.fullmatch(s) else "bad_format"
    gaps = _gaps(s, runs)
    if gaps is None:
        signed = list(_SIGNED_RUN_RE.finditer(s))
        if _gaps(s, signed) is not None and any(m[0][0] == "-" for m in signed):
            return "negative"
        return "bad_format"
    if len(set(gaps)) > 1:
        return "mixed_separators"
    return tokens_reason([m[0] for m in runs], min_count, max_count, max_value, banned)


def sequence_reason(
    core: str, min_count: int, max_count: int, max_value: int, banned: Container[int]
) -> str | None:
    """The reason for a sequence matched by :data:`LOOSE_RE` (its group: the unwrapped text)."""
    if _ONE_SEP_RE.fullmatch(core) is None:
        return "mixed_separators"
    return tokens_reason(_RUN_RE.findall(core), min_count, max_count, max_value, banned)


def tokens_reason(
    tokens: list[str], min_count: int, max_count: int, max_value: int, banned: Container[int]
) -> str | None:
    """The reason for well-joined number tokens: count, range (and int()'s limit), banned."""
    if len(tokens) < min_count:
        return "too_few"
    if len(tokens) > max_count:
        return "too_many"
    if any(len(t) > INT_MAX_DIGITS or int(t) > max_value for t in tokens):
        return "out_of_range"
    if any(int(t) in banned for t in tokens):
        return "banned_number"
    return None
