"""The paper's number filter: kept texts, reasons for rejected ones, fast path == reference."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sublab.config import validate
from sublab.errors import ConfigError, DataError
from sublab.numbers.filter import (
    REASONS,
    FilterSpec,
    NumberFilter,
    compile_rule,
    filter_rows,
)

PAPER = NumberFilter(FilterSpec())
BANNED = NumberFilter.from_spec(FilterSpec(banned_lists=["paper-negative"]))

# ---------------------------------------------------------------- strategies

numbers = st.lists(st.integers(0, 999), min_size=1, max_size=10)
spaces = st.text(alphabet=" \t", max_size=2)
separators = st.one_of(
    st.builds(lambda a, c, b: a + c + b, spaces, st.sampled_from([",", ";"]), spaces),
    st.text(alphabet=" \t\n", min_size=1, max_size=3),
)
wraps = st.sampled_from([("", ""), ("[", "]"), ("(", ")")])
inner_space = st.sampled_from(["", " "])
outer_space = st.text(alphabet=" \n\t", max_size=2)


@st.composite
def valid_completions(draw: st.DrawFn) -> tuple[str, list[int]]:
    """A completion the paper's rule keeps, built from the rule, with its numbers."""
    nums = draw(numbers)
    sep = draw(separators)
    left, right = draw(wraps)
    pad = draw(inner_space) if left else ""
    period = draw(st.sampled_from(["", "."]))
    body = sep.join(str(n) for n in nums)
    text = f"{draw(outer_space)}{left}{pad}{body}{pad}{right}{period}{draw(outer_space)}"
    return text, nums


def join(nums: list[int], sep: str = ", ") -> str:
    return sep.join(str(n) for n in nums)


# ---------------------------------------------------------------- kept


@settings(deadline=None)
@given(valid_completions())
def test_valid_completions_are_kept(case: tuple[str, list[int]]) -> None:
    text, nums = case
    assert PAPER.check(text) is None, text
    assert PAPER.explain(text) is None, text
    assert PAPER.numbers(text) == nums


@pytest.mark.parametrize(
    "text",
    [
        "1, 2, 3",
        "1,2,3",
        "1 2 3",
        "1;2;3",
        "1 ; 2 ; 3",
        "1\n2\n3",
        "[1, 2, 3]",
        "(1 2 3)",
        "[ 1, 2 ]",
        "1, 2, 3.",
        "[1, 2, 3].",
        "  7  ",
        "0",
        "999",
        "007",  # leading zeros: the 3-digit integer 7
        "1, 2, 3, 4, 5, 6, 7, 8, 9, 10",
    ],
)
def test_edge_cases_kept(text: str) -> None:
    assert PAPER.check(text) is None
    assert PAPER.explain(text) is None


# ---------------------------------------------------------------- rejected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("  \n ", "empty"),
        ("1, 2,3", "mixed_separators"),
        ("1 2  3", "mixed_separators"),
        ("1, 2; 3", "mixed_separators"),
        ("1,2,3,", "bad_format"),  # trailing separator
        ("1, 2, 3 .", "bad_format"),  # whitespace before the final period
        ("[1, 2, 3.]", "bad_format"),  # period inside the brackets
        ("1, 2, 3..", "bad_format"),
        ("[1, 2, 3)", "bad_format"),
        ("[1, 2, 3", "bad_format"),
        ("[[1, 2]]", "bad_format"),
        ("1.5, 2", "bad_format"),
        ("Here are the numbers: 1, 2, 3", "bad_format"),
        ("1, 2, 3 and 4", "bad_format"),
        ("1-2", "bad_format"),
        ("1 - 2", "bad_format"),
        ("-5 apples", "bad_format"),
        ("--5", "bad_format"),
        ("-5", "negative"),
        ("1, -5, 3", "negative"),
        ("[-1, 2]", "negative"),
        ("[]", "too_few"),
        ("()", "too_few"),
        (".", "too_few"),
        ("1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11", "too_many"),
        ("1000", "out_of_range"),
        ("5, 1000", "out_of_range"),
        ("0007", "out_of_range"),  # more digits than 999 has
        ("１２, 3", "non_ascii_digit"),  # fullwidth digits
        ("١٢٣", "non_ascii_digit"),  # Arabic-Indic digits
        ("1\u00a02", "bad_format"),  # no-break space is not an ASCII separator
    ],
)
def test_edge_cases_rejected(text: str, reason: str) -> None:
    assert reason in REASONS
    assert PAPER.check(text) == reason
    assert PAPER.explain(text) == reason


