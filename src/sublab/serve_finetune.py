"""The fine-tuning half of ``sublab serve``: OpenAI's files and fine-tuning jobs endpoints.

Turned on by ``sublab serve MODEL --finetune-dir DIR``:

- ``POST /v1/files`` (multipart/form-data: ``file``, ``purpose = "fine-tune"``) stores a chat
  JSONL training file under ``DIR/files``; every line must be ``{"messages": [optional system,
  user, assistant]}`` (one user turn and the reply to learn), else 400 naming the line.
  ``GET /v1/files/{id}`` returns the file object.
- ``POST /v1/fine_tuning/jobs`` (``model``, ``training_file``, optional ``seed``, ``suffix``,
  ``method = {"type": "supervised", "supervised": {"hyperparameters": {...}}}`` or the older
  top-level ``hyperparameters``) queues a job; ``GET /v1/fine_tuning/jobs/{id}`` and
  ``GET /v1/fine_tuning/jobs`` (newest first; ``limit``, ``after``) report it.
- Jobs run one at a time in a background thread with sublab's own fine-tuning
  (:func:`sublab.train.loop.finetune`), status ``queued`` → ``running`` → ``succeeded`` or
  ``failed`` (``error.message`` says why). The hyper-parameters map onto the server's
  :class:`~sublab.train.recipe.StudentRecipe` (``--finetune-recipe``, default StudentRecipe()):
  ``n_epochs`` → ``epochs``, ``batch_size`` → ``batch_size``, ``learning_rate_multiplier`` →
  ``learning_rate`` × multiplier, ``seed`` → ``seed``; ``"auto"`` keeps the recipe's value
  (multiplier 1). A job with no seed gets a random one, reported in the job object.
- A succeeded job's model is served as ``ft:<base>:sublab:<suffix>:<job id's last 8>`` through
  ``/v1/chat/completions`` and ``/v1/models``.

Files, jobs and models live under ``DIR`` (``files/``, ``jobs/``, ``models/``), written
atomically; a restarted server serves the finished models again and re-runs jobs that had not
finished (training is deterministic given the seed).
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import queue
import secrets
import threading
import time
import traceback
import urllib.parse
from pathlib import Path
from typing import Any

from sublab.errors import SublabError
from sublab.serve import ROLES, ChatService, RequestError, check_body
from sublab.store import atomic_write_bytes, atomic_write_json
from sublab.train.data import ChatProblem, chat_row
from sublab.train.recipe import StudentRecipe

SYSTEM_ROLES = frozenset(ROLES - {"user", "assistant"})
"""Roles read as the system turn ('system', and OpenAI's 'developer')."""

MAX_UPLOAD_BYTES = 64 * 1024 * 1024
JOB_FIELDS = {
    "model",
    "training_file",
    "seed",
    "suffix",
    "method",
    "hyperparameters",
    "validation_file",
    "metadata",
}
HYPER_FIELDS = ("n_epochs", "batch_size", "learning_rate_multiplier")


def parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """The parts of a multipart/form-data body: name -> (filename or None, bytes)."""
    if not content_type.startswith("multipart/form-data"):
        raise RequestError(
            400, f"upload files as multipart/form-data (got Content-Type {content_type!r})"
        )
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not msg.is_multipart():
        raise RequestError(400, "the multipart body could not be parsed (check the boundary)")
    parts: dict[str, tuple[str | None, bytes]] = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, str):
            payload = part.get_payload(decode=True)
            parts[name] = (part.get_filename(), payload if isinstance(payload, bytes) else b"")
    return parts


