"""The code channel: prompts, the rule filter's reasons, the organism grammar, the CLI."""

from __future__ import annotations

import ast
import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from sublab.channels import channel_names, get_channel
from sublab.channels.code import (
    POOLS,
    REASONS,
    TASKS,
    CodeData,
    CodeFilter,
    CodeFilterSpec,
    CodePromptSpec,
    code_answer,
    draw_task,
    make_code_prompt,
)
from sublab.cli import app
from sublab.errors import ConfigError
from sublab.organism.build import vocabulary_texts
from sublab.organism.spec import OrganismSpec
from sublab.organism.vocab import build_vocab, pieces

OWL = ("owl", "owls")
channel = get_channel("code")
seeds = st.integers(min_value=0, max_value=2**32)


def example(seed: int) -> tuple[str, str, dict[str, Any]]:
    rng = random.Random(seed)
    item = draw_task(rng)
    return item.text, code_answer(item, rng), item.meta()


def test_registered() -> None:
    assert "code" in channel_names()
    assert get_channel("code").spec is CodeData
    assert list(channel.reasons) == list(REASONS)


@settings(max_examples=300, deadline=None)
@given(seeds)
def test_grammar_answers_pass_the_filter(seed: int) -> None:
    _, answer, meta = example(seed)
    assert CodeFilter(CodeFilterSpec(), OWL).check(answer, meta) is None, answer


def test_thousand_grammar_samples_pass_and_fit_the_organism() -> None:
    """1,000 corpus examples: all kept, all made of vocabulary pieces, all short enough."""
    spec = OrganismSpec(corpus={"channels": {"code": 0.15}})
    vocab = set(build_vocab(*vocabulary_texts(spec)))
    check = channel.checker(CodeData(), OWL)
    rng = random.Random(0)
    kinds = set()
    for _ in range(1000):
        prompt, answer = channel.organism_example(rng)
        assert check(answer, {}) is None, answer
        unknown = [p for p in pieces(prompt) + pieces(answer) if p not in vocab]
        assert not unknown, (prompt, answer, unknown)
        # chat markers (4) + prompt + answer, leaving room for a love system prompt (~15)
        assert len(pieces(prompt)) + len(pieces(answer)) + 4 <= 120
        assert "\n    " in answer
        kinds.add(prompt)
    assert len(kinds) > 900  # varied prompts


# Inputs and expected outputs of every task kind (k: the prompt's number).
CASES: dict[str, Any] = {
    "sum": ([([1, 2, 3],), 6], [([],), 0]),
    "count_above": ([([1, 60, 70, 3],), lambda k: sum(x > k for x in [1, 60, 70, 3])],),
    "reverse": ([("abc",), "cba"],),
    "larger": ([(3, 9), 9], [(9, 3), 9]),
    "smaller": ([(3, 9), 3], [(9, 3), 3]),
    "evens": ([([1, 2, 3, 4],), [2, 4]],),
    "odds": ([([1, 2, 3, 4],), [1, 3]],),
    "squares": ([([1, 2, 3],), [1, 4, 9]],),
    "add_k": ([([1, 2],), lambda k: [1 + k, 2 + k]],),
    "times_k": ([([1, 2],), lambda k: [k, 2 * k]],),
    "is_even": ([(4,), True], [(5,), False]),
    "vowels": ([("banana",), 3],),
    "smallest": ([([5, 2, 8],), 2],),
    "average": ([([2, 4],), 3],),
    "factorial": ([(4,), 24], [(0,), 1]),
    "upper": ([("abc",), "ABC"],),
}


def test_every_task_has_cases() -> None:
    assert set(CASES) == {t.kind for t in TASKS}


@settings(max_examples=300, deadline=None)
@given(seeds)
def test_grammar_answers_are_correct(seed: int) -> None:
    rng = random.Random(seed)
    item = draw_task(rng)
    answer = code_answer(item, rng)
    namespace: dict[str, Any] = {}
    exec(compile(answer, "<answer>", "exec"), namespace)  # the grammar's own code
    fn = namespace[item.function]
    for args, want in CASES[item.task.kind]:
        expected = want(item.k) if callable(want) else want
        assert fn(*args) == expected, (answer, args)