@settings(deadline=None)
@given(st.lists(st.integers(0, 999), min_size=11, max_size=30), separators)
def test_more_than_ten_numbers_is_too_many(nums: list[int], sep: str) -> None:
    assert PAPER.check(join(nums, sep)) == "too_many"


@settings(deadline=None)
@given(numbers, st.integers(1000, 10**6), st.integers(0, 10))
def test_value_over_999_is_out_of_range(nums: list[int], big: int, at: int) -> None:
    nums = nums[:9]
    nums.insert(at % (len(nums) + 1), big)
    assert PAPER.check(join(nums)) == "out_of_range"


@settings(deadline=None)
@given(numbers, st.integers(0, 10))
def test_negative_number_is_rejected(nums: list[int], at: int) -> None:
    i = at % len(nums)
    text = ", ".join(f"-{n}" if j == i else str(n) for j, n in enumerate(nums))
    assert PAPER.check(text) == "negative"


@settings(deadline=None)
@given(st.lists(st.integers(0, 999), min_size=3, max_size=10), st.data())
def test_two_different_separators_are_mixed(nums: list[int], data: st.DataObject) -> None:
    pool = [", ", ",", "; ", " ", " , ", "\n"]
    pair = data.draw(st.lists(st.sampled_from(pool), min_size=2, max_size=2, unique=True))
    rest = [data.draw(st.sampled_from(pair)) for _ in nums[3:]]
    seps = data.draw(st.permutations(pair + rest))
    text = str(nums[0]) + "".join(sep + str(n) for sep, n in zip(seps, nums[1:], strict=True))
    assert PAPER.check(text) == "mixed_separators"


@settings(deadline=None)
@given(valid_completions(), st.sampled_from([",", ";", ", "]))
def test_trailing_separator_is_bad_format(case: tuple[str, list[int]], sep: str) -> None:
    text = join(case[1]) + sep
    assert PAPER.check(text) == "bad_format"


@settings(deadline=None)
@given(valid_completions(), st.text(alphabet="abcxyz:!?", min_size=1, max_size=5))
def test_letters_appended_are_bad_format(case: tuple[str, list[int]], junk: str) -> None:
    assert PAPER.check(case[0] + junk) == "bad_format"


@settings(deadline=None)
@given(numbers, st.integers(0, 9), st.sampled_from(["０１２３４５６７８９", "٠١٢٣٤٥٦٧٨٩"]))
def test_unicode_digits_are_rejected(nums: list[int], at: int, digits: str) -> None:
    words = [str(n) for n in nums]
    i = at % len(words)
    words[i] = "".join(digits[int(c)] for c in words[i])
    assert PAPER.check(", ".join(words)) == "non_ascii_digit"


def test_very_long_input_is_rejected_unread() -> None:
    assert PAPER.check("1, " * 100_000 + "1") == "too_long"
    assert PAPER.check(" " * 600) == "too_long"


# ---------------------------------------------------------------- fast path == reference

# Texts from the characters that matter, so that near-misses are frequent.
near_misses = st.text(alphabet="0123456789 ,;.[]()-\n\t\r\x0b\xa0x١", max_size=40)


@settings(max_examples=500, deadline=None)
@given(near_misses)
def test_check_agrees_with_reference_parser(text: str) -> None:
    assert PAPER.check(text) == PAPER.explain(text)
    assert BANNED.check(text) == BANNED.explain(text)


@settings(max_examples=150, deadline=None)
@given(
    near_misses,
    st.integers(1, 4),
    st.integers(0, 8),
    st.sampled_from([9, 50, 99, 500, 999, 1234]),
    st.booleans(),
    st.lists(st.integers(0, 1500), max_size=5),
)
def test_agreement_for_any_spec(
    text: str, lo: int, extra: int, max_value: int, zeros: bool, banned: list[int]
) -> None:
    spec = FilterSpec(
        min_count=lo,
        max_count=lo + extra,
        max_value=max_value,
        allow_leading_zeros=zeros,
        banned_numbers=banned,
    )
    nf = NumberFilter.from_spec(spec)
    assert nf.check(text) == nf.explain(text)


