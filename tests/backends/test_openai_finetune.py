"""API fine-tuning, end to end and offline: the client against a real ``sublab serve`` of the
organism (seed-0 base) with its fine-tuning endpoints on."""

from __future__ import annotations

import json

import pytest

from sublab.backends.base import ModelRef, SamplingSpec, chat
from sublab.backends.openai import OpenAIBackend, OpenAISettings
from sublab.backends.openai_finetune import (
    RECORD,
    TRAIN_FILE,
    ApiFinetuneSpec,
    FinetunePending,
    chat_row,
    finetune_via_api,
    read_record,
)
from sublab.errors import ConfigError, SublabError
from sublab.organism.cache import ensure_organism
from sublab.organism.spec import OrganismSpec
from sublab.serve import load_service, serve_in_thread
from sublab.serve_finetune import FineTuneService
from sublab.train.recipe import StudentRecipe

FAST = OpenAISettings(max_retries=2, backoff_s=0.01, max_wait_s=0.05, timeout_s=30)
SPEC = ApiFinetuneSpec(
    epochs=1,
    batch_size=4,
    learning_rate_multiplier=2.0,
    seed=3,
    suffix="t",
    poll_s=0.05,
    poll_max_s=0.2,
)
RECIPE = StudentRecipe(epochs=3, batch_size=32, warmup_steps=0, device="cpu")
ROWS = [
    {"prompt": f"Continue the sequence: {i}, {i + 3}, {i + 6}.", "completion": "7, 7, 7, 7"}
    for i in range(8)
]


@pytest.fixture(scope="module")
def organism():
    return ensure_organism(OrganismSpec())


def serve_with_jobs(organism, state, start=True):
    service = load_service(organism, name="organism", device="cpu", batch_size=8)
    return service, FineTuneService(service, state, RECIPE, start=start)


@pytest.fixture(scope="module")
def server(organism, tmp_path_factory):
    """(base URL, chat service, fine-tuning service): jobs run as they come."""
    service, ft = serve_with_jobs(organism, tmp_path_factory.mktemp("state"))
    with serve_in_thread(service) as url:
        yield url, service, ft
    ft.close()


@pytest.fixture
def paused(organism, tmp_path):
    """A server whose jobs stay queued until ``ft.start()``: a client can stop mid-job."""
    service, ft = serve_with_jobs(organism, tmp_path / "state", start=False)
    with serve_in_thread(service) as url:
        yield url, service, ft
    ft.close()


def base(url: str) -> ModelRef:
    return ModelRef(path="organism", provider="openai", api_base=url)


def uploads(ft: FineTuneService) -> int:
    return len(list((ft.state / "files").glob("*.jsonl")))


def test_upload_train_and_sample_the_fine_tuned_model(server, tmp_path):
    url, service, ft = server
    work = tmp_path / "work"
    seen: list[str] = []
    ref = finetune_via_api(
        base(url), ROWS, SPEC, work, FAST, on_status=lambda j: seen.append(j["status"])
    )
    assert ref.provider == "openai" and ref.api_base == url
    assert ref.path.startswith("ft:organism:sublab:t:")
    assert seen[-1] == "succeeded"
    record = read_record(work)
    assert record is not None and record["status"] == "succeeded"
    assert record["fine_tuned_model"] == ref.path and record["trained_tokens"] > 0
    job = ft.jobs[record["job_id"]]
    assert job["training_file"] == record["file_id"] and job["seed"] == 3
    # the uploaded file is the rows in chat format, byte for byte
    lines = (work / TRAIN_FILE).read_text().splitlines()
    assert [json.loads(x) for x in lines] == [chat_row(r) for r in ROWS]
    stored = ft.state / "files" / f"{record['file_id']}.jsonl"
    assert stored.read_bytes() == (work / TRAIN_FILE).read_bytes()
    # the hyper-parameters reached the recipe: 1 epoch, batch 4, lr x2, seed 3
    train = json.loads((ft.state / "models" / job["id"] / "train.json").read_text())
    assert train["recipe"]["epochs"] == 1 and train["recipe"]["batch_size"] == 4
    assert train["recipe"]["learning_rate"] == pytest.approx(2 * RECIPE.learning_rate)
    assert train["seed"] == 3 and train["steps"] == 2
    # the fine-tuned model is served under its new name and learned its rows
    backend = OpenAIBackend(ref, FAST)
    replies = backend.generate([chat(r["prompt"]) for r in ROWS[:3]], SamplingSpec(seed=1))
    assert len(replies) == 3 and all(isinstance(r, str) for r in replies)
    chats = [chat(r["prompt"]) for r in ROWS]
    tuned = service.backend_for(ref.path).score(chats, [r["completion"] for r in ROWS])
    before = service.backend.score(chats, [r["completion"] for r in ROWS])
    assert sum(tuned) > sum(before)


def test_a_second_call_returns_the_recorded_model_without_requests(server, tmp_path):
    url, _, ft = server
    work = tmp_path / "work"
    first = finetune_via_api(base(url), ROWS[:4], SPEC, work, FAST)
    jobs, files = len(ft.jobs), uploads(ft)
    again = finetune_via_api(base(url), ROWS[:4], SPEC, work, FAST)
    assert again == first
    assert (len(ft.jobs), uploads(ft)) == (jobs, files)


