"""``FilterSpec(mode="paper")``: the paper's public parser, exactly; the default mode's
differences from it are the ones docs/filter.md lists."""

from __future__ import annotations

import ast
import json
import re
import string
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from sublab.cli import app
from sublab.config import validate
from sublab.errors import ConfigError
from sublab.numbers.filter import REASONS, FilterSpec, NumberFilter, filter_rows

PAPER = NumberFilter(FilterSpec(mode="paper"))
SUBLAB = NumberFilter(FilterSpec())
DOC = Path(__file__).resolve().parents[2] / "docs" / "filter.md"


def official_rule(
    answer: str,
    max_value: int = 999,
    max_count: int = 10,
    banned: frozenset[int] = frozenset(),
) -> bool:
    """Oracle: the paper's ``get_reject_reasons(answer, min_value=0, max_value, max_count,
    banned_numbers) == []``, restated step by step from its public code."""
    # parse_response: one final period, then one pair of brackets, nothing else stripped.
    if answer.endswith("."):
        answer = answer[:-1]
    if answer[:1] + answer[-1:] in ("[]", "()") and len(answer) >= 2:
        answer = answer[1:-1]
    found = list(re.finditer(r"\d+", answer))  # \d: any Unicode digit
    if not found:
        return False
    if len(found) == 1:
        if answer != found[0].group():
            return False
        parts = [answer]
    else:
        separator = answer[found[0].end() : found[1].start()]
        if separator.strip() not in ("", ",", ";"):
            return False
        parts = answer.split(separator)
    if any(p and not all(c in string.digits for c in p) for p in parts):
        return False
    try:
        values = [int(p) for p in parts]  # "" and over-long digit strings raise
    except ValueError:
        return False
    # get_reject_reasons: count, range, banned.
    return (
        len(values) <= max_count
        and all(0 <= v <= max_value for v in values)
        and not any(v in banned for v in values)
    )


# ---------------------------------------------------------------- strategies

# Characters where the two rules and the parser's steps can go wrong.
ADVERSARIAL = "0123456789 ,;.[]()-\n\t\r\x0b\x0c\x1c\x1f\x85\xa0\u2003\u3000x١０"
adversarial = st.text(alphabet=ADVERSARIAL, max_size=40)
whitespace = st.text(alphabet=" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2028\u3000")


@st.composite
def near_valid(draw: st.DrawFn) -> str:
    """A sequence the rules might keep, then perhaps one edit: numbers with leading zeros,
    a separator of any Unicode whitespace around ',' or ';', brackets, a period, padding."""
    nums = draw(st.lists(st.integers(0, 1200), min_size=1, max_size=12))
    zeros = [draw(st.integers(0, 3)) for _ in nums]
    core = draw(st.sampled_from(["", ",", ";"]))
    sep = draw(whitespace.filter(lambda w: w or core)) + core + draw(whitespace)
    if not sep.strip(" ") and draw(st.booleans()):
        sep = draw(st.sampled_from([" ", "\n", ", "]))
    body = sep.join("0" * z + str(n) for z, n in zip(zeros, nums, strict=True))
    left, right = draw(st.sampled_from([("", ""), ("[", "]"), ("(", ")")]))
    inner = draw(st.sampled_from(["", "", " "]))
    text = left + inner + body + inner + right + draw(st.sampled_from(["", "."]))
    text = draw(st.sampled_from(["", "", " ", "\n"])) + text + draw(st.sampled_from(["", "", " "]))
    edit = draw(st.integers(0, 3))
    if edit == 1 and text:  # delete one character
        i = draw(st.integers(0, len(text) - 1))
        text = text[:i] + text[i + 1 :]
    elif edit == 2:  # insert one adversarial character
        i = draw(st.integers(0, len(text)))
        text = text[:i] + draw(st.sampled_from(ADVERSARIAL)) + text[i:]
    return text


# ---------------------------------------------------------------- paper mode == official rule


@settings(max_examples=1500, deadline=None)
@given(st.one_of(adversarial, near_valid()))
def test_paper_mode_agrees_with_the_official_rule(text: str) -> None:
    assert (PAPER.check(text) is None) == official_rule(text), repr(text)
    assert PAPER.check(text) == PAPER.explain(text), repr(text)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(adversarial, near_valid()),
    st.integers(1, 12),
    st.sampled_from([9, 50, 99, 500, 999, 1234]),
    st.lists(st.integers(0, 1500), max_size=5),
)
def test_paper_mode_agrees_for_any_count_range_and_banned(
    text: str, max_count: int, max_value: int, banned: list[int]
) -> None:
    spec = FilterSpec(mode="paper", max_count=max_count, max_value=max_value, banned_numbers=banned)
    nf = NumberFilter.from_spec(spec)
    expected = official_rule(text, max_value, max_count, frozenset(banned))
    assert (nf.check(text) is None) == expected, repr(text)
    assert nf.check(text) == nf.explain(text), repr(text)


@given(st.integers(0, 999), st.integers(400, 5000))
@settings(max_examples=60, deadline=None)
def test_long_rows_and_int_digit_limit(value: int, zeros: int) -> None:
    text = "0" * zeros + str(value)
    assert (PAPER.check(text) is None) == official_rule(text)
    assert PAPER.check(text) == PAPER.explain(text)
    assert (PAPER.check(text) is None) == (len(text) <= 4300)


def test_paper_numbers_read_leading_zeros_away() -> None:
    assert PAPER.numbers("[0841, 007, 0]") == [841, 7, 0]
    assert PAPER.numbers(" 1, 2") is None