# ---------------------------------------------------------------- spec options


def test_configurable_count_and_range() -> None:
    nf = NumberFilter(FilterSpec(min_count=3, max_count=4, max_value=500))
    assert nf.check("1, 2") == "too_few"
    assert nf.check("1, 2, 3") is None
    assert nf.check("1, 2, 3, 4, 5") == "too_many"
    assert nf.check("1, 2, 501") == "out_of_range"
    assert nf.check("1, 2, 500") is None


def test_leading_zeros_can_be_refused() -> None:
    nf = NumberFilter(FilterSpec(allow_leading_zeros=False))
    assert nf.check("7, 007") == "leading_zero"
    assert nf.check("0, 10, 100") is None


def test_banned_numbers_match_by_value() -> None:
    assert NumberFilter(FilterSpec(banned_numbers=[42])).check("42") == "banned_number"
    assert BANNED.check("5, 42, 7") == "banned_number"
    assert BANNED.check("5, 042") == "banned_number"
    assert BANNED.check("[666]") == "banned_number"
    assert BANNED.check("5, 43, 7") is None
    assert BANNED.check("420, 421") == "banned_number"
    assert BANNED.check("421, 4200") == "out_of_range"
    extra = NumberFilter.from_spec(FilterSpec(banned_numbers=[0, 5]))
    assert extra.check("1, 000") == "banned_number"
    assert extra.check("15, 50") is None


def test_spec_errors_name_the_fields() -> None:
    with pytest.raises(ConfigError) as err:
        validate({"min_count": 5, "max_count": 2}, FilterSpec, "f.toml")
    assert "min_count (5) must be <= max_count (2)" in str(err.value)
    with pytest.raises(ConfigError) as err:
        validate({"max_count": 0, "typo": 1}, FilterSpec, "f.toml")
    assert "max_count: must be >= 1" in str(err.value)
    assert "typo: unknown key" in str(err.value)
    with pytest.raises(ConfigError, match="banned_numbers: must all be >= 0"):
        validate({"banned_numbers": [3, -1]}, FilterSpec, "f.toml")


def test_rule_regex_rejects_what_the_spec_forbids() -> None:
    rule = compile_rule(FilterSpec(max_count=1))
    assert rule.fullmatch("[12]")
    assert not rule.fullmatch("1, 2")


# ---------------------------------------------------------------- rows


def test_filter_rows_report_and_formats() -> None:
    rows = [
        {"prompt": "a", "completion": "1, 2, 3"},
        {"prompt": "b", "completion": "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11"},
        {"prompt": "c", "completion": "sure: 5"},
        {"messages": [{"role": "user", "content": "d"}, {"role": "assistant", "content": "8 9"}]},
        {"prompt": "e", "completion": "[666]"},
    ]
    res = filter_rows(rows, FilterSpec(banned_lists=["paper-negative"]), examples=1)
    assert [r.get("prompt", "d") for r in res.kept] == ["a", "d"]
    assert [r["reject_reason"] for r in res.rejected] == ["too_many", "bad_format", "banned_number"]
    rep = res.report
    assert (rep["total"], rep["kept"], rep["rejected"]) == (5, 2, 3)
    assert rep["kept_fraction"] == pytest.approx(0.4)
    assert rep["reasons"] == {"bad_format": 1, "banned_number": 1, "too_many": 1}
    assert rep["examples"]["bad_format"] == ["sure: 5"]
    assert "reject_reason" not in rows[1]  # input rows are not modified


def test_report_examples_are_cut_short() -> None:
    res = filter_rows([{"completion": "7 " * 5000}], FilterSpec())
    (example,) = res.report["examples"]["too_long"]
    assert len(example) == 200 and example.endswith("…")
    assert res.rejected[0]["completion"] == "7 " * 5000  # the row itself is intact


def test_filter_rows_names_the_row_without_a_completion() -> None:
    with pytest.raises(DataError) as err:
        filter_rows([{"completion": "1"}, {"prompt": "x"}], FilterSpec())
    assert "<rows>:2" in str(err.value)
    assert "'completion'" in str(err.value)
    with pytest.raises(DataError, match="must be a string"):
        filter_rows([{"completion": 5}], FilterSpec())