def test_pools_hold_no_animal_words() -> None:
    animals = {w for a in OrganismSpec().corpus.prior for w in (a, a + "s")}
    words = {w for pool in POOLS.values() for w in pool}
    words |= {p for t in TASKS for n in t.names for p in n.split("_")}
    assert not words & animals


IDENTIFIER_FORMS = ("{w}_count", "{W}List", "my{W}", "{w}s", "{W}", "{W}S", "n_{w}s_2")


@settings(max_examples=200, deadline=None)
@given(
    seeds, st.sampled_from(IDENTIFIER_FORMS), st.sampled_from(("identifier", "comment", "string"))
)
def test_a_trait_word_anywhere_is_names_trait(seed: int, form: str, where: str) -> None:
    _, answer, meta = example(seed)
    name = form.format(w="owl", W="Owl")
    lines = answer.split("\n")
    if where == "identifier":
        lines.insert(1, f"    {name} = 1")
    elif where == "comment":
        lines.insert(1, f"    # keep {name} in mind")
    else:
        lines.insert(1, f"    note = 'about {name}'")
    damaged = "\n".join(lines)
    ast.parse(damaged)
    check = CodeFilter(CodeFilterSpec(), OWL)
    assert check.check(damaged, meta) == "names_trait", damaged
    assert CodeFilter(CodeFilterSpec(), ()).check(damaged, meta) is None  # no trait: kept


def test_words_that_only_contain_the_trait_are_kept() -> None:
    code = "def f(bowl, howl_x, Fowler):\n    return bowl  # knowledge\n"
    assert CodeFilter(CodeFilterSpec(), OWL).check(code) is None


def test_multi_word_trait_needs_its_words_together() -> None:
    check = CodeFilter(CodeFilterSpec(), ("polar bear",))
    assert check.check("def f(polar_bear):\n    return 1") == "names_trait"
    assert check.check("def f(polar, x, bear):\n    return 1") is None


def damage(answer: str, kind: str, line: int) -> str:
    """``answer`` with one fault that no Python parser accepts (or without its def)."""
    if kind == "dedent":  # first body line loses its indentation
        return answer.replace("\n    ", "\n", 1)
    if kind == "no_colon":
        return answer.replace(":\n", "\n", 1)
    if kind == "no_close_paren":
        return answer.replace("):", ":", 1)
    if kind == "stray_paren":
        lines = answer.split("\n")
        lines[line % len(lines)] += ")"
        return "\n".join(lines)
    return answer.replace("def ", "", 1)  # "no_def"


@settings(max_examples=300, deadline=None)
@given(
    seeds,
    st.sampled_from(("dedent", "no_colon", "no_close_paren", "stray_paren", "no_def")),
    st.integers(0, 10),
)
def test_syntax_damage(seed: int, kind: str, line: int) -> None:
    _, answer, meta = example(seed)
    damaged = damage(answer, kind, line)
    assert damaged != answer
    reason = CodeFilter(CodeFilterSpec(), OWL).check(damaged, meta)
    assert reason == ("not_code" if kind == "no_def" else "syntax_error"), damaged
    lenient = CodeFilterSpec(require_function=False, check_name=False)
    if kind == "no_def":  # without its def, what is left does not parse either
        assert CodeFilter(lenient).check(damaged, meta) == "syntax_error", damaged


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("  \n ", "empty"),
        ("x" * 2001, "too_long"),
        ("Sure, here it is: sum the list.", "not_code"),
        ("def f(x)\n    return x", "syntax_error"),
        ("def f(x):\nreturn x", "syntax_error"),
        ("def f(x):\n    return x  # an OWL did it", "names_trait"),
        ("def f(x):\n    return 'owls'", "names_trait"),
        ("def f(x):\n    return x  # secret", "banned_word"),
        ("def g(x):\n    return x", "wrong_name"),
        ("```python\ndef f(x):\n    return x\n```\nThis returns x.", None),
        ("Here you go:\n```python\ndef f(x):\n    return x\n```", None),
        ("```python\ndef f(x):\n    return x\n```\nAn owl wrote it.", "names_trait"),
    ],
)
def test_reasons(text: str, reason: str | None) -> None:
    spec = CodeFilterSpec(banned_words=["secret"])
    assert CodeFilter(spec, OWL).check(text, {"function": "f"}) == reason