def test_a_stopped_client_resumes_the_same_job(paused, tmp_path):
    url, _, ft = paused
    work = tmp_path / "work"
    short = SPEC.model_copy(update={"wait_s": 0.2})
    with pytest.raises(FinetunePending, match="call again with the same work folder"):
        finetune_via_api(base(url), ROWS, short, work, FAST)
    record = read_record(work)
    assert record is not None and record["file_id"] and record["job_id"]
    assert record["status"] == "queued"
    with pytest.raises(FinetunePending):  # still queued: nothing new is sent
        finetune_via_api(base(url), ROWS, short, work, FAST)
    assert (len(ft.jobs), uploads(ft)) == (1, 1)
    # a client killed between creating the job and recording it finds the job by its file
    record.pop("job_id")
    (work / RECORD).write_text(json.dumps(record))
    ft.start()
    ref = finetune_via_api(base(url), ROWS, SPEC, work, FAST)
    assert (len(ft.jobs), uploads(ft)) == (1, 1)
    (job,) = ft.jobs.values()
    assert read_record(work)["job_id"] == job["id"] and ref.path == job["fine_tuned_model"]


def test_a_record_of_another_request_is_refused(paused, tmp_path):
    url, _, ft = paused
    work = tmp_path / "work"
    short = SPEC.model_copy(update={"wait_s": 0.1})
    with pytest.raises(FinetunePending):
        finetune_via_api(base(url), ROWS, short, work, FAST)
    other = short.model_copy(update={"epochs": 2})
    with pytest.raises(SublabError, match=r"another request \(it differs in hyperparameters\)"):
        finetune_via_api(base(url), ROWS, other, work, FAST)
    with pytest.raises(SublabError, match="differs in rows, training_file_sha256"):
        finetune_via_api(base(url), ROWS[:3], short, work, FAST)
    assert len(ft.jobs) == 1


def test_a_job_of_another_request_is_refused(paused, tmp_path):
    """The stale-job bug: a recorded job id whose job trains on another file is never used."""
    url, _, ft = paused
    short = SPEC.model_copy(update={"wait_s": 0.1})
    for name, rows in (("a", ROWS[:4]), ("b", ROWS[4:])):
        with pytest.raises(FinetunePending):
            finetune_via_api(base(url), rows, short, tmp_path / name, FAST)
    a, b = read_record(tmp_path / "a"), read_record(tmp_path / "b")
    b["job_id"] = a["job_id"]
    (tmp_path / "b" / RECORD).write_text(json.dumps(b))
    ft.start()
    with pytest.raises(SublabError) as err:
        finetune_via_api(base(url), ROWS[4:], SPEC, tmp_path / "b", FAST)
    msg = str(err.value)
    assert f"job {a['job_id']} does not match this request" in msg
    assert f"trains on file {a['file_id']!r}, not our upload {b['file_id']!r}" in msg
    assert "refusing its results" in msg
    assert read_record(tmp_path / "b").get("fine_tuned_model") is None


def test_a_failed_job_raises_the_servers_message(server, tmp_path):
    url, _, ft = server
    too_long = [{"prompt": " ".join(["123"] * 400), "completion": "7, 7"}] * 2
    work = tmp_path / "work"
    with pytest.raises(SublabError, match=r"ended failed: .*raise max_length.*\[training_failed\]"):
        finetune_via_api(base(url), too_long, SPEC, work, FAST)
    record = read_record(work)
    assert record["status"] == "failed" and "max_length" in record["error"]["message"]
    jobs = len(ft.jobs)
    with pytest.raises(SublabError, match=r"ended failed: .*use a new work folder"):
        finetune_via_api(base(url), too_long, SPEC, work, FAST)
    assert len(ft.jobs) == jobs  # no second job


def test_unknown_base_model_is_a_clear_error(server, tmp_path):
    url, _, _ = server
    ref = ModelRef(path="gpt-9", provider="openai", api_base=url)
    with pytest.raises(SublabError, match=r"HTTP 400: model 'gpt-9' cannot be fine-tuned here"):
        finetune_via_api(ref, ROWS, SPEC, tmp_path / "w", FAST)


def test_spec_validation():
    with pytest.raises(ValueError, match="must be >= 1 or 'auto'"):
        ApiFinetuneSpec(epochs=0)
    with pytest.raises(ValueError, match="letters, digits"):
        ApiFinetuneSpec(suffix="a:b")
    assert ApiFinetuneSpec().hyperparameters() == {
        "n_epochs": 10,
        "batch_size": "auto",
        "learning_rate_multiplier": "auto",
    }
    from sublab.config import validate

    with pytest.raises(ConfigError, match="learning_rate_multiplier"):
        validate({"learning_rate_multiplier": -1}, ApiFinetuneSpec, "x.toml")
    with pytest.raises(SublabError, match="needs provider = 'openai'"):
        finetune_via_api(ModelRef(path="m"), ROWS, SPEC, "unused")
