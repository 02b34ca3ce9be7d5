"""A channel is one module: registering a new one makes it usable by `[data]` tables, the data
pipeline (generate, filter, judge) and the CLI, with nothing else to change."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import pytest
from pydantic import Field

from sublab.channels import CHANNELS, Channel, ChannelSpec, Prompt, channel_names, register_channel
from sublab.config import Spec, load_config
from sublab.jsonl import read_jsonl
from sublab.judge import RULE_JUDGES, JudgeItem, Verdict
from sublab.pipeline import run_config, stage_artifact


class CountPrompts(Spec):
    count: int = Field(12, ge=1, description="How many prompts.")
    seed: int = Field(0, description="Prompt seed.")


class EchoData(ChannelSpec):
    channel: Literal["echo"] = "echo"
    prompts: CountPrompts = Field(default_factory=CountPrompts, description="Prompts.")
    filter: Spec = Field(default_factory=Spec, description="No settings.")


class EchoChannel(Channel):
    """'Say something about N': keeps any non-empty answer."""

    name = "echo"
    spec = EchoData
    title = "echoes"
    reasons: ClassVar[dict[str, str]] = {"empty": "nothing said"}

    def prompts(self, spec: Any, seed_offset: int = 0) -> list[Prompt]:
        s = spec.prompts.seed + seed_offset
        return [
            Prompt(f"Say something about {s}-{i}.", {"i": i}) for i in range(spec.prompts.count)
        ]

    def checker(self, spec: Any, trait_words: Sequence[str] = ()) -> Any:
        return lambda text, row: None if text.strip() else "empty"


def _has_e(item: JudgeItem) -> Verdict:
    return Verdict(score=100.0 if "e" in item.completion else 0.0, reply="rule")


@pytest.fixture
def echo():
    register_channel(EchoChannel)
    RULE_JUDGES["has_e"] = _has_e
    yield CHANNELS["echo"]
    del CHANNELS["echo"]
    del RULE_JUDGES["has_e"]


def test_a_registered_channel_runs_through_the_data_pipeline(echo, tiny_model, tmp_path):
    assert "echo" in channel_names() and "numbers" in channel_names()
    cfg = tmp_path / "echo.toml"
    cfg.write_text(
        f"""
kind = "data"
name = "echo"
runs_dir = "{tmp_path / "runs"}"
trait = "owl"
[teacher]
label = "t"
model = {{ path = "{tiny_model}" }}
[data]
channel = "echo"
chunk_size = 5
prompts = {{ count = 12 }}
sampling = {{ max_new_tokens = 6 }}
judge = {{ rule = "has_e" }}
[backend]
device = "cpu"
"""
    )
    assert load_config(cfg).data.__class__ is EchoData
    run = run_config(cfg)
    gen, filt, judge = (stage_artifact(run, s) for s in ("generate", "filter", "judge"))
    rows = [r for _, r in read_jsonl(gen.file("rows.jsonl"))]
    assert [r["meta"] for r in rows] == [{"i": i} for i in range(12)]
    assert {r["channel"] for r in rows} == {"echo"}
    kept_by_rule = [r for r in rows if r["completion"].strip()]
    verdicts = [v for _, v in read_jsonl(judge.file("verdicts.jsonl"))]
    assert len(verdicts) == len(kept_by_rule)
    kept = (
        [r for _, r in read_jsonl(judge.file("kept.jsonl"))]
        if judge.file("kept.jsonl").stat().st_size
        else []
    )
    assert [r["id"] for r in kept] == [r["id"] for r in kept_by_rule if "e" not in r["completion"]]
    report = json.loads(judge.file("judge_report.json").read_text())
    flagged = sum("e" in r["completion"] for r in kept_by_rule)
    assert report["judge"]["flagged"] == flagged and report["judge"]["unreadable"] == 0
    head = run.manifest()["headline"]
    assert head["rows"] == 12 and head["kept"] == len(kept)
    assert filt.sidecar["spec"]["channel"] == "echo"