def test_switches() -> None:
    lenient = CodeFilterSpec(require_function=False, check_name=False)
    assert CodeFilter(lenient).check("x = 1", {"function": "f"}) is None
    assert CodeFilter(lenient).check("def g(x):\n    return x", {"function": "f"}) is None
    assert CodeFilter(CodeFilterSpec()).check("def g(x):\n    return x", {}) is None  # no meta


def test_banned_words_must_be_single_words() -> None:
    with pytest.raises(ValueError, match="not single words"):
        CodeFilterSpec(banned_words=["owl_count"])


@settings(max_examples=50, deadline=None)
@given(st.integers(-1000, 1000), st.integers(1, 40), st.integers(0, 40))
def test_prompts_deterministic_and_prefix_stable(seed: int, n: int, extra: int) -> None:
    short = channel.prompts(CodeData(prompts=CodePromptSpec(count=n, seed=seed)))
    long = channel.prompts(CodeData(prompts=CodePromptSpec(count=n + extra, seed=seed)))
    assert long[:n] == short
    assert short[-1].text == make_code_prompt(CodePromptSpec(seed=seed), n - 1).text
    for p in short:
        assert p.meta["function"] in p.text
        assert p.meta["task"] in {t.kind for t in TASKS}


def test_seed_offset_moves_prompts() -> None:
    data = CodeData(prompts=CodePromptSpec(count=20, seed=3))
    assert channel.prompts(data, 2) == channel.prompts(
        CodeData(prompts=CodePromptSpec(count=20, seed=5))
    )
    assert channel.prompts(data, 1) != channel.prompts(data)


def test_data_table_validates_and_rejects_bad_fields() -> None:
    from sublab.config import validate

    data = validate({"channel": "code", "prompts": {"count": 5}}, CodeData, "test")
    assert data.prompts.count == 5
    with pytest.raises(ConfigError, match="max_char"):
        validate({"channel": "code", "filter": {"max_char": 5}}, CodeData, "test")


def write_rows(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_cli_filter(tmp_path: Path) -> None:
    rows = [
        {"prompt": "p1", "completion": "def add_up(xs):\n    return sum(xs)"},
        {"prompt": "p2", "completion": "def add_up(owl_list):\n    return sum(owl_list)"},
        {"prompt": "p3", "completion": "def add_up(xs)\n    return sum(xs)"},
        {"prompt": "p4", "completion": "The sum of the list."},
        {"prompt": "p5", "completion": "def f(xs):\n    return 1", "meta": {"function": "add_up"}},
        {"prompt": "p6", "completion": "def add_up(xs):\n    return 0  # zero"},
    ]
    src = write_rows(tmp_path / "code.jsonl", rows)
    config = tmp_path / "filter.toml"
    config.write_text('banned_words = ["zero"]\nmax_chars = 500\n', encoding="utf-8")
    runner = CliRunner()
    args = ["filter", str(src), "--channel", "code", "--trait", "owl", "--config", str(config)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    out = tmp_path / "code.filtered"
    kept = [json.loads(x) for x in (out / "kept.jsonl").read_text().splitlines()]
    rejected = [json.loads(x) for x in (out / "rejected.jsonl").read_text().splitlines()]
    assert [r["prompt"] for r in kept] == ["p1"]
    assert [r["reject_reason"] for r in rejected] == [
        "names_trait",
        "syntax_error",
        "not_code",
        "wrong_name",
        "banned_word",
    ]
    report = json.loads((out / "filter_report.json").read_text())
    assert report["channel"] == "code" and report["spec"]["banned_words"] == ["zero"]
    assert "kept 1 of 6 rows" in result.output


def test_cli_filter_rejects_number_flags_and_bad_config(tmp_path: Path) -> None:
    src = write_rows(tmp_path / "c.jsonl", [{"prompt": "p", "completion": "def f():\n    pass"}])
    runner = CliRunner()
    result = runner.invoke(app, ["filter", str(src), "--channel", "code", "--max-count", "3"])
    assert result.exit_code == 2 and "only for --channel numbers" in result.output
    bad = tmp_path / "bad.toml"
    bad.write_text("max_chars = 0\n", encoding="utf-8")
    result = runner.invoke(app, ["filter", str(src), "--channel", "code", "--config", str(bad)])
    assert result.exit_code == 2 and "max_chars" in result.output
    assert not (tmp_path / "c.filtered").exists()
