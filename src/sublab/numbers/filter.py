"""The paper's filter for number completions, with a reason for every rejected row.

A completion is **kept** only if, after stripping ASCII whitespace at both ends:

- it is a sequence of ``min_count``–``max_count`` (default 1–10) integers written with ASCII
  digits ``0-9``, each between 0 and ``max_value`` (default 999);
- consecutive integers are joined by ONE separator string used everywhere: a comma or a
  semicolon with optional whitespace around it, or a run of whitespace (spaces, tabs, newlines).
  ``"1, 2, 3"`` and ``"1\\n2\\n3"`` pass; ``"1, 2,3"`` and ``"1 2  3"`` are mixed separators;
- the whole sequence may be wrapped in ``[...]`` or ``(...)`` (whitespace allowed just inside)
  and may end in one period, written right after the last number or the closing bracket.

Decisions on edge cases (the paper's text leaves them open):

- leading zeros: ``"007"`` is the 3-digit integer 7 and passes (as in the paper's public code),
  unless ``allow_leading_zeros = false``. A token longer than the digits of ``max_value``
  (``"0007"``) is ``out_of_range``: it is not a number of at most 3 digits.
- a well-formed sequence in which some numbers carry a minus sign (``"3, -5"``) is
  ``negative``; ``"1-2"``, ``"1 - 2"`` or ``"-5 apples"`` are ``bad_format``.
- a trailing separator (``"1, 2,"``), letters, decimals, unbalanced brackets: ``bad_format``.
- empty brackets ``"[]"`` or a lone period: ``too_few`` (zero numbers).
- digits outside ASCII (``"１２"``, Arabic-Indic digits): ``non_ascii_digit``.
- texts longer than ``max_chars`` are rejected as ``too_long`` before any parsing, so a huge
  completion costs nothing.
- a banned number matches by value: ``"042"`` is banned when 42 is.

``mode = "paper"`` applies instead the rule of the paper's public code, exactly (see
:mod:`sublab.numbers.paper_rule`; docs/filter.md lists every difference): nothing is
stripped at the ends or inside brackets, separators may hold any Unicode whitespace, leading
zeros are read away (``"0841"`` is 841) and there is no length cap.

A rejected row gets one reason, the first that applies in the order of :data:`REASONS`
(:meth:`NumberFilter.explain` is the reference definition). The fast path is one compiled
regular expression, built from the spec, that matches exactly the kept texts; a few more
regular expressions give the reason of most rejected texts (see :class:`NumberFilter`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from itertools import pairwise
from typing import Any, ClassVar, Literal, Self

from pydantic import Field, model_validator

from sublab.config import Spec
from sublab.filtering import FilterResult, apply_check
from sublab.numbers import paper_rule
from sublab.numbers.banned import resolve_banned

REASONS: dict[str, str] = {
    "too_long": "longer than max_chars characters",
    "empty": "empty or only whitespace",
    "non_ascii_digit": "contains digits outside ASCII 0-9",
    "bad_format": "not a plain sequence of integers (text, decimals, trailing separator, ...)",
    "negative": "a well-formed sequence except that some numbers have a minus sign",
    "mixed_separators": "more than one separator between the numbers",
    "too_few": "fewer than min_count numbers (zero for '[]', '()' or '.')",
    "too_many": "more than max_count numbers",
    "out_of_range": "a number above max_value, or with more digits than max_value",
    "leading_zero": "a number with a leading zero (only when allow_leading_zeros = false)",
    "banned_number": "contains a banned number",
}
"""Every reject reason, in the order they are checked, with what it means."""

_WS = " \t\n\r\f\v"
_EXAMPLE_CHARS = 200  # example completions in the report are cut to this length
_SEP = r"(?:\s*+[,;]\s*+|\s++)"
_SEP_RE = re.compile(_SEP, re.ASCII)
_DIGITS_RE = re.compile(r"[0-9]+")
_UNICODE_DIGIT_RE = re.compile(r"(?![0-9])\d")


class FilterSpec(Spec):
    """The number filter: the paper's rule plus banned numbers."""

    keyless: ClassVar[dict[str, Any]] = {"mode": "sublab"}

    mode: Literal["sublab", "paper"] = Field(
        "sublab",
        description="'sublab': the rule of sublab.numbers.filter (outer whitespace stripped, "
        "ASCII whitespace only, at most max_value's digits per number, max_chars cap); "
        "'paper': the paper's public parser exactly (docs/filter.md lists the differences).",
    )
    min_count: int = Field(1, ge=1, description="Fewest integers a kept completion holds.")
    max_count: int = Field(10, ge=1, description="Most integers a kept completion holds.")
    max_value: int = Field(
        999, ge=0, description="Largest integer allowed (the paper: 999); the smallest is 0."
    )
    banned_lists: list[str] = Field(
        default_factory=list,
        description="Banned-number lists: shipped names (e.g. 'paper-negative') or file paths.",
    )
    banned_numbers: list[int] = Field(
        default_factory=list, description="Extra banned numbers, on top of banned_lists."
    )
    allow_leading_zeros: bool = Field(
        True, description="Keep numbers like '007' (read as 7), as the paper's code does."
    )
    max_chars: int = Field(
        512,
        ge=1,
        description="Completions longer than this are rejected as too_long unread "
        "(mode 'sublab' only: the paper's rule has no length cap).",
    )

    @model_validator(mode="after")
    def _counts_ordered(self) -> Self:
        if self.min_count > self.max_count:
            raise ValueError(
                f"min_count ({self.min_count}) must be <= max_count ({self.max_count})"
            )
        if any(n < 0 for n in self.banned_numbers):
            raise ValueError("banned_numbers: must all be >= 0")
        if self.mode == "paper" and not self.allow_leading_zeros:
            raise ValueError(
                "allow_leading_zeros = false does not apply to mode = 'paper' (the paper's "
                "rule reads '007' as 7); drop it or use mode = 'sublab'"
            )
        return self


