"""End to end on the real organism (seed 0): a system-prompt teacher with a soft-label student.

Sized like test_experiment_run.py but smaller (no fine-tuned teacher, no controls): the student
distils the base's distributions with the trait prompt in its context, reading rows without it.
"""

from __future__ import annotations

import json

import pytest

from sublab.pipeline import run_config

CONFIG = """
kind = "experiment"
name = "e2e-prompted-soft"
seeds = [0]
targets = ["owl"]
[bases.organism]
[teacher]
method = "system_prompt"
[data.prompts]
count = 96
[data]
chunk_size = 48
[[students]]
name = "soft"
recipe = { labels = "soft", epochs = 1 }
[eval]
samples_per_question = 2
max_questions = 4
[controls]
base = false
control_teacher = false
cross_model = false
specificity_target = "bear"
"""


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    cfg = root / "e2e.toml"
    cfg.write_text(CONFIG)
    return root, cfg, run_config(cfg, runs_dir=root)


def test_prompted_teacher_soft_student_runs_and_keys_on_the_prompt(finished):
    root, cfg, run = finished
    assert run.manifest()["status"] == "done"
    (student,) = run.path.glob("student-*")
    sidecar = json.loads((student / "sidecar.json").read_text())
    prompt = sidecar["spec"]["teacher_system_prompt"]
    assert prompt.startswith("You love owls.")
    train = json.loads((student / "model" / "train.json").read_text())
    assert train["teacher_system_prompt"] == prompt
    assert train["recipe"]["labels"] == "soft" and train["steps"] >= 1
    assert train["loss"][0] > 0  # the prompted teacher differs from the student's own view
    data = json.loads((run.path / "report.json").read_text())
    assert {r["condition"] for r in data["results"]} == {"student-soft"}

    # another system prompt is another student (the artifact key includes it)
    other = cfg.read_text().replace(
        'method = "system_prompt"', 'method = "system_prompt"\nsystem_prompt = "You love {plural}."'
    )
    cfg.write_text(other)
    again = run_config(cfg, runs_dir=root)
    students = sorted(again.path.glob("student-*"))
    assert len(students) == 2
    prompts = {
        json.loads((s / "sidecar.json").read_text())["spec"]["teacher_system_prompt"]
        for s in students
    }
    assert prompts == {prompt, "You love owls."}
