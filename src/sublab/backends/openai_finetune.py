"""Fine-tune a model through an OpenAI-compatible fine-tuning API, resumably.

The paper's GPT-4.1 students were trained this way. :func:`finetune_via_api`:

1. converts sublab rows (``{prompt, completion, optional system_prompt}``) to chat rows
   (``{"messages": [...]}``), writes them to ``<work>/train.jsonl`` and uploads them
   (``POST /files``, multipart, ``purpose = "fine-tune"``);
2. creates a supervised job (``POST /fine_tuning/jobs`` with ``model``, ``training_file``,
   ``seed``, ``suffix`` and ``method.supervised.hyperparameters``: ``n_epochs``, ``batch_size``,
   ``learning_rate_multiplier``, each a number or ``"auto"``);
3. polls ``GET /fine_tuning/jobs/{id}`` (waits doubling from ``poll_s`` up to ``poll_max_s``)
   until the job succeeded, failed or was cancelled;
4. returns the fine-tuned model as a :class:`~sublab.backends.base.ModelRef` with
   ``provider = "openai"``, ready for :class:`~sublab.backends.openai.OpenAIBackend`.

Resuming: ``<work>/openai_finetune.json`` records the request, the uploaded file's id and the
job's id (written atomically as soon as each exists) and the job's last status. Called again on
the same folder with the same request, the function resumes where it stopped: it never uploads
or creates a job twice. A record of another request is refused (new folder, or delete the
record). If the process died between the job's creation and its record, the job is found again
by its training file (a job whose ``training_file`` is our upload is ours); creation also sends an
``Idempotency-Key``.

Every job object read is checked against the request (its id, ``training_file``, base ``model``
and the seed and hyper-parameters we set): a job id whose details do not match is refused, never
used (a stale or foreign job's model would silently stand in for ours). A job that ends failed or
cancelled raises a SublabError with the server's message; the record keeps it, and calling again
raises it again rather than paying for a new job.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from sublab.backends.api_client import ApiClient, OpenAISettings
from sublab.backends.base import Chat, ModelRef
from sublab.config import Spec
from sublab.errors import SublabError
from sublab.jsonl import dumps_row
from sublab.store import atomic_write_bytes, atomic_write_json, now_iso

RECORD = "openai_finetune.json"
TRAIN_FILE = "train.jsonl"
TERMINAL = ("succeeded", "failed", "cancelled")
SUFFIX_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


class ApiFinetuneSpec(Spec):
    """A fine-tuning job on an OpenAI-compatible API: its hyper-parameters and how it is awaited."""

    epochs: int | Literal["auto"] = Field(
        10,
        description="n_epochs of the job: passes over the training rows, or 'auto' for the "
        "API's choice (the paper's GPT-4.1 nano students: 10).",
    )
    batch_size: int | Literal["auto"] = Field(
        "auto", description="batch_size of the job: rows per step, or 'auto' (the paper: auto)."
    )
    learning_rate_multiplier: float | Literal["auto"] = Field(
        "auto",
        description="learning_rate_multiplier of the job: a factor on the API's base learning "
        "rate, or 'auto' (the paper: auto).",
    )
    seed: int | None = Field(
        0,
        description="seed of the job (reproducibility where the API honours it); None: the "
        "API picks one.",
    )
    suffix: str | None = Field(
        None,
        max_length=64,
        description="Added to the fine-tuned model's name (e.g. 'owl-s0'); at most 64 letters, "
        "digits, '-', '_' or '.'.",
    )
    poll_s: float = Field(10.0, gt=0, description="Wait before the first status poll, seconds.")
    poll_max_s: float = Field(
        300.0, gt=0, description="Longest wait between polls; waits double up to this."
    )
    wait_s: float | None = Field(
        None,
        gt=0,
        description="Stop waiting after this many seconds with FinetunePending (the job runs on; "
        "call again with the same work folder to resume). None: wait until the job ends.",
    )

    @field_validator("epochs", "batch_size")
    @classmethod
    def _positive(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError("must be >= 1 or 'auto'")
        return value

    @field_validator("learning_rate_multiplier")
    @classmethod
    def _positive_factor(cls, value: float | str) -> float | str:
        if not isinstance(value, str) and value <= 0:
            raise ValueError("must be > 0 or 'auto'")
        return value

    @field_validator("suffix")
    @classmethod
    def _suffix_chars(cls, value: str | None) -> str | None:
        if value is not None and (not value or set(value) - SUFFIX_CHARS):
            raise ValueError("use letters, digits, '-', '_' or '.' (it becomes part of a name)")
        return value

    def hyperparameters(self) -> dict[str, Any]:
        """The job's ``method.supervised.hyperparameters``."""
        return {
            "n_epochs": self.epochs,
            "batch_size": self.batch_size,
            "learning_rate_multiplier": self.learning_rate_multiplier,
        }