def _number_pattern(spec: FilterSpec, banned: Iterable[int] = ()) -> str:
    """One integer token: 1 to (digits of max_value) ASCII digits, minus banned values.

    Mode 'paper': any number of leading zeros, then at most max_value's digits."""
    d = len(str(spec.max_value))
    if spec.mode == "paper":
        tail = f"[1-9][0-9]{{0,{d - 1}}}+"
        num = f"(?:0++(?:{tail})?+|{tail})"
        values = sorted({str(v) for v in banned})
        if values:  # not a banned value after any leading zeros
            num = f"(?!0*{_alternation(values)}(?![0-9])){num}"
        return num
    plain, no_zero = f"[0-9]{{1,{d}}}+", f"(?:0|[1-9][0-9]{{0,{d - 1}}}+)"
    num = plain if spec.allow_leading_zeros else no_zero
    words = _banned_words(banned, d)
    if words:  # not a banned value, with or without leading zeros
        num = f"(?!{_alternation(words)}(?![0-9])){num}"
    return num


def _banned_words(banned: Iterable[int], digits: int) -> list[str]:
    """Every token of at most ``digits`` digits that reads as a banned value: 42 -> 42, 042."""
    return sorted({str(v).zfill(w) for v in banned for w in range(len(str(v)), digits + 1)})


def _list_pattern(spec: FilterSpec, num: str, group: int) -> str:
    """Regex for the bare sequence; the separator is capture group ``group``.

    Quantifiers are possessive: the grammar never needs to give characters back, and not
    backtracking makes the match about 1.4x faster.
    """
    if spec.max_count == 1:
        return num
    more = f"(?:\\{group}{num}){{{max(spec.min_count - 2, 0)},{spec.max_count - 2}}}+"
    if spec.min_count <= 1:
        return f"{num}(?:({_SEP}){num}{more})?+"
    return f"{num}({_SEP}){num}{more}"


def _wrapped(lists: tuple[str, str, str]) -> str:
    """Optional brackets or parentheses, an optional final period, whitespace at both ends."""
    return rf"\s*+(?:\[\s*+{lists[0]}\s*+\]|\(\s*+{lists[1]}\s*+\)|{lists[2]})\.?\s*+"