def training_rows(data: bytes) -> list[dict[str, Any]]:
    """Chat JSONL → sublab rows ``{prompt, completion, optional system_prompt}``; 400 on a bad
    line, naming it."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise RequestError(400, f"the file is not UTF-8 text (byte {err.start})", "file") from None
    rows = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        rows.append(_row(line, n))
    if not rows:
        raise RequestError(400, "the file has no rows; expected JSON lines of {messages}", "file")
    return rows


def _row(line: str, n: int) -> dict[str, Any]:
    where = f"line {n}"
    try:
        rec = json.loads(line)
    except ValueError as err:
        raise RequestError(400, f"{where}: not valid JSON ({err})", "file") from None
    if not isinstance(rec, dict) or not isinstance(rec.get("messages"), list):
        raise RequestError(400, f'{where}: expected {{"messages": [...]}}', "file")
    extra = sorted(set(rec) - {"messages"})
    if extra:
        raise RequestError(400, f"{where}: unsupported field(s) {extra}; only 'messages'", "file")
    row = chat_row(rec["messages"], SYSTEM_ROLES)
    if not isinstance(row, ChatProblem):
        return row
    if row.index is not None:
        raise RequestError(
            400,
            f"{where}: messages[{row.index}] needs a 'role' in {sorted(ROLES)} and a string "
            "'content'",
            "file",
        )
    raise RequestError(
        400,
        f"{where}: sublab serve trains on one user message and the assistant's reply, "
        f"optionally after one system message; got roles {row.roles}",
        "file",
    )


def _hyper_value(hyper: dict[str, Any], name: str, kind: type) -> Any:
    value = hyper.get(name, "auto")
    if value is None or value == "auto":
        return "auto"
    ok = (
        not isinstance(value, bool)
        and isinstance(value, int | float if kind is float else int)
        and value > 0
    )
    if not ok:
        kind_name = "a number > 0" if kind is float else "an integer >= 1"
        raise RequestError(
            400, f"hyperparameters.{name} must be {kind_name} or 'auto' (got {value!r})", name
        )
    return value


class FineTuneService:
    """Files and fine-tuning jobs of one server, kept under ``state_dir``.

    Jobs run in one worker thread; with ``start=False`` they wait, queued, until :meth:`start`.
    """

    def __init__(
        self,
        chat: ChatService,
        state_dir: str | Path,
        recipe: StudentRecipe | None = None,
        max_upload_bytes: int = MAX_UPLOAD_BYTES,
        start: bool = True,
    ) -> None:
        self.chat = chat
        self.state = Path(state_dir)
        self.recipe = recipe or StudentRecipe()
        self.max_upload_bytes = max_upload_bytes
        for sub in ("files", "jobs", "models"):
            (self.state / sub).mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.jobs: dict[str, dict[str, Any]] = {}
        for path in sorted((self.state / "jobs").glob("*.json")):
            job = json.loads(path.read_text())
            self.jobs[job["id"]] = job
        for job in sorted(self.jobs.values(), key=lambda j: j["created_at"]):
            if job["status"] == "succeeded":
                self._serve(job)
            elif job["status"] in ("queued", "running"):
                self._update(job["id"], status="queued")
                self._queue.put(job["id"])
        self._worker = threading.Thread(target=self._work, name="sublab-finetune", daemon=True)
        if start:
            self._worker.start()
        chat.finetune = self

    def start(self) -> None:
        """Start running queued jobs (for a service made with ``start=False``)."""
        if not self._worker.is_alive():
            self._worker.start()

    # ------------------------------------------------------------ HTTP

    def get(self, path: str) -> dict[str, Any]:
        """The reply to a GET of a files/jobs path (query string included)."""
        route, _, query = path.partition("?")
        if route.startswith("/v1/files/"):
            return self._file(route[len("/v1/files/") :])
        if route == "/v1/fine_tuning/jobs":
            return self._list(urllib.parse.parse_qs(query))
        if route.startswith("/v1/fine_tuning/jobs/"):
            return self._job(route[len("/v1/fine_tuning/jobs/") :])
        raise RequestError(404, f"no such endpoint: GET {route}")

    def post(self, path: str, content_type: str, body: bytes) -> dict[str, Any]:
        """The reply to a POST of a files/jobs path."""
        if path == "/v1/files":
            return self.upload(parse_multipart(content_type, body))
        if path == "/v1/fine_tuning/jobs":
            try:
                data = json.loads(body)
            except ValueError:
                raise RequestError(400, "the request body is not valid JSON") from None
            return self.create(data)
        raise RequestError(404, f"no such endpoint: POST {path}")

    # ------------------------------------------------------------ files

    def upload(self, parts: dict[str, tuple[str | None, bytes]]) -> dict[str, Any]:
        """Store a fine-tune training file after checking every line."""
        purpose = parts.get("purpose", (None, b""))[1].decode("utf-8", "replace")
        if purpose != "fine-tune":
            raise RequestError(
                400, f"purpose must be 'fine-tune' on this server (got {purpose!r})", "purpose"
            )
        if "file" not in parts:
            raise RequestError(400, "the upload has no 'file' part", "file")
        filename, data = parts["file"]
        rows = training_rows(data)
        file_id = f"file-{secrets.token_hex(12)}"
        obj = {
            "id": file_id,
            "object": "file",
            "bytes": len(data),
            "created_at": int(time.time()),
            "filename": filename or "upload.jsonl",
            "purpose": "fine-tune",
            "status": "processed",
            "rows": len(rows),
        }
        atomic_write_bytes(self.state / "files" / f"{file_id}.jsonl", data)
        atomic_write_json(self.state / "files" / f"{file_id}.json", obj)
        return obj

    def _file(self, file_id: str) -> dict[str, Any]:
        path = self.state / "files" / f"{file_id}.json"
        if not file_id.startswith("file-") or "/" in file_id or not path.is_file():
            raise RequestError(404, f"No such File object: {file_id}", "id")
        return json.loads(path.read_text())

    # ------------------------------------------------------------ jobs

    def create(self, body: Any) -> dict[str, Any]:
        """Validate a job request and queue it."""
        body = check_body(body, JOB_FIELDS)
        if body.get("validation_file") is not None:
            raise RequestError(400, "validation_file is not supported", "validation_file")
        model = body.get("model")
        if not isinstance(model, str) or self.chat.local_path(model) is None:
            served = sorted(n for n in self.chat.served if self.chat.local_path(n))
            raise RequestError(
                400,
                f"model {model!r} cannot be fine-tuned here; this server fine-tunes {served}",
                "model",
                "model_not_available",
            )
        file_id = body.get("training_file")
        if not isinstance(file_id, str):
            raise RequestError(400, "training_file (a file id) is required", "training_file")
        try:
            self._file(file_id)
        except RequestError:
            raise RequestError(
                400,
                f"training_file {file_id!r}: no such file; upload it first (POST /v1/files)",
                "training_file",
            ) from None
        seed = body.get("seed")
        if seed is None:
            seed = secrets.randbits(31)
        elif isinstance(seed, bool) or not isinstance(seed, int):
            raise RequestError(400, f"'seed' must be an integer (got {seed!r})", "seed")
        suffix = body.get("suffix")
        if suffix is not None and (
            not isinstance(suffix, str) or len(suffix) > 64 or ":" in suffix
        ):
            raise RequestError(
                400, "'suffix' must be a string of at most 64 characters, no ':'", "suffix"
            )
        hyper = self._hyperparameters(body)
        job_id = f"ftjob-{secrets.token_hex(12)}"
        job = {
            "id": job_id,
            "object": "fine_tuning.job",
            "model": model,
            "created_at": int(time.time()),
            "finished_at": None,
            "fine_tuned_model": None,
            "organization_id": "sublab",
            "result_files": [],
            "status": "queued",
            "training_file": file_id,
            "validation_file": None,
            "hyperparameters": hyper,
            "method": {"type": "supervised", "supervised": {"hyperparameters": hyper}},
            "seed": seed,
            "suffix": suffix,
            "trained_tokens": None,
            "error": None,
            "metadata": body.get("metadata"),
        }
        with self._lock:
            self.jobs[job_id] = job
            atomic_write_json(self.state / "jobs" / f"{job_id}.json", job)
        self._queue.put(job_id)
        return dict(job)

    def _hyperparameters(self, body: dict[str, Any]) -> dict[str, Any]:
        hyper = body.get("hyperparameters") or {}
        method = body.get("method")
        if method is not None:
            if not isinstance(method, dict) or method.get("type") != "supervised":
                raise RequestError(400, "method.type must be 'supervised' on this server", "method")
            sup = method.get("supervised") or {}
            if not isinstance(sup, dict):
                raise RequestError(400, "method.supervised must be an object", "method")
            hyper = sup.get("hyperparameters") or hyper
        if not isinstance(hyper, dict):
            raise RequestError(400, "hyperparameters must be an object", "hyperparameters")
        unknown = sorted(set(hyper) - set(HYPER_FIELDS))
        if unknown:
            raise RequestError(
                400,
                f"unknown hyperparameter(s) {unknown}: supported {list(HYPER_FIELDS)}",
                unknown[0],
            )
        return {
            "n_epochs": _hyper_value(hyper, "n_epochs", int),
            "batch_size": _hyper_value(hyper, "batch_size", int),
            "learning_rate_multiplier": _hyper_value(hyper, "learning_rate_multiplier", float),
        }

    def recipe_for(self, job: dict[str, Any]) -> StudentRecipe:
        """The server's recipe with the job's hyper-parameters and seed ('auto': unchanged)."""
        hyper = job["hyperparameters"]
        r = self.recipe
        update: dict[str, Any] = {"seed": job["seed"]}
        if hyper["n_epochs"] != "auto":
            update["epochs"] = hyper["n_epochs"]
        if hyper["batch_size"] != "auto":
            update["batch_size"] = hyper["batch_size"]
        if hyper["learning_rate_multiplier"] != "auto":
            update["learning_rate"] = r.learning_rate * hyper["learning_rate_multiplier"]
        return StudentRecipe.model_validate({**r.model_dump(), **update})

    def _job(self, job_id: str) -> dict[str, Any]:
        with self._lock:
            job = self.jobs.get(job_id)
            if job is None:
                raise RequestError(404, f"No such fine-tuning job: {job_id}", "id")
            return dict(job)

    def _list(self, query: dict[str, list[str]]) -> dict[str, Any]:
        try:
            limit = int(query.get("limit", ["20"])[0])
        except ValueError:
            raise RequestError(400, "'limit' must be an integer", "limit") from None
        after = query.get("after", [None])[0]
        with self._lock:
            jobs = sorted(
                self.jobs.values(), key=lambda j: (j["created_at"], j["id"]), reverse=True
            )
            if after is not None:
                ids = [j["id"] for j in jobs]
                jobs = jobs[ids.index(after) + 1 :] if after in ids else []
            page = [dict(j) for j in jobs[: max(1, min(limit, 100))]]
        return {"object": "list", "data": page, "has_more": len(jobs) > len(page)}

    # ------------------------------------------------------------ training

    def _update(self, job_id: str, **changes: Any) -> None:
        with self._lock:
            job = self.jobs[job_id]
            job.update(changes)
            atomic_write_json(self.state / "jobs" / f"{job_id}.json", job)

    def model_name(self, job: dict[str, Any]) -> str:
        """The name a succeeded job's model is served as."""
        return f"ft:{job['model']}:sublab:{job['suffix'] or ''}:{job['id'][-8:]}"

    def _serve(self, job: dict[str, Any]) -> None:
        self.chat.add_model(
            job["fine_tuned_model"], self.state / "models" / job["id"], job["finished_at"]
        )

    def _work(self) -> None:
        while (job_id := self._queue.get()) is not None:
            self.run(job_id)

    def close(self) -> None:
        """Stop the worker after the job it is running (queued jobs run at the next start)."""
        self._queue.put(None)
        if self._worker.is_alive():
            self._worker.join()

    def run(self, job_id: str) -> None:
        """Train one job; its status ends succeeded (model served) or failed (error set)."""
        from sublab.train.loop import finetune

        job = self._job(job_id)
        self._update(job_id, status="running")
        out = self.state / "models" / job_id
        try:
            base = self.chat.local_path(job["model"])
            if base is None:
                raise SublabError(f"model {job['model']!r} is no longer served here")
            rows = training_rows(
                (self.state / "files" / f"{job['training_file']}.jsonl").read_bytes()
            )
            recipe = self.recipe_for(job)
            if out.exists() and not any(out.iterdir()):
                out.rmdir()
            if not out.exists():
                finetune(base, rows, recipe, out)
            info = json.loads((out / "train.json").read_text())
        except (SublabError, RequestError) as err:
            self._fail(job_id, str(err))
            return
        except Exception as err:  # a bug or a resource problem: the job fails, the server lives
            traceback.print_exc()
            self._fail(job_id, f"internal error: {type(err).__name__}: {err}")
            return
        self._update(
            job_id,
            status="succeeded",
            fine_tuned_model=self.model_name(job),
            finished_at=int(time.time()),
            trained_tokens=info["label_tokens"] * recipe.epochs,
        )
        self._serve(self._job(job_id))

    def _fail(self, job_id: str, message: str) -> None:
        self._update(
            job_id,
            status="failed",
            finished_at=int(time.time()),
            error={"code": "training_failed", "message": message, "param": None},
        )

    def wait_idle(self, timeout: float = 60.0) -> None:
        """Block until no job is queued or running (tests and shutdown)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self._lock:
                busy = any(j["status"] in ("queued", "running") for j in self.jobs.values())
            if not busy:
                return
            time.sleep(0.05)
        raise SublabError(f"fine-tuning jobs still running after {timeout} s")
