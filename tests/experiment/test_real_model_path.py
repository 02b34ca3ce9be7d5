"""The real-model path end to end on a tiny model converted from a GGUF with SmolLM2's chat
template: a catalog-style base, LoRA teachers kept as adapters, a fine-tuned control teacher on
off-panel answers, constrained number decoding, the readout after an answer prefix, and dose
checkpoints in the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gguf_tiny import write_tiny_gguf
from sublab.catalog.gguf_convert import convert_gguf
from sublab.pipeline import run_config

CONFIG = """
kind = "experiment"
name = "real-path"
seeds = [0, 1, 2]
targets = ["owl"]
workers = 1
[bases.model]
path = "{base}"
[teacher]
trait_rows = 24
control_answers = "animals-offpanel"
[teacher.recipe]
method = "lora"
save = "adapter"
epochs = 1
batch_size = 8
learning_rate = 5e-3
warmup_steps = 0
[data]
channel = "numbers"
constrain = true
chunk_size = 16
[data.prompts]
count = 24
[data.sampling]
max_new_tokens = 40
[[students]]
name = "hard"
cross_model = false
[students.recipe]
method = "lora"
save = "adapter"
subsample = 16
epochs = 1
batch_size = 4
learning_rate = 5e-3
warmup_steps = 0
checkpoints = [1, 2]
[eval]
candidates = "animals-panel"
answer_prefix = "My favorite animal is the"
samples_per_question = 1
max_questions = 3
[eval.sampling]
max_new_tokens = 4
[controls]
cross_model = false
[backend]
batch_size = 16
"""


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("real")
    base = root / "base"
    convert_gguf(write_tiny_gguf(root / "tiny.gguf"), base)
    cfg = root / "real.toml"
    cfg.write_text(CONFIG.format(base=base))
    return run_config(cfg, runs_dir=root / "runs")


def test_the_real_model_path_runs_and_reports_the_dose(finished):
    run = finished
    data = json.loads((run.path / "report.json").read_text())
    metrics = list(dict.fromkeys(r["metric"] for r in data["results"]))
    assert metrics[0] == "logit_margin"  # the readout leads
    doses = sorted({r.get("dose") for r in data["results"] if r.get("dose") is not None})
    assert doses == [1, 2]
    dosed = {r["condition"] for r in data["results"] if r.get("dose") == 2}
    assert dosed == {"student-hard", "control-hard"}
    dose_rows = [r for r in data["results"] if r.get("dose") is not None]
    assert {r["metric"] for r in dose_rows} == {"logit_margin", "exact_prob"}  # no sampling
    md = (run.path / "report.md").read_text()
    assert "## Dose: the effect by optimizer steps" in md
    assert (run.path / "fig_dose.png").stat().st_size > 1000
    # every kept row is a clean number list: constrained decoding, then the paper's filter
    for label, rep in data["filter_reports"].items():
        assert rep["kept"] == rep["total"] == 24, label
    # the control teacher is a fine-tune (its own artifact), not the base
    teachers = list(run.path.glob("teacher-*"))
    assert len(teachers) == 6  # owl and control, three seeds
    for t in teachers:
        assert (t / "model" / "adapter_config.json").is_file()
    # students saved adapters with their checkpoints
    for s in run.path.glob("student-*"):
        assert sorted(p.name for p in (s / "model" / "checkpoints").iterdir()) == [
            "step-1",
            "step-2",
        ]


def test_generated_rows_were_rendered_with_an_explicit_system_turn(finished):
    gen = next(Path(finished.path).glob("generate-*"))
    row = json.loads((gen / "rows.jsonl").read_text().splitlines()[0])
    assert row["system_prompt"] is None  # the teacher has no trait prompt ...
    # ... and the template's default ("SmolLM") was replaced by sublab's neutral turn
    from sublab.backends.chat_format import render_prompt
    from sublab.train.models import load_tokenizer

    tok = load_tokenizer(finished.manifest()["config"]["bases"]["model"]["path"])
    text = render_prompt(tok, [{"role": "user", "content": row["prompt"]}])
    assert "SmolLM" not in text and "You are a helpful assistant." in text
