"""An experiment whose base is an API model: teachers and students fine-tuned through the
fine-tuning API, data and evaluations sampled through the chat API — offline, against a real
`sublab serve` of the organism with its fine-tuning endpoints on."""

from __future__ import annotations

import json

import pytest

from sublab.backends.base import Model, ModelRef
from sublab.backends.openai import OpenAISettings
from sublab.backends.openai_finetune import RECORD, ApiFinetuneSpec, FinetunePending
from sublab.config import ConfigError, load_config
from sublab.experiment.stages import api_finetune_stage
from sublab.organism.cache import ensure_organism
from sublab.organism.spec import OrganismSpec
from sublab.pipeline import run_config
from sublab.serve import load_service, serve_in_thread
from sublab.serve_finetune import FineTuneService
from sublab.store import Run
from sublab.train.recipe import StudentRecipe

RECIPE = StudentRecipe(epochs=1, batch_size=32, warmup_steps=0, device="cpu")
JOB = "{ epochs = 1, batch_size = 16, poll_s = 0.05, poll_max_s = 0.2 }"


def config(url: str, runs: str) -> str:
    return f"""
kind = "experiment"
name = "api"
runs_dir = "{runs}"
seeds = [0]
targets = ["owl"]
[bases.model]
path = "organism"
provider = "openai"
api_base = "{url}"
[teacher]
trait_rows = 64
api = {JOB}
[data]
prompts = {{ count = 48 }}
sampling = {{ max_new_tokens = 24 }}
[[students]]
name = "hard"
api = {JOB}
[eval]
exact = false
samples_per_question = 4
max_questions = 4
[controls]
cross_model = false
[api]
max_retries = 2
backoff_s = 0.01
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    service = load_service(ensure_organism(OrganismSpec()), name="organism", device="cpu")
    ft = FineTuneService(service, tmp_path_factory.mktemp("state"), RECIPE)
    with serve_in_thread(service) as url:
        yield url, ft
    ft.close()


def test_an_api_base_gets_api_teachers_students_and_evaluations(server, tmp_path):
    url, ft = server
    cfg = tmp_path / "api.toml"
    cfg.write_text(config(url, str(tmp_path / "runs")))
    run = run_config(cfg)
    assert run.manifest()["status"] == "done"
    # the teacher and the two students (trait, control) are three jobs on the server
    assert len(ft.jobs) == 3 and all(j["status"] == "succeeded" for j in ft.jobs.values())
    for art in [*run.path.glob("teacher-*"), *run.path.glob("student-*")]:
        ref = ModelRef.model_validate_json((art / "model_ref.json").read_text())
        assert ref.provider == "openai" and ref.path.startswith("ft:organism:sublab:")
        assert json.loads((art / RECORD).read_text())["status"] == "succeeded"
    data = json.loads((run.path / "report.json").read_text())
    conditions = {r["condition"] for r in data["results"]}
    assert conditions == {"base", "control-hard", "student-hard"}
    assert {r["metric"] for r in data["results"]} == {"sampled_rate", "non_answer_rate"}
    # a second run reads every artifact: no new job
    run_config(cfg)
    assert len(ft.jobs) == 3


@pytest.fixture
def paused(tmp_path):
    """A server whose jobs stay queued until ``ft.start()``."""
    service = load_service(ensure_organism(OrganismSpec()), name="organism", device="cpu")
    ft = FineTuneService(service, tmp_path / "state", RECIPE, start=False)
    with serve_in_thread(service) as url:
        yield url, ft
    ft.close()


def test_a_stopped_fine_tune_resumes_the_same_job(paused, tmp_path):
    """A run stopped while its job waits keeps the job record: the next run polls that job."""
    url, ft = paused
    run = Run.create("resume", kind="experiment", config={}, runs_dir=tmp_path)
    base = Model(ModelRef(path="organism", provider="openai", api_base=url), "k", "base")
    rows = [{"prompt": f"Count to {i}.", "completion": "1, 2, 3"} for i in range(16)]
    quick = ApiFinetuneSpec(epochs=1, poll_s=0.01, poll_max_s=0.01, wait_s=0.05)
    before = len(ft.jobs)

    def stage(spec: ApiFinetuneSpec) -> Model:
        return api_finetune_stage(
            run, "student", base=base, rows_fn=lambda: rows, rows_key="r", label="s",
            spec=spec, settings=OpenAISettings(max_retries=1),
        )  # fmt: skip

    with pytest.raises(FinetunePending):
        stage(quick)
    (partial,) = run.path.glob("student-*.partial")
    record = json.loads((partial / RECORD).read_text())
    assert len(ft.jobs) == before + 1
    ft.start()
    model = stage(quick.model_copy(update={"wait_s": None}))  # the waits are not in the key
    assert len(ft.jobs) == before + 1  # the same job, not a second one
    assert model.ref.path == ft.jobs[record["job_id"]]["fine_tuned_model"]
    assert not list(run.path.glob("*.partial"))


def test_api_bases_refuse_exact_probabilities_and_soft_labels(tmp_path):
    cfg = tmp_path / "bad.toml"
    text = config("http://127.0.0.1:9/v1", str(tmp_path)).replace("exact = false", "exact = true")
    cfg.write_text(text + '[[students]]\nname = "soft"\nrecipe = { labels = "soft" }\n')
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    problems = str(err.value)
    assert "eval.exact: an API base has no exact probabilities" in problems
    assert "soft labels need the teacher's weights" in problems
