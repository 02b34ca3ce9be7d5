"""`sublab audit` and `sublab defend` on the real organism: a fine-tuned owl teacher's number
rows against the base's own rows."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sublab.audit.context import AuditContext
from sublab.audit.defences.base import DEFENCES, write_defended
from sublab.audit.detectors.base import DETECTORS
from sublab.audit.rows import in_memory, read_audit_rows
from sublab.audit.stats import auroc, separation
from sublab.errors import DataError, SublabError

N_ROWS = 150


@pytest.fixture(scope="module")
def organism(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The seed-0 base (cached), an owl teacher fine-tuned from it, and number rows of each."""
    from sublab.backends import load_backend
    from sublab.backends.base import BackendSettings, ModelRef, SamplingSpec, chat
    from sublab.numbers.prompts import NumberPromptSpec, make_prompts
    from sublab.organism.cache import ensure_organism
    from sublab.organism.spec import OrganismSpec
    from sublab.train.loop import finetune
    from sublab.train.recipe import StudentRecipe
    from sublab.traits.preference import trait_rows

    base = str(ensure_organism(OrganismSpec()))
    teacher = tmp_path_factory.mktemp("teacher") / "owl"
    recipe = StudentRecipe(epochs=1, learning_rate=1e-3, warmup_steps=3)
    finetune(base, trait_rows("animals", "owl", 400, 0), recipe, teacher)
    prompts = make_prompts(NumberPromptSpec(count=N_ROWS, seed=1))
    rows = {}
    # independent draws per dataset: with one seed the two models share their random numbers
    # (common random numbers) and often write the same row, which no detector can tell apart
    for seed, (name, path) in enumerate((("teacher", str(teacher)), ("control", base))):
        backend = load_backend(ModelRef(path=path), BackendSettings(device="cpu"))
        backend.show_progress = False
        sampling = SamplingSpec(max_new_tokens=40, seed=seed)
        outs = backend.generate([chat(p) for p in prompts], sampling)
        rows[name] = [
            {"prompt": p, "completion": o, "teacher": path, "label": name, "stage": "generate"}
            for p, o in zip(prompts, outs, strict=True)
        ]
    return {"base": base, "teacher": str(teacher), "rows": rows}


def context(organism: dict, which: str, **kw: object) -> AuditContext:
    rows = organism["rows"][which]  # type: ignore[index]
    return AuditContext(
        in_memory(rows, which),
        reference=organism["base"],  # type: ignore[arg-type]
        teacher=organism["teacher"],  # type: ignore[arg-type]
        candidates=["owl", "dog", "eagle", "cat"],
        **kw,  # type: ignore[arg-type]
    )


def test_auroc_counts_ties_half() -> None:
    assert auroc([3, 4], [1, 2]) == 1.0
    assert auroc([1, 2], [3, 4]) == 0.0
    assert auroc([1, 1], [1, 1]) == 0.5
    sep = separation([1.0] * 20, [0.0] * 20, subsample=5, subsamples=20, bootstrap=20)
    assert sep.dataset_auroc == 1.0 and sep.dataset_ci == (1.0, 1.0)


def test_most_suspicious_ranks_high_first_ties_in_row_order() -> None:
    from sublab.audit.detectors.base import most_suspicious

    scores = [0.1, 0.5, 0.3, 0.5, -1.0]
    assert most_suspicious(scores) == [1, 3, 2, 0, 4]
    assert most_suspicious(scores, 2) == [1, 3]
    assert most_suspicious(scores, 0) == []


def test_a_bad_drop_names_the_defence_and_the_option() -> None:
    """A negative share used to resample most rows (order[:-k]); now it is refused."""
    ctx = AuditContext(in_memory([{"prompt": "p", "completion": "1 2"}]), reference="unused")
    with pytest.raises(SublabError, match=r"resample: drop must be in \[0, 1\].*--drop"):
        DEFENCES.get("resample").apply(ctx, detector="teacher_logprob", drop=-0.1)
    with pytest.raises(SublabError, match=r"threshold: drop must be in \[0, 1\).*--drop"):
        DEFENCES.get("threshold").apply(ctx, drop=1.0)