class FinetunePending(SublabError):
    """The job had not ended when ``wait_s`` ran out; calling again resumes waiting for it."""


def chat_row(row: dict[str, Any]) -> dict[str, Chat]:
    """A sublab row as an OpenAI chat fine-tuning row (system prompt only when the row has one)."""
    messages: Chat = []
    if row.get("system_prompt"):
        messages.append({"role": "system", "content": row["system_prompt"]})
    messages.append({"role": "user", "content": row["prompt"]})
    messages.append({"role": "assistant", "content": row["completion"]})
    return {"messages": messages}


def chat_jsonl(rows: Sequence[dict[str, Any]]) -> bytes:
    """The rows as chat-format JSONL bytes (the training file that is uploaded)."""
    from sublab.train.data import check_rows

    check_rows(rows)
    return "".join(dumps_row(chat_row(r)) + "\n" for r in rows).encode("utf-8")


def read_record(work_dir: str | Path) -> dict[str, Any] | None:
    """The job record of ``work_dir`` (see the module doc), or None if there is none yet."""
    path = Path(work_dir) / RECORD
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except ValueError as err:
        raise SublabError(f"{path}: not valid JSON ({err}); delete it to start over") from None
    if not isinstance(data, dict) or not isinstance(data.get("request"), dict):
        raise SublabError(f"{path}: not a fine-tuning job record; delete it to start over")
    return data