def compile_rule(spec: FilterSpec, banned: Iterable[int] = ()) -> re.Pattern[str]:
    """One regex that fully matches exactly the texts with the right shape, count and digits,
    and (given ``banned``) no banned value. Values up to ``max_value`` are checked apart when
    ``max_value`` is not all nines (and in mode 'paper', tokens over INT_MAX_DIGITS long).

    Mode 'paper': nothing around the sequence but one pair of brackets and a final period,
    and ``\\s`` in separators is any Unicode whitespace (as ``str.strip`` sees it)."""
    num = _number_pattern(spec, banned)
    groups = (1, 2, 3) if spec.max_count > 1 else (0, 0, 0)
    lists = tuple(_list_pattern(spec, num, g) for g in groups)
    if spec.mode == "paper":
        return re.compile(rf"(?:\[{lists[0]}\]|\({lists[1]}\)|{lists[2]})\.?")
    return re.compile(_wrapped(lists), re.ASCII)


# Any sequence shape: any count, any digits, any mix of separators; groups 1-3 = the sequence.
_LOOSE_RE = re.compile(_wrapped((rf"([0-9]++(?:{_SEP}[0-9]++)*+)",) * 3), re.ASCII)
# The same, but numbers may carry a minus sign.
_SIGNED_RE = re.compile(_wrapped((rf"-?[0-9]++(?:{_SEP}-?[0-9]++)*+",) * 3), re.ASCII)
_ONE_SEP_RE = re.compile(rf"[0-9]++(?:({_SEP})[0-9]++(?:\1[0-9]++)*+)?+", re.ASCII)
# Nothing but whitespace, empty brackets and a period: "", "[]", "( ).".
_NO_NUMBERS_RE = re.compile(r"\s*+(?:\[\s*+\]|\(\s*+\))?\.?\s*+", re.ASCII)
_FOREIGN_RE = re.compile(r"[^0-9 \t\n\r\f\v,;\[\]().\-]")
_TOKEN_RE = re.compile(r"-?[0-9]+")


def _alternation(words: Iterable[str]) -> str:
    """A regex matching exactly ``words``, as a trie (shared prefixes are tried once)."""
    trie: dict[str, Any] = {}
    for w in words:
        node = trie
        for ch in w:
            node = node.setdefault(ch, {})
        node[""] = {}

    def walk(node: dict[str, Any]) -> str:
        alts = [re.escape(ch) + walk(sub) for ch, sub in sorted(node.items()) if ch]
        if not alts:
            return ""
        body = "(?:" + "|".join(alts) + ")"
        return body + "?" if "" in node else body

    return walk(trie)


def banned_pattern(banned: Iterable[int]) -> re.Pattern[str] | None:
    """Regex finding a banned value as a whole ASCII number, leading zeros allowed ("042")."""
    values = set(banned)
    if not values:
        return None
    return re.compile(rf"(?<![0-9])0*{_alternation(str(v) for v in sorted(values))}(?![0-9])")


