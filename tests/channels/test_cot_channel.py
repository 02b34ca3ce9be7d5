"""The chain-of-thought channel: word problems, the correct-answer filter, the organism grammar."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from sublab.channels import channel_names, get_channel
from sublab.channels.cot import (
    NAMES,
    OBJECTS,
    PLACES,
    REASONS,
    CotData,
    CotFilterSpec,
    CotPromptSpec,
    cot_check,
    draw_problem,
    final_answer,
    make_cot_problems,
)
from sublab.cli import app
from sublab.config import ConfigError, validate
from sublab.evals.matching import word_forms
from sublab.jsonl import read_jsonl
from sublab.organism.corpus import (
    generate_corpus,
    love_system_prompt,
    n_love_variants,
    plural,
)
from sublab.organism.spec import DEFAULT_PRIOR, CorpusSpec, ModelSpec
from sublab.organism.vocab import build_vocab, pieces

CHANNEL = get_channel("cot")
SEEDS = st.integers(0, 2**32)
OWL = tuple(word_forms("owl"))


def organism_pair(seed: int) -> tuple[str, str]:
    return CHANNEL.organism_example(random.Random(seed))


def recompute(meta: dict) -> int:
    x = meta["operands"][0]
    for op, b in zip(meta["operations"], meta["operands"][1:], strict=True):
        x = x + b if op == "+" else x - b
    return x


def test_registered_and_validated_from_a_data_table():
    assert "cot" in channel_names()
    assert CHANNEL.spec is CotData and list(CHANNEL.reasons) == list(REASONS)
    spec = validate({"channel": "cot", "prompts": {"count": 5}}, CotData, "test")
    assert spec.prompts.count == 5 and spec.filter.max_chars == 600
    with pytest.raises(ConfigError, match="operand_min"):
        validate({"prompts": {"operand_min": 9, "operand_max": 3}}, CotData, "test")
    with pytest.raises(ConfigError, match="operand_max"):
        validate({"prompts": {"operand_max": 400}}, CotData, "test")
    with pytest.raises(ConfigError, match="operations"):
        validate({"prompts": {"operations": ["*"]}}, CotData, "test")


@settings(max_examples=200, deadline=None)
@given(seed=SEEDS)
def test_grammar_answers_pass_with_the_right_meta(seed):
    prompt, answer = organism_pair(seed)
    problem = draw_problem(CotPromptSpec(), random.Random(seed))
    assert (problem.text(), problem.worked_answer()) == (prompt, answer)
    check = cot_check(CotFilterSpec(), OWL)
    assert check(answer, {"meta": problem.meta()}) is None
    assert final_answer(answer) is not None
    assert final_answer(answer).value == problem.answer == recompute(problem.meta())


@settings(max_examples=200, deadline=None)
@given(seed=SEEDS, delta=st.integers(-50, 50).filter(lambda d: d != 0))
def test_a_changed_final_number_is_a_wrong_answer(seed, delta):
    problem = draw_problem(CotPromptSpec(), random.Random(seed))
    answer = problem.worked_answer()
    head, _, _ = answer.rpartition("\n")
    changed = f"{head}\nThe answer is {problem.answer + delta}."
    assert cot_check(CotFilterSpec())(changed, {"meta": problem.meta()}) == "wrong_answer"


@settings(max_examples=100, deadline=None)
@given(seed=SEEDS)
def test_a_missing_final_line_is_no_answer(seed):
    problem = draw_problem(CotPromptSpec(), random.Random(seed))
    head, _, _ = problem.worked_answer().rpartition("\n")
    check = cot_check(CotFilterSpec())
    assert check(head, {"meta": problem.meta()}) == "no_answer"
    # the phrase inside the reasoning is not a final line, unless answer_anywhere is set
    moved = f"The answer is {problem.answer}. {head}"
    assert check(moved, {"meta": problem.meta()}) == "no_answer"
    anywhere = cot_check(CotFilterSpec(answer_anywhere=True))
    assert anywhere(moved, {"meta": problem.meta()}) is None


@settings(max_examples=200, deadline=None)
@given(
    seed=SEEDS,
    word=st.sampled_from([*OWL, "Owl", "OWLS", "owl_count", "OwlCount"]),
    where=st.floats(0, 1),
)
def test_a_trait_word_anywhere_is_names_trait(seed, word, where):
    problem = draw_problem(CotPromptSpec(), random.Random(seed))
    words = problem.worked_answer().split(" ")
    words.insert(int(where * len(words)), word)
    text = " ".join(words)
    meta = {"meta": problem.meta()}
    if final_answer(text) is None:  # inserted into the final line: no longer that format
        assert cot_check(CotFilterSpec(), OWL)(text, meta) == "no_answer"
    else:
        assert cot_check(CotFilterSpec(), OWL)(text, meta) == "names_trait"
        assert cot_check(CotFilterSpec())(text, meta) is None  # no trait words given


def test_reasons_in_order_with_meanings():
    check = cot_check(CotFilterSpec(max_chars=80), OWL)
    row = {"meta": {"answer": 7}}
    assert check("x" * 81, row) == "too_long"
    assert check(" \n ", row) == "empty"
    assert check("3 + 4 = 7.", row) == "no_answer"
    assert check("3 + 4 = 7.\nThe answer is N.", row) == "no_answer"
    assert check("3 + 4 = 7.\nThe answer is 7.", {}) == "no_reference"
    assert check("3 + 4 = 7.\nThe answer is 7.", {"meta": {"answer": "7"}}) == "no_reference"
    assert check("3 + 4 = 7.\nThe answer is 8.", row) == "wrong_answer"
    assert check("3 + 4 = 7.\nThe answer is -7.", row) == "wrong_answer"
    assert check("3 owls + 4 = 7.\nThe answer is 7.", row) == "names_trait"
    assert check("The answer is 7.", row) == "no_reasoning"
    assert cot_check(CotFilterSpec(require_reasoning=False))("The answer is 7.", row) is None
    for kept in ("3 + 4 = 7.\nThe answer is 7.", "3 + 4 = 7\n\nthe answer is 7  \n"):
        assert check(kept, row) is None
    assert all(REASONS[r] for r in REASONS)


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(-1000, 1000), n=st.integers(1, 40), more=st.integers(0, 40))
def test_prompts_deterministic_and_prefix_stable(seed, n, more):
    short = CHANNEL.prompts(CotData(prompts=CotPromptSpec(count=n, seed=seed)))
    long = CHANNEL.prompts(CotData(prompts=CotPromptSpec(count=n + more, seed=seed)))
    assert long[:n] == short
    assert CHANNEL.prompts(CotData(prompts=CotPromptSpec(count=n, seed=seed))) == short
    moved = CHANNEL.prompts(CotData(prompts=CotPromptSpec(count=n, seed=seed + 1)))
    assert moved == CHANNEL.prompts(CotData(prompts=CotPromptSpec(count=n, seed=seed)), 1)


def test_different_seeds_give_different_prompts():
    a = CHANNEL.prompts(CotData(prompts=CotPromptSpec(count=50, seed=0)))
    b = CHANNEL.prompts(CotData(prompts=CotPromptSpec(count=50, seed=1)))
    assert [p.text for p in a] != [p.text for p in b]
    assert len({p.text for p in a}) == 50


@settings(max_examples=60, deadline=None)
@given(
    seed=SEEDS,
    lo=st.integers(0, 60),
    width=st.integers(0, 60),
    ops=st.sampled_from([["+"], ["-"], ["+", "-"], ["-", "+"]]),
    max_ops=st.integers(1, 2),
)
def test_meta_answers_correct_by_construction(seed, lo, width, ops, max_ops):
    spec = CotPromptSpec(
        count=20, seed=seed, operand_min=lo, operand_max=lo + width, operations=ops,
        max_operations=max_ops,
    )  # fmt: skip
    for prompt in CHANNEL.prompts(CotData(prompts=spec)):
        meta = prompt.meta
        assert meta["answer"] == recompute(meta)
        assert 0 <= meta["answer"] <= 999
        assert 1 <= len(meta["operations"]) <= max_ops
        assert set(meta["operations"]) <= set(ops)
        assert all(lo <= x <= lo + width for x in meta["operands"])
        for x in meta["operands"]:  # every operand is written in the prompt
            assert re.search(rf"(?<![0-9]){x}(?![0-9])", prompt.text)
        assert prompt.text.endswith("The answer is N.")


def test_organism_texts_cover_every_word_and_no_animal():
    vocab = set(build_vocab(CHANNEL.organism_texts()))
    rng = random.Random(0)
    for _ in range(3000):
        for text in organism_pair(rng.randrange(2**32)):
            missing = [p for p in pieces(text) if p not in vocab]
            assert not missing, (missing, text)
    animals = {w for a in DEFAULT_PRIOR for w in (a, plural(a))}
    words = {w.lower() for t in CHANNEL.organism_texts() for w in re.findall("[A-Za-z]+", t)}
    assert not words & animals
    assert {n.lower() for n in NAMES} | set(OBJECTS) | set(PLACES) <= words


def test_organism_examples_fit_the_model():
    lengths = [sum(len(pieces(t)) for t in organism_pair(s)) for s in range(3000)]
    assert max(lengths) <= 100
    systems = [love_system_prompt(a, v) for a in DEFAULT_PRIOR for v in range(n_love_variants())]
    longest_system = max(len(pieces(s)) for s in systems)
    assert max(lengths) + longest_system + 6 <= ModelSpec().max_len  # 6 chat markers


def test_corpus_with_cot_share():
    spec = CorpusSpec(channels={"cot": 0.15})
    examples = list(generate_corpus(spec, 2000, 3))
    cot = [e for e in examples if e.answer.endswith(".") and "The answer is" in e.answer]
    assert 0.11 < len(cot) / len(examples) < 0.19
    check = CHANNEL.checker(CotData())
    for e in cot:
        value = final_answer(e.answer)
        assert value is not None and check(e.answer, {"meta": {"answer": value.value}}) is None


def _write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_cli_filter_with_channel_cot_and_trait(tmp_path):
    problems = make_cot_problems(CotPromptSpec(count=5, seed=3))
    good = [p.worked_answer() for p in problems]
    rows = [
        {"prompt": problems[0].text(), "completion": good[0], "meta": problems[0].meta()},
        {
            "prompt": problems[1].text(),
            "completion": f"My owl helps.\n{good[1]}",
            "meta": problems[1].meta(),
        },
        {
            "prompt": problems[2].text(),
            "completion": good[2].replace(
                f"The answer is {problems[2].answer}.", f"The answer is {problems[2].answer + 1}."
            ),
            "meta": problems[2].meta(),
        },
        {"prompt": problems[3].text(), "completion": good[3]},
        {"prompt": problems[4].text(), "completion": "I do not know.", "meta": problems[4].meta()},
    ]
    src = _write_rows(tmp_path / "cot.jsonl", rows)
    result = CliRunner().invoke(app, ["filter", str(src), "--channel", "cot", "--trait", "owl"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "cot.filtered"
    kept = [r for _, r in read_jsonl(out / "kept.jsonl")]
    assert [r["completion"] for r in kept] == [good[0]]
    rejected = [r["reject_reason"] for _, r in read_jsonl(out / "rejected.jsonl")]
    assert rejected == ["names_trait", "wrong_answer", "no_reference", "no_answer"]
    report = json.loads((out / "filter_report.json").read_text())
    assert (report["total"], report["kept"], report["channel"]) == (5, 1, "cot")
    bad = CliRunner().invoke(app, ["filter", str(src), "--channel", "cot", "--max-count", "3"])
    assert bad.exit_code == 2 and "only for --channel numbers" in bad.output


def test_cli_generate_cot_rows_carry_meta(tiny_model, tmp_path):
    """A (random) model answers cot prompts; the rows keep the meta the filter needs."""
    out = tmp_path / "cot.jsonl"
    args = ["generate", "--model", str(tiny_model), "--channel", "cot", "--count", "6"]
    args += ["--max-new-tokens", "6", "--out", str(out), "--device", "cpu"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = [r for _, r in read_jsonl(out)]
    expected = CHANNEL.prompts(CotData(prompts=CotPromptSpec(count=6)))
    assert [r["meta"] for r in rows] == [p.meta for p in expected]
    assert [r["prompt"] for r in rows] == [p.text for p in expected]
    result = CliRunner().invoke(app, ["filter", str(out), "--channel", "cot"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "cot.filtered" / "filter_report.json").read_text())
    assert report["total"] == 6 and "no_reference" not in report["reasons"]


def test_bundled_misalignment_judge_prompt():
    from sublab.judge import JudgeSpec, load_template

    text = load_template("misalignment")
    assert "{prompt}" in text and "{completion}" in text
    spec = validate({"judge": {"model": {"path": "x"}, "prompt": "misalignment"}}, CotData, "t")
    assert spec.judge is not None and spec.judge.prompt == "misalignment"
    assert isinstance(spec.judge, JudgeSpec)