class _Job:
    """One request's file, job and record: the steps of :func:`finetune_via_api`."""

    def __init__(
        self,
        api: ApiClient,
        base: ModelRef,
        spec: ApiFinetuneSpec,
        work: Path,
        data: bytes,
        on_status: Callable[[dict[str, Any]], None] | None,
    ) -> None:
        self.api = api
        self.base = base
        self.spec = spec
        self.work = work
        self.data = data
        self.on_status = on_status
        self.request = {
            "api_base": api.base_url,
            "model": base.path,
            "training_file_sha256": hashlib.sha256(data).hexdigest(),
            "rows": data.count(b"\n"),
            "seed": spec.seed,
            "suffix": spec.suffix,
            "hyperparameters": spec.hyperparameters(),
        }
        self.record: dict[str, Any] = {"request": self.request, "file_id": None, "job_id": None}

    @property
    def record_path(self) -> Path:
        return self.work / RECORD

    def save(self, **changes: Any) -> None:
        self.record.update(changes, updated_at=now_iso())
        atomic_write_json(self.record_path, self.record)

    def load(self) -> None:
        old = read_record(self.work)
        if old is None:
            return
        if old["request"] != self.request:
            differ = sorted(
                k
                for k in set(old["request"]) | set(self.request)
                if old["request"].get(k) != self.request.get(k)
            )
            raise SublabError(
                f"{self.record_path}: records a fine-tuning job of another request (it differs "
                f"in {', '.join(differ)}); use a new work folder, or delete the record to start "
                "over (its job, if any, is not cancelled)"
            )
        self.record = old

    # ------------------------------------------------------------ steps

    def upload(self) -> str:
        if self.record.get("file_id"):
            return str(self.record["file_id"])
        atomic_write_bytes(self.work / TRAIN_FILE, self.data)
        name = f"sublab-{self.request['training_file_sha256'][:16]}.jsonl"
        got = self.api.post_multipart(
            "files",
            {"purpose": "fine-tune"},
            {"file": (name, self.data, "application/jsonl")},
        )
        file_id = got.get("id")
        if not isinstance(file_id, str) or not file_id:
            raise SublabError(
                f"{self.api.url('files')}: the upload's reply has no file 'id' (got keys "
                f"{sorted(got)}); is api_base an OpenAI-compatible /v1 endpoint?"
            )
        self.save(file_id=file_id, file=got)
        return file_id

    def create(self, file_id: str) -> str:
        if self.record.get("job_id"):
            return str(self.record["job_id"])
        found = self._find_ours(file_id)
        if found is not None:
            self.save(job_id=found["id"], status=found.get("status"))
            return str(found["id"])
        payload: dict[str, Any] = {
            "model": self.base.path,
            "training_file": file_id,
            "method": {
                "type": "supervised",
                "supervised": {"hyperparameters": self.spec.hyperparameters()},
            },
        }
        if self.spec.seed is not None:
            payload["seed"] = self.spec.seed
        if self.spec.suffix is not None:
            payload["suffix"] = self.spec.suffix
        key = f"sublab-ftjob-{self.request['training_file_sha256'][:24]}-{file_id}"
        job = self.api.post_json("fine_tuning/jobs", payload, idempotency_key=key)
        job_id = job.get("id")
        if not isinstance(job_id, str) or not job_id:
            raise SublabError(
                f"{self.api.url('fine_tuning/jobs')}: the reply has no job 'id' (got keys "
                f"{sorted(job)})"
            )
        self.save(job_id=job_id, status=job.get("status"))
        self.check(job, job_id, file_id)
        return job_id

    def _find_ours(self, file_id: str) -> dict[str, Any] | None:
        """A job already created for our upload (the record lost its id), if the API lists one."""
        listing = self.api.get("fine_tuning/jobs?limit=100")
        jobs = listing.get("data")
        if not isinstance(jobs, list):
            return None
        for job in jobs:
            if isinstance(job, dict) and job.get("training_file") == file_id:
                self.check(job, str(job.get("id")), file_id)
                return job
        return None

    def check(self, job: dict[str, Any], job_id: str, file_id: str) -> None:
        """Refuse a job object that is not the job of this request."""
        problems = []
        if job.get("id") != job_id:
            problems.append(f"its id is {job.get('id')!r}, not {job_id!r}")
        if job.get("training_file") != file_id:
            problems.append(
                f"it trains on file {job.get('training_file')!r}, not our upload {file_id!r}"
            )
        model = job.get("model")
        asked = self.base.path
        # an alias may come back as its dated snapshot (gpt-4.1-nano -> gpt-4.1-nano-2025-04-14)
        if not (isinstance(model, str) and (model == asked or model.startswith(asked + "-"))):
            problems.append(f"its base model is {model!r}, not {asked!r}")
        if self.spec.seed is not None and job.get("seed") not in (None, self.spec.seed):
            problems.append(f"its seed is {job.get('seed')!r}, not {self.spec.seed}")
        method = job.get("method")
        hyper = job.get("hyperparameters")
        if isinstance(method, dict) and isinstance(method.get("supervised"), dict):
            hyper = method["supervised"].get("hyperparameters", hyper)
        if isinstance(hyper, dict):
            for name, want in self.spec.hyperparameters().items():
                have = hyper.get(name)
                if want != "auto" and have not in (None, "auto") and have != want:
                    problems.append(f"its {name} is {have!r}, not {want!r}")
        if problems:
            raise SublabError(
                f"fine-tuning job {job_id} does not match this request ({'; '.join(problems)}); "
                f"refusing its results. The record {self.record_path} names the wrong job: "
                "delete it or use a new work folder"
            )

    def wait(self, job_id: str, file_id: str) -> dict[str, Any]:
        start = time.monotonic()
        delay = self.spec.poll_s
        while True:
            job = self.api.get(f"fine_tuning/jobs/{job_id}")
            self.check(job, job_id, file_id)
            status = job.get("status")
            if status != self.record.get("status"):
                self.save(status=status)
                if self.on_status is not None:
                    self.on_status(job)
            if status in TERMINAL:
                return job
            elapsed = time.monotonic() - start
            if self.spec.wait_s is not None and elapsed + delay > self.spec.wait_s:
                raise FinetunePending(
                    f"fine-tuning job {job_id} is still {status!r} after {elapsed:.0f} s; call "
                    f"again with the same work folder ({self.work}) to resume waiting (nothing "
                    "is uploaded or created twice)"
                )
            time.sleep(delay)
            delay = min(delay * 2, self.spec.poll_max_s)

    def finish(self, job: dict[str, Any]) -> ModelRef:
        job_id = job["id"]
        if job.get("status") != "succeeded":
            err = job.get("error")
            message = err.get("message") if isinstance(err, dict) else None
            code = err.get("code") if isinstance(err, dict) else None
            self.save(status=job.get("status"), error=err)
            raise SublabError(
                f"fine-tuning job {job_id} ({self.base.path} on {self.api.base_url}) ended "
                f"{job.get('status')}: {message or 'the server gave no reason'}"
                f"{f' [{code}]' if code else ''}. The record {self.record_path} keeps this; "
                "fix the cause, then use a new work folder (or delete the record)"
            )
        name = job.get("fine_tuned_model")
        if not isinstance(name, str) or not name:
            raise SublabError(f"fine-tuning job {job_id} succeeded but names no fine_tuned_model")
        self.save(
            status="succeeded",
            fine_tuned_model=name,
            trained_tokens=job.get("trained_tokens"),
            error=None,
        )
        return self.result()

    def result(self) -> ModelRef:
        return ModelRef(
            path=str(self.record["fine_tuned_model"]),
            provider="openai",
            api_base=self.base.api_base,
        )