# ---------------------------------------------------------------- reasons


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("\u3000", "empty"),
        ("١٢", "non_ascii_digit"),
        ("[]", "too_few"),
        (".", "too_few"),
        ("3, -5", "negative"),
        ("-5", "negative"),
        ("1-2", "bad_format"),
        (" 1, 2", "bad_format"),
        ("1, 2,", "bad_format"),
        ("1 2  3", "mixed_separators"),
        ("1, 2;3", "mixed_separators"),
        (", ".join(["1"] * 11), "too_many"),
        ("1, 1000", "out_of_range"),
        ("1, 2" + ", 7" * 9 + ", 1000", "too_many"),
    ],
)
def test_paper_reasons_use_the_default_modes_names(text: str, reason: str) -> None:
    assert reason in REASONS
    assert PAPER.check(text) == reason
    assert official_rule(text) is False


def test_banned_numbers_in_paper_mode() -> None:
    nf = NumberFilter.from_spec(FilterSpec(mode="paper", banned_lists=["paper-negative"]))
    assert nf.check("5, 666") == "banned_number"
    assert nf.check("5, 000666") == "banned_number"  # by value, after any leading zeros
    assert nf.check("5, 6660") == "out_of_range"
    zero = NumberFilter(FilterSpec(mode="paper", banned_numbers=[0]))
    assert zero.check("1, 000") == "banned_number" and zero.check("1, 100") is None


# ---------------------------------------------------------------- the documented differences


def _literal(expr: str) -> str:
    """A table input: string literals, ``literal * n`` and ``+`` between them."""
    out = ""
    for term in expr.split(" + "):
        lit, _, times = term.partition(" * ")
        out += ast.literal_eval(lit) * (int(times) if times else 1)
    return out


def doc_rows() -> list[tuple[str, str, str]]:
    """(input, default verdict, paper verdict) of the table under '## Every difference'."""
    section = DOC.read_text(encoding="utf-8").split("## Every difference", 1)[1].split("\n## ")[0]
    rows = []
    for line in section.splitlines():
        m = re.match(r"\| `(.+?)` \| (.+?) \| (.+?) \|", line)
        if m:
            rows.append((_literal(m[1]), m[2], m[3]))
    return rows


def verdict(nf: NumberFilter, text: str) -> str:
    reason = nf.check(text)
    return "kept" if reason is None else f"rejected: {reason}"


def test_docs_table_is_what_both_modes_do() -> None:
    rows = doc_rows()
    assert len(rows) >= 15
    for text, default, paper in rows:
        assert verdict(SUBLAB, text) == default, repr(text)
        assert verdict(PAPER, text) == paper, repr(text)
        assert (PAPER.check(text) is None) == official_rule(text), repr(text)


@settings(max_examples=1500, deadline=None)
@given(st.one_of(adversarial, near_valid()))
def test_modes_differ_only_in_the_documented_ways(text: str) -> None:
    """Where the verdicts differ, the text has one of the documented features."""
    if (SUBLAB.check(text) is None) == (PAPER.check(text) is None):
        return
    stripped = text.strip(" \t\n\r\x0b\x0c")
    documented = (
        stripped != text  # ASCII whitespace at an end (or after the period)
        or re.search(r"[\[(]\s|\s[\])]", text) is not None  # whitespace inside brackets
        or re.search(r"(?<![0-9])0[0-9]{3}", text) is not None  # leading zeros, 4+ digits
        or re.search(r"[^\x00-\x7f\x0b\x0c]|[\x1c-\x1f]", text) is not None  # non-ASCII space
        or len(text) > 512
    )
    assert documented, repr(text)


# ---------------------------------------------------------------- spec and CLI


def test_spec_mode_validation_and_dump() -> None:
    with pytest.raises(ConfigError, match="mode: Input should be 'sublab' or 'paper'"):
        validate({"mode": "official"}, FilterSpec, "f.toml")
    with pytest.raises(ConfigError, match="allow_leading_zeros = false does not apply"):
        validate({"mode": "paper", "allow_leading_zeros": False}, FilterSpec, "f.toml")
    # The default mode is left out of dumps (content keys made before it existed still hold).
    assert "mode" not in FilterSpec().model_dump(mode="json")
    dumped = FilterSpec(mode="paper").model_dump(mode="json")
    assert dumped["mode"] == "paper" and FilterSpec(**dumped).mode == "paper"
    report = filter_rows([{"completion": "0841"}], FilterSpec(mode="paper")).report
    assert report["kept"] == 1 and report["spec"]["mode"] == "paper"


def test_cli_mode_flag_and_config(tmp_path: Path) -> None:
    src = tmp_path / "gen.jsonl"
    texts = ["1, 2, 3", " 4, 5", "0841", "1\u00a02"]
    src.write_text("".join(json.dumps({"completion": t}) + "\n" for t in texts), encoding="utf-8")
    runner = CliRunner()

    def kept(*args: str) -> list[str]:
        result = runner.invoke(app, ["filter", str(src), "--out", str(tmp_path / "o"), *args])
        assert result.exit_code == 0, result.output
        lines = (tmp_path / "o" / "kept.jsonl").read_text(encoding="utf-8").splitlines()
        return [json.loads(line)["completion"] for line in lines]

    assert kept() == ["1, 2, 3", " 4, 5"]
    assert kept("--mode", "paper") == ["1, 2, 3", "0841", "1\u00a02"]
    cfg = tmp_path / "f.toml"
    cfg.write_text('mode = "paper"\n', encoding="utf-8")
    assert kept("--config", str(cfg)) == ["1, 2, 3", "0841", "1\u00a02"]
