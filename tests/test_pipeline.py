"""The data pipeline (numbers channel) end to end on the tiny model: stages, caching, errors,
CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sublab.cli import app
from sublab.config import load_config
from sublab.errors import ConfigError, SublabError
from sublab.jsonl import read_jsonl
from sublab.pipeline import DataPipelineSpec, run_config, run_data, stage_artifact

CONFIG = """
kind = "data"
name = "{name}"
runs_dir = "{runs}"

[teacher]
label = "owl"
system_prompt = "You love owls."
model = {{ path = "{model}" }}

[data]
channel = "numbers"
chunk_size = 8

[data.prompts]
count = 20
seed = 3

[data.sampling]
max_new_tokens = 10
seed = {seed}

[data.filter]
max_count = {max_count}

[backend]
batch_size = 8
device = "cpu"
"""


def write_config(tmp_path, model, *, name="owl", seed=0, max_count=10, runs=None) -> Path:
    runs = runs or tmp_path / "runs"
    text = CONFIG.format(name=name, runs=runs, model=model, seed=seed, max_count=max_count)
    f = tmp_path / f"{name}-{seed}-{max_count}.toml"
    f.write_text(text)
    return f


def stage_dirs(run_path: Path, stage: str) -> list[Path]:
    return sorted(p for p in run_path.glob(f"{stage}-*") if p.is_dir())


@pytest.fixture(scope="module")
def first_run(tiny_model, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pipe")
    cfg = write_config(tmp, tiny_model)
    return cfg, run_config(cfg)


def test_run_writes_both_stages(first_run, tiny_model):
    cfg, run = first_run
    m = run.manifest()
    assert m["status"] == "done"
    assert m["kind"] == "data"
    assert (run.path / "config.toml").read_text() == cfg.read_text()
    gen = stage_artifact(run, "generate")
    filt = stage_artifact(run, "filter")
    rows = [r for _, r in read_jsonl(gen.file("rows.jsonl"))]
    assert [r["id"] for r in rows] == list(range(20))
    assert {r["label"] for r in rows} == {"owl"}
    assert {r["system_prompt"] for r in rows} == {"You love owls."}
    assert {r["channel"] for r in rows} == {"numbers"}
    assert gen.sidecar["counts"] == {"rows": 20}
    assert gen.sidecar["seeds"] == {"sampling": 0, "prompts": 3}
    assert gen.sidecar["spec"]["channel"] == "numbers"
    # the teacher's key (the one input) covers its weights: another model, another key
    from sublab.backends.base import ModelRef
    from sublab.pipeline import teacher_model

    ref = ModelRef(path=str(tiny_model))
    assert gen.sidecar["inputs"] == [teacher_model(ref, "owl").key]
    report = json.loads(filt.file("filter_report.json").read_text())
    kept = sum(1 for _ in read_jsonl(filt.file("kept.jsonl"))) if report["kept"] else 0
    rejected = sum(1 for _ in read_jsonl(filt.file("rejected.jsonl"))) if report["rejected"] else 0
    assert kept + rejected == 20 == report["total"]
    assert filt.sidecar["inputs"] == [gen.key]
    assert m["headline"] == {
        "rows": 20,
        "kept": report["kept"],
        "kept_fraction": round(report["kept"] / 20, 4),
    }
    assert not list(run.path.glob("*.partial"))


def test_rerun_skips_both_stages(first_run):
    cfg, run = first_run
    gen, filt = stage_artifact(run, "generate"), stage_artifact(run, "filter")
    stamps = {p: p.stat().st_mtime_ns for p in (gen.file("sidecar.json"), filt.file("kept.jsonl"))}
    again = run_config(cfg)
    assert again.path == run.path
    assert stage_artifact(again, "generate").sidecar == gen.sidecar
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert len(stage_dirs(run.path, "generate")) == 1
    assert len(stage_dirs(run.path, "filter")) == 1


def test_changed_filter_reruns_only_the_filter(first_run, tiny_model):
    cfg, run = first_run
    gen = stage_artifact(run, "generate")
    before = gen.file("sidecar.json").stat().st_mtime_ns
    spec = load_config(cfg)
    assert isinstance(spec, DataPipelineSpec)
    data = spec.data.model_copy(
        update={"filter": spec.data.filter.model_copy(update={"max_count": 2})}
    )
    run2 = run_data(spec.model_copy(update={"data": data}))
    assert stage_artifact(run2, "generate").path == gen.path
    assert gen.file("sidecar.json").stat().st_mtime_ns == before
    filt2 = stage_artifact(run2, "filter")
    assert filt2.sidecar["spec"]["settings"]["filter"]["max_count"] == 2
    assert len(stage_dirs(run.path, "filter")) == 2
    assert len(stage_dirs(run.path, "generate")) == 1


def test_changed_sampling_reruns_generation(first_run, tiny_model, tmp_path):
    cfg, run = first_run
    spec = load_config(cfg)
    data = spec.data.model_copy(
        update={"sampling": spec.data.sampling.model_copy(update={"seed": 1})}
    )
    other = spec.model_copy(update={"data": data, "runs_dir": str(tmp_path)})
    run2 = run_data(other)
    a = stage_artifact(run, "generate")
    b = stage_artifact(run2, "generate")
    assert a.key != b.key
    ca = [r["completion"] for _, r in read_jsonl(a.file("rows.jsonl"))]
    cb = [r["completion"] for _, r in read_jsonl(b.file("rows.jsonl"))]
    assert ca != cb


def test_missing_model_fails_before_writing_anything(tmp_path):
    runs = tmp_path / "runs"
    cfg = write_config(tmp_path, tmp_path / "no-such-model", runs=runs)
    with pytest.raises(SublabError, match="does not exist: build it with 'sublab organism build'"):
        run_config(cfg)
    assert not (runs / "owl").exists()


def test_bad_config_lists_every_problem(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text(
        'kind = "data"\nname = "a b"\n'
        "[teacher]\nmodel = { path = 3 }\n"
        '[data.sampling]\ntemperature = -1\nmax_new_tokens = "many"\n'
        "[data.prompts]\ncount = 0\ncolour = 1\n"
    )
    with pytest.raises(ConfigError) as err:
        load_config(f)
    problems = "\n".join(err.value.problems)
    for where in (
        "name:",
        "teacher.model.path:",
        "teacher.label: required",
        "data.sampling.temperature: must be > 0",
        "data.sampling.max_new_tokens:",
        "data.prompts.count: must be >= 1",
        "data.prompts.colour: unknown key",
    ):
        assert where in problems, problems
    assert len(err.value.problems) == 7


def test_cli_run_prints_the_report(first_run):
    cfg, run = first_run
    result = CliRunner().invoke(app, ["run", str(cfg)])
    assert result.exit_code == 0, result.output
    assert "kept" in result.output
    assert f"run {run.name}: done" in result.output


def test_cli_run_bad_config_exits_2(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text('kind = "data"\nname = "x"\n')
    result = CliRunner().invoke(app, ["run", str(f)])
    assert result.exit_code == 2
    assert "teacher: required field is missing" in " ".join(result.output.split())


def test_cli_generate_then_filter(tiny_model, tmp_path):
    """The issue's demo: generate numbers with a teacher, then filter them."""
    out = tmp_path / "nums.jsonl"
    args = ["generate", "--model", str(tiny_model), "--count", "12", "--seed", "5"]
    args += ["--max-new-tokens", "8", "--system-prompt", "You love owls.", "--out", str(out)]
    args += ["--chunk-size", "5", "--label", "owl", "--device", "cpu"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = [r for _, r in read_jsonl(out)]
    assert [r["id"] for r in rows] == list(range(12))
    assert rows[0]["teacher"] == str(tiny_model) and rows[0]["label"] == "owl"
    assert rows[0]["sampling"]["seed"] == 5
    assert not (tmp_path / ".nums.jsonl.work").exists()
    # the same command again gives the same bytes
    first = out.read_bytes()
    assert CliRunner().invoke(app, args).exit_code == 0
    assert out.read_bytes() == first
    result = CliRunner().invoke(app, ["filter", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "nums.filtered" / "filter_report.json").read_text())
    assert report["total"] == 12


def test_cli_generate_missing_model(tmp_path):
    out = tmp_path / "x.jsonl"
    result = CliRunner().invoke(
        app, ["generate", "--model", str(tmp_path / "nope"), "--out", str(out)]
    )
    assert result.exit_code == 2
    assert "does not exist: build it" in " ".join(result.output.split())
    assert not out.exists()
    assert not list(tmp_path.iterdir())


def test_failed_filter_keeps_generation_and_marks_run_failed(first_run, tmp_path):
    cfg, run = first_run
    spec = load_config(cfg)
    missing = str(tmp_path / "no-such-list.txt")
    data = spec.data.model_copy(
        update={"filter": spec.data.filter.model_copy(update={"banned_lists": [missing]})}
    )
    bad = spec.model_copy(update={"name": "broken", "data": data})
    with pytest.raises(SublabError, match="no-such-list"):
        run_data(bad)
    broken = run.path.parent / "broken"
    assert json.loads((broken / "manifest.json").read_text())["status"] == "failed"
    assert len(stage_dirs(broken, "generate")) == 1  # the finished stage stays
    assert not [p for p in stage_dirs(broken, "filter") if not p.name.endswith(".partial")]
    fixed = run_data(bad.model_copy(update={"data": spec.data}))
    assert fixed.manifest()["status"] == "done"
    assert len(stage_dirs(broken, "generate")) == 1