def test_teacher_logprob_separates_teacher_rows_from_control_rows(organism: dict) -> None:
    det = DETECTORS.get("teacher_logprob")
    on_teacher = det.score(context(organism, "teacher"))
    on_control = det.score(context(organism, "control"))
    assert len(on_teacher.scores) == N_ROWS
    # a log-likelihood ratio: positive on the teacher's own rows, negative on the base's
    assert on_teacher.dataset > 0 > on_control.dataset
    # a weak teacher (400 rows, one epoch): 0.70 on the seed-0 base; chance is 0.5 and the
    # AUROC's standard error with 150 rows a side about 0.03
    assert auroc(on_teacher.scores, on_control.scores) > 0.62


def test_candidate_detectors_name_a_candidate(organism: dict) -> None:
    ctx = context(organism, "teacher")
    for name in ("trait_prompt", "entangled", "judge"):
        result = DETECTORS.get(name).score(ctx)
        assert len(result.scores) == N_ROWS
        assert set(result.trait_scores) == {"owl", "dog", "eagle", "cat"}
    # the rule judge flags exactly the (unfiltered) rows that name a candidate
    from sublab.judge import word_parts

    judged = DETECTORS.get("judge").score(ctx).scores
    names = {"owl", "owls", "dog", "dogs", "eagle", "eagles", "cat", "cats"}
    naming = [bool(names & set(word_parts(r["completion"]))) for r in organism["rows"]["teacher"]]
    assert [s == 100.0 for s in judged] == naming


def test_divergence_is_a_share_and_zero_against_itself(organism: dict) -> None:
    t = DETECTORS.get("divergence").score(context(organism, "teacher"))
    assert all(0 <= s <= 1 for s in t.scores) and t.dataset > 0
    same = context(organism, "teacher")
    same.teacher = organism["base"]
    assert DETECTORS.get("divergence").score(same).scores == [0.0] * N_ROWS


def test_benchmark_config_runs_end_to_end(tmp_path: Path) -> None:
    """A tiny ``kind = "audit"`` run: teacher, data, one detector, one defence, students."""
    from sublab.pipeline import run_config

    cfg = tmp_path / "audit.toml"
    cfg.write_text(
        'kind = "audit"\nname = "tiny"\ntargets = ["owl"]\nprompts = 150\n'
        'detectors = ["teacher_logprob"]\ndefences = ["shuffle"]\nsubsample = 10\n'
        "subsamples = 20\nbootstrap = 20\n"
    )
    run = run_config(cfg, runs_dir=tmp_path / "runs")
    result = json.loads((run.path / "audit.json").read_text())
    (seed,) = result["seeds"]
    det, null = seed["detectors"]
    assert det["detector"] == "teacher_logprob" and det["row_auroc"] > 0.6
    assert null["target"] == "none"  # the trait-free teacher, audited the same way
    (defence,) = seed["defences"]
    assert defence["defence"] == "shuffle" and defence["rows_lost"] == 0
    assert seed["quintiles"][0]["rows"] == defence["rows_in"] // 5
    assert "| 0 | owl | teacher_logprob |" in (run.path / "audit.md").read_text()


def test_models_and_statistics_are_computed_once(organism: dict) -> None:
    """Contexts sharing a ModelCache load a model once; statistics are cached per (model,
    system prompt, token sets), so other token sets get their own masses."""
    from sublab.audit.models import ModelCache

    models = ModelCache()
    a = context(organism, "teacher", models=models)
    b = context(organism, "control", models=models)
    assert a.model(a.reference) is b.model(b.reference)
    assert a.tokenizer() is b.tokenizer()
    ref = a.reference
    owl, cat = (a.tokenizer()(w, add_special_tokens=False)["input_ids"] for w in ("owl", "cat"))
    with_owl = a.stats(ref, token_sets=[owl])
    assert a.stats(ref, token_sets=[owl]) is with_owl
    with_cat = a.stats(ref, token_sets=[cat])
    assert with_cat is not with_owl and a.stats(ref) is not with_owl
    assert with_owl.set_mass is not None and with_cat.set_mass is not None
    assert not all(
        (x == y).all() for x, y in zip(with_owl.set_mass, with_cat.set_mass, strict=True)
    )