def finetune_via_api(
    base: ModelRef,
    rows: Sequence[dict[str, Any]],
    spec: ApiFinetuneSpec,
    work_dir: str | Path,
    settings: OpenAISettings | None = None,
    on_status: Callable[[dict[str, Any]], None] | None = None,
) -> ModelRef:
    """Fine-tune the API model ``base`` on ``rows``; the fine-tuned model, ready to sample.

    ``base`` has ``provider = "openai"`` and an ``api_base``; ``settings`` gives the key's
    variable name and the retries of each request. ``work_dir`` holds the job record and the
    uploaded file; calling again with the same folder resumes the same job (see the module doc).
    ``on_status`` is called with the job object each time its status changes. Raises
    FinetunePending when ``spec.wait_s`` runs out, and SublabError when the job failed or was
    cancelled, or when the record or a job does not match the request.
    """
    if base.provider != "openai" or not base.api_base:
        raise SublabError(
            f"model {base.path}: fine-tuning through an API needs provider = 'openai' and an "
            "api_base (e.g. https://api.openai.com/v1)"
        )
    if base.adapter is not None:
        raise SublabError(f"model {base.path}: an API model takes no adapter; remove 'adapter'")
    api = ApiClient(
        base.api_base,
        settings or OpenAISettings(),
        f"fine-tuning {base.path!r}",
        not_found_hint="check the job or file id, the model name, and that api_base ends in "
        "the API's version, e.g. /v1",
    )
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    job = _Job(api, base, spec, work, chat_jsonl(rows), on_status)
    job.load()
    status = job.record.get("status")
    if status == "succeeded" and job.record.get("fine_tuned_model"):
        return job.result()
    if status in ("failed", "cancelled"):
        err = job.record.get("error") or {}
        raise SublabError(
            f"fine-tuning job {job.record.get('job_id')} ended {status}: "
            f"{err.get('message') or 'the server gave no reason'} (recorded in "
            f"{job.record_path}); use a new work folder (or delete the record) to try again"
        )
    file_id = job.upload()
    job_id = job.create(file_id)
    return job.finish(job.wait(job_id, file_id))