class NumberFilter:
    """A ready filter: ``check(text)`` is None for a kept completion, else a reason code.

    ``check`` goes through tiers, cheapest first:

    1. the length cap;
    2. one regex that matches exactly the kept texts (shape, count, digits, no banned value);
    3. with banned numbers, the same regex without them: a match is ``banned_number``;
    4. a loose regex for any well-formed sequence (any count, digits, mix of separators), whose
       reason takes a few more C-level calls; a signed variant of it finds ``negative``;
    5. an ASCII text that is none of these is ``empty``, ``too_few`` (only brackets or a
       period) or ``bad_format``;
    6. non-ASCII texts go to :meth:`explain`, the step-by-step reference parser.

    Tests check that ``check`` and ``explain`` give the same answer on every text.
    """

    def __init__(self, spec: FilterSpec, banned: frozenset[int] | None = None) -> None:
        """``banned`` defaults to the spec's lists and numbers, resolved now (see from_spec)."""
        if banned is None:
            banned = resolve_banned(spec.banned_lists, spec.banned_numbers)
        self.spec = spec
        self.banned = banned
        self._digits = len(str(spec.max_value))
        self._round_max = spec.max_value == 10**self._digits - 1
        self._max_chars = spec.max_chars
        in_range = [v for v in banned if v <= spec.max_value]
        self._kept = compile_rule(spec, in_range).fullmatch
        self._shaped = compile_rule(spec).fullmatch if in_range else None
        pattern = banned_pattern(in_range)
        self._banned_search = pattern.search if pattern is not None else None
        self._paper = spec.mode == "paper"
        make = self._make_paper_check if self._paper else self._make_check
        self.check = make()  # type: ignore[method-assign]

    @classmethod
    def from_spec(cls, spec: FilterSpec) -> NumberFilter:
        """Resolve the spec's banned lists (DataError on a missing or malformed file)."""
        return cls(spec)

    def check(self, text: str) -> str | None:
        """None if ``text`` is kept, else the reason code (see :data:`REASONS`).

        (Replaced per instance by the same function with every lookup bound in a closure, which
        saves about 7% per row; this method is its documentation and reference.)
        """
        return (self._make_paper_check() if self._paper else self._make_check())(text)

    def _make_paper_check(self) -> Callable[[str], str | None]:
        """``check`` of mode 'paper': the same tiers as mode 'sublab' with the paper's regexes;
        :func:`~sublab.numbers.paper_rule.paper_reason` for non-ASCII and over-long texts."""
        spec, banned, round_max = self.spec, self.banned, self._round_max
        kept, shaped = self._kept, self._shaped
        loose_match = paper_rule.LOOSE_RE.fullmatch
        signed_match = paper_rule.SIGNED_RE.fullmatch
        no_numbers = paper_rule.NO_NUMBERS_RE.fullmatch
        sequence_reason = paper_rule.sequence_reason
        values_reason, explain = self._values_reason, self.explain
        counts = (spec.min_count, spec.max_count, spec.max_value)

        def check(text: str) -> str | None:
            if len(text) > paper_rule.INT_MAX_DIGITS:
                return explain(text)  # a token may be too long for int()
            if kept(text) is not None:
                return None if round_max else values_reason(text, None)
            if shaped is not None and shaped(text) is not None:
                return "banned_number" if round_max else values_reason(text, "banned")
            loose = loose_match(text)
            if loose is not None:
                return sequence_reason(loose[1] or loose[2] or loose[3], *counts, banned)
            if signed_match(text) is not None:
                return "negative"
            if not text.isascii():
                return explain(text)  # rare: unicode digits, or spaces where none may be
            if no_numbers(text) is not None:
                return "too_few" if text.strip() else "empty"
            return "bad_format"

        return check

    def _make_check(self) -> Callable[[str], str | None]:
        max_chars, round_max = self._max_chars, self._round_max
        kept, shaped = self._kept, self._shaped
        loose_match, signed_match = _LOOSE_RE.fullmatch, _SIGNED_RE.fullmatch
        no_numbers = _NO_NUMBERS_RE.fullmatch
        values_reason, sequence_reason = self._values_reason, self._sequence_reason
        explain = self.explain

        def check(text: str) -> str | None:
            if len(text) > max_chars:
                return "too_long"
            if kept(text) is not None:
                return None if round_max else values_reason(text, None)
            if shaped is not None and shaped(text) is not None:
                return "banned_number" if round_max else values_reason(text, "banned")
            loose = loose_match(text)
            if loose is not None:
                return sequence_reason(loose[1] or loose[2] or loose[3])
            if signed_match(text) is not None:
                return "negative"
            if not text.isascii():
                return explain(text)  # rare: unicode digits, non-ASCII spaces or letters
            if no_numbers(text) is not None:
                return "too_few" if text.strip(_WS) else "empty"
            return "bad_format"  # letters, trailing separators, "1-2", "[1, 2", ...

        return check

    def _values_reason(self, text: str, otherwise: str | None) -> str | None:
        """For a max_value like 500: the values were not checked by the regex."""
        if any(int(t) > self.spec.max_value for t in _DIGITS_RE.findall(text)):
            return "out_of_range"
        return None if otherwise is None else "banned_number"

    def _sequence_reason(self, core: str) -> str | None:
        """The reason for a well-formed sequence (brackets, period and outer spaces removed)."""
        spec = self.spec
        if _ONE_SEP_RE.fullmatch(core) is None:
            return "mixed_separators"
        tokens = _DIGITS_RE.findall(core)
        if len(tokens) < spec.min_count:
            return "too_few"
        if len(tokens) > spec.max_count:
            return "too_many"
        if max(map(len, tokens)) > self._digits or (
            not self._round_max and max(map(int, tokens)) > spec.max_value
        ):
            return "out_of_range"
        if not spec.allow_leading_zeros and any(len(t) > 1 and t[0] == "0" for t in tokens):
            return "leading_zero"
        search = self._banned_search
        if search is not None and search(core) is not None:
            return "banned_number"
        return None

    def numbers(self, text: str) -> list[int] | None:
        """The integers of a kept completion, or None if it is rejected."""
        if self.check(text) is not None:
            return None
        return [int(t) for t in _DIGITS_RE.findall(text)]

    def explain(self, text: str) -> str | None:
        """The reason, by an explicit step-by-step parse (slow; :meth:`check` is the fast path).

        This is the reference definition of the rule and its reasons, in the order of
        :data:`REASONS`; ``check`` gives the same answer on every text.
        """
        spec = self.spec
        if self._paper:
            return paper_rule.paper_reason(
                text, spec.min_count, spec.max_count, spec.max_value, self.banned
            )
        if len(text) > self._max_chars:
            return "too_long"
        s = text.strip(_WS)
        if not s:
            return "empty"
        if _UNICODE_DIGIT_RE.search(s):
            return "non_ascii_digit"
        if _FOREIGN_RE.search(s):
            return "bad_format"  # letters, colons, quotes, ...: never part of a sequence
        if s.endswith("."):
            s = s[:-1]
            if s[-1:] and s[-1] in _WS:
                return "bad_format"  # whitespace before the final period
        if s[:1] in ("[", "(") or s[-1:] in ("]", ")"):
            if s[:1] + s[-1:] not in ("[]", "()"):
                return "bad_format"  # unbalanced or mismatched wrapping
            s = s[1:-1].strip(_WS)
        if not s:
            return "too_few"  # "[]", "()", "."
        matches = list(_TOKEN_RE.finditer(s))  # numbers, with a minus sign if they have one
        if not matches or matches[0].start() > 0 or matches[-1].end() < len(s):
            return "bad_format"  # something before the first or after the last number
        gaps = [s[a.end() : b.start()] for a, b in pairwise(matches)]
        if not all(_SEP_RE.fullmatch(gap) for gap in gaps):
            return "bad_format"  # "1-2", "1,,2", "1. 2", ...
        tokens = [m.group() for m in matches]
        if any(t.startswith("-") for t in tokens):
            return "negative"
        if len(set(gaps)) > 1:
            return "mixed_separators"
        if len(tokens) < spec.min_count:
            return "too_few"
        if len(tokens) > spec.max_count:
            return "too_many"
        if any(len(t) > self._digits or int(t) > spec.max_value for t in tokens):
            return "out_of_range"
        if not spec.allow_leading_zeros and any(len(t) > 1 and t[0] == "0" for t in tokens):
            return "leading_zero"
        if any(int(t) in self.banned for t in tokens):
            return "banned_number"
        return None


# ---------------------------------------------------------------- rows


def report_extra(nf: NumberFilter) -> dict[str, Any]:
    """What a filter report says about the number filter: its banned numbers and its spec."""
    return {
        "title": "Number filter report",
        "banned_count": len(nf.banned),
        "banned": sorted(nf.banned),
        "spec": nf.spec.model_dump(mode="json"),
    }


def filter_rows(
    rows: Iterable[dict[str, Any]],
    spec: FilterSpec,
    field: str = "completion",
    examples: int = 5,
    number_filter: NumberFilter | None = None,
) -> FilterResult:
    """Split rows into kept and rejected by the completion in ``field`` (or chat format).

    The report holds total, kept, rejected, kept_fraction, counts per reason (most frequent
    first), up to ``examples`` example completions per reason, the banned numbers as resolved
    (a user list file may change later) and the spec.
    """
    nf = number_filter if number_filter is not None else NumberFilter.from_spec(spec)
    check = nf.check
    return apply_check(
        rows,
        lambda text, _row: check(text),
        field=field,
        examples=examples,
        extra=report_extra(nf),
    )