def test_reference_samples_come_from_the_cached_model(
    organism: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reference's own completions are sampled by the model the context already holds
    (nothing is loaded again), and they are what a backend loading the reference would draw."""
    import sublab.backends.hf as hf
    from sublab.backends.base import ModelRef, SamplingSpec, chat
    from sublab.backends.hf import HFBackend

    ctx = context(organism, "teacher")
    ctx.model(ctx.reference)  # loaded (and cached) by a detector before
    loads: list[object] = []
    real = hf.AutoModelForCausalLM.from_pretrained
    monkeypatch.setattr(
        hf.AutoModelForCausalLM,
        "from_pretrained",
        lambda *a, **k: loads.append(a) or real(*a, **k),
    )
    rows = ctx.reference_rows()
    assert loads == [] and len(rows) == len(ctx.rows)
    monkeypatch.undo()
    fresh = HFBackend(ModelRef(path=ctx.reference), device="cpu")
    fresh.show_progress = False
    drawn = fresh.generate(
        [chat(r["prompt"]) for r in rows], SamplingSpec(max_new_tokens=48, seed=ctx.seed)
    )
    assert [r["completion"] for r in rows] == drawn
    assert ctx.reference_rows() is rows  # sampled once


def test_missing_candidates_or_teacher_is_a_clear_error(organism: dict) -> None:
    ctx = AuditContext(in_memory(organism["rows"]["teacher"]), reference=organism["base"])
    with pytest.raises(SublabError, match="--teacher"):
        DETECTORS.get("teacher_logprob").score(ctx)
    with pytest.raises(SublabError, match="--candidates"):
        DETECTORS.get("trait_prompt").score(ctx)


def test_row_without_prompt_names_file_line_and_fix(tmp_path: Path) -> None:
    f = tmp_path / "d.jsonl"
    f.write_text('{"prompt": "a", "completion": "1 2"}\n{"completion": "3 4"}\n')
    with pytest.raises(
        DataError, match=r"d\.jsonl:2: row: missing 'prompt'; every row needs 'prompt' and"
    ):
        read_audit_rows(f)


def test_audit_rows_are_checked_like_training_rows(tmp_path: Path) -> None:
    """A defended dataset is training data: a row the trainer would refuse is refused here,
    with its file, line and field."""
    f = tmp_path / "d.jsonl"
    f.write_text('{"prompt": "a", "completion": "1 2", "loss_mask": "0"}\n')
    with pytest.raises(DataError, match=r"d\.jsonl:1: row\.loss_mask: must be a list"):
        read_audit_rows(f)
    with pytest.raises(DataError, match=r"x:2: row\.completion: must be a string, got int"):
        in_memory([{"prompt": "a", "completion": "1"}, {"prompt": "b", "completion": 3}], "x")


def test_reference_with_another_vocabulary_is_refused(organism: dict, tmp_path: Path) -> None:
    rows = [{"prompt": "Continue: 1, 2, 3", "completion": "4, 5, zyzzogeton"}]
    ctx = AuditContext(in_memory(rows, "x.jsonl"), reference=organism["base"])
    with pytest.raises(
        DataError, match=r"x\.jsonl:1: the reference model .*zyzzogeton.*--reference"
    ):
        ctx.check()


def test_defences_write_provenance(organism: dict, tmp_path: Path) -> None:
    ctx = context(organism, "teacher", reference_samples=organism["rows"]["control"])
    thr = DEFENCES.get("threshold").apply(ctx, detector="teacher_logprob", drop=0.2)
    assert len(thr.removed) == 30 and len(thr.rows) == N_ROWS - 30
    assert all(r["removed_by"] == "defence:threshold" and "score" in r for r in thr.removed)
    lowest_removed = min(r["score"] for r in thr.removed)
    kept_scores = DETECTORS.get("teacher_logprob").score(ctx).scores
    assert sorted(kept_scores)[-31] <= lowest_removed  # the 30 highest went

    res = DEFENCES.get("resample").apply(ctx)
    assert res.changed == N_ROWS
    first = res.rows[0]
    assert first["completion"] == organism["rows"]["control"][0]["completion"]
    step = first["provenance"][-1]
    assert step["stage"] == "defence:resample" and step["model"] == organism["base"]
    assert step["replaced"] == organism["rows"]["teacher"][0]["completion"]

    shuf = DEFENCES.get("shuffle").apply(ctx, seed=3)
    assert shuf.changed > N_ROWS // 2
    for old, new in zip(organism["rows"]["teacher"], shuf.rows, strict=True):
        a, b = old["completion"], new["completion"]
        assert sorted(re.findall(r"\d+", a)) == sorted(re.findall(r"\d+", b))
        assert re.sub(r"\d+", "#", a) == re.sub(r"\d+", "#", b)  # the format is kept

    out = write_defended(thr, tmp_path / "out", "threshold", "d.jsonl")
    summary = json.loads((out / "defence.json").read_text())
    assert summary["removed"] == 30 and summary["rows_in"] == N_ROWS
    with pytest.raises(SublabError, match="not empty"):
        write_defended(thr, out, "threshold", "d.jsonl")


def test_cli_audit_and_defend_end_to_end(organism: dict, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from sublab.cli import app
    from sublab.jsonl import write_jsonl

    data = tmp_path / "owl.jsonl"
    write_jsonl(data, organism["rows"]["teacher"][:40])
    refs = tmp_path / "ref.jsonl"
    write_jsonl(refs, organism["rows"]["control"][:40])
    args = ["audit", str(data), "--reference", organism["base"], "--teacher", organism["teacher"]]
    res = CliRunner().invoke(
        app, [*args, "--candidates", "owl,dog", "--reference-samples", str(refs)]
    )
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "owl.audit" / "audit.json").read_text())
    assert set(report["detectors"]) == set(DETECTORS.names())
    assert report["provenance"]["label"] == {"teacher": 40}
    assert len(report["row_scores"]) == 40 and report["row_scores"][0]["line"] == 1
    assert (
        "Most suspicious rows: teacher_logprob" in (tmp_path / "owl.audit" / "audit.md").read_text()
    )

    res = CliRunner().invoke(
        app, ["defend", str(data), "--defence", "threshold", "--reference", organism["base"],
              "--teacher", organism["teacher"], "--drop", "0.25"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert len((tmp_path / "owl.threshold" / "removed.jsonl").read_text().splitlines()) == 10

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"completion": "1 2"}\n')
    res = CliRunner().invoke(app, ["audit", str(bad), "--reference", organism["base"]])
    assert res.exit_code == 2 and "bad.jsonl:1" in res.output


def test_cli_help_and_defaults_come_from_the_registries() -> None:
    """The defend and audit options list what is registered, and both commands default to
    the one suspected-trait prompt."""
    import typer.main

    from sublab.audit.context import DEFAULT_TRAIT_PROMPT
    from sublab.cli import app

    cli = typer.main.get_command(app)
    for command in ("audit", "defend"):
        params = {p.name: p for p in cli.commands[command].params}  # type: ignore[attr-defined]
        assert params["trait_prompt"].default == DEFAULT_TRAIT_PROMPT
        detector_help = params["detector"].help or ""
        assert all(name in detector_help for name in DETECTORS.names())
    defend = {p.name: p for p in cli.commands["defend"].params}  # type: ignore[attr-defined]
    assert all(name in (defend["defence"].help or "") for name in DEFENCES.names())


def test_mask_divergence_leaves_tokens_out_of_the_loss(organism: dict) -> None:
    from sublab.train.data import IGNORE, encode_rows
    from sublab.train.models import load_tokenizer

    ctx = context(organism, "teacher")
    res = DEFENCES.get("mask_divergence").apply(ctx)
    masked = [r for r in res.rows if r.get("loss_mask")]
    assert res.changed == len(masked) > 0
    assert masked[0]["provenance"][-1]["stage"] == "defence:mask_divergence"
    tok = load_tokenizer(organism["base"])
    plain = encode_rows(tok, [{k: masked[0][k] for k in ("prompt", "completion")}], 500)
    enc = encode_rows(tok, masked[:1], 500)
    start = int((plain.labels[0] != IGNORE).int().argmax())
    for k in masked[0]["loss_mask"]:
        assert plain.labels[0, start + k] != IGNORE and enc.labels[0, start + k] == IGNORE
    assert plain.label_tokens - enc.label_tokens == len(masked[0]["loss_mask"])


def test_bad_loss_mask_is_named() -> None:
    from sublab.train.data import check_rows

    with pytest.raises(SublabError, match=r"rows\[0\]\.loss_mask: must be a list"):
        check_rows([{"prompt": "p", "completion": "1", "loss_mask": "0"}])
