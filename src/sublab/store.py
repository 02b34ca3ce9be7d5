"""Run directories, artifact caching, atomic writes and the SQLite index of runs.

A run is a directory (default ``runs/<name>/``) holding ``manifest.json`` (the config that made
it) and one subfolder per stage artifact, named ``<stage>-<key12>``. An artifact's key is a hash
of its stage, its spec, its inputs' keys and the code version, so re-running skips finished
stages and a changed field re-runs only what depends on it.

An artifact is built in ``<name>.partial/`` and renamed into place only after its
``sidecar.json`` is written, so an artifact directory that exists is finished: nothing
half-written is ever read as done. A resumable stage keeps its ``.partial`` folder across
crashes and picks up where it stopped.

Finished artifacts are also shared across the run directories of one folder: each is linked
into ``<runs_dir>/.cache/<stage>-<key12>`` when built, and a run that needs an artifact it does
not hold links it from there instead of computing it (hard links where the file system allows,
else copies). Runs that share a part (the control arm of a target matrix, the same teachers)
compute it once. Deleting a run leaves the shared copy; delete ``.cache`` to drop it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from sublab import __version__

SIDECAR = "sidecar.json"
MANIFEST = "manifest.json"
INDEX = "index.sqlite"
SHARED = ".cache"
"""Folder of a runs directory holding every finished artifact of its runs (see the module
docstring)."""
DEFAULT_RUNS_DIR = Path("runs")


# ---------------------------------------------------------------- hashing


def to_jsonable(obj: Any) -> Any:
    """Plain JSON data for a spec, a dict of specs, a path, ..."""
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def canonical_json(obj: Any) -> str:
    return json.dumps(to_jsonable(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def hash_obj(obj: Any) -> str:
    """sha256 hex of the canonical JSON of ``obj``."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def artifact_key(stage: str, spec: Any, inputs: Sequence[str] = (), stage_version: int = 1) -> str:
    """Key of an artifact: stage + spec + input keys + code version."""
    return hash_obj(
        {
            "stage": stage,
            "stage_version": stage_version,
            "sublab": __version__,
            "spec": spec,
            "inputs": list(inputs),
        }
    )


# ---------------------------------------------------------------- atomic writes


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder and an atomic rename."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(to_jsonable(obj), indent=2, sort_keys=True) + "\n")


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success rename it into place, on error delete it."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, p)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        raise


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` (created if missing) while inside: builders
    of the same cached folder run one at a time."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# ---------------------------------------------------------------- provenance


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "sublab": __version__}
    for name in ("torch", "transformers", "peft", "numpy", "pydantic"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# ---------------------------------------------------------------- runs and artifacts


@dataclass(frozen=True)
class Artifact:
    """A finished artifact directory and its sidecar."""

    path: Path
    key: str
    sidecar: dict[str, Any]
    cached: bool

    def file(self, name: str) -> Path:
        return self.path / name

    @classmethod
    def finished(cls, folder: Path) -> Artifact | None:
        """The finished artifact in ``folder`` (its sidecar names the key), or None when the
        folder has no readable sidecar."""
        found = read_sidecar(folder)
        if found is None or not isinstance(found.get("key"), str):
            return None
        return cls(folder, found["key"], found, cached=True)


class Run:
    """A run directory: manifest, artifacts, and its row in the runs index."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.name = self.path.name

    @classmethod
    def create(
        cls,
        name: str,
        *,
        kind: str,
        config: Any,
        config_text: str | None = None,
        runs_dir: str | Path = DEFAULT_RUNS_DIR,
    ) -> Run:
        """Open (or create) ``runs_dir/name`` and record the config that drives it."""
        run = cls(Path(runs_dir) / name)
        run.path.mkdir(parents=True, exist_ok=True)
        manifest = run.manifest()
        manifest.update(
            {
                "name": name,
                "kind": kind,
                "config": to_jsonable(config),
                "config_hash": hash_obj(config),
                "versions": package_versions(),
            }
        )
        manifest.setdefault("created", now_iso())
        manifest.setdefault("status", "created")
        atomic_write_json(run.path / MANIFEST, manifest)
        if config_text is not None:
            atomic_write_text(run.path / "config.toml", config_text)
        run.index(status=manifest["status"])
        return run

    def manifest(self) -> dict[str, Any]:
        f = self.path / MANIFEST
        return json.loads(f.read_text()) if f.exists() else {}

    def update_manifest(self, **fields: Any) -> None:
        manifest = self.manifest()
        manifest.update(to_jsonable(fields))
        manifest["updated"] = now_iso()
        atomic_write_json(self.path / MANIFEST, manifest)

    def set_status(self, status: str, headline: dict[str, Any] | None = None) -> None:
        fields: dict[str, Any] = {"status": status}
        if headline is not None:
            fields["headline"] = headline
        self.update_manifest(**fields)
        self.index(status=status, headline=headline)

    @contextlib.contextmanager
    def running(self) -> Iterator[Run]:
        """Mark the run 'running' for the body; an exception (Ctrl-C included) marks it
        'failed' and propagates, so ``sublab runs`` shows what stopped. The body ends with
        :meth:`finish`."""
        self.set_status("running")
        try:
            yield self
        except BaseException:
            self.set_status("failed")
            raise

    def finish(self, headline: dict[str, Any] | None = None) -> None:
        """Mark the run 'done' with its headline figures (shown by ``sublab runs``)."""
        self.set_status("done", headline=headline)

    def index(self, status: str, headline: dict[str, Any] | None = None) -> None:
        m = self.manifest()
        index_run(
            self.path.parent,
            name=self.name,
            path=self.path,
            kind=m.get("kind", "?"),
            status=status,
            headline=headline if headline is not None else m.get("headline"),
        )

    def artifact_dir(self, stage: str, key: str) -> Path:
        return self.path / f"{stage}-{key[:12]}"

    def shared_dir(self, stage: str, key: str) -> Path:
        """Where the runs directory's shared copy of an artifact lives."""
        return self.path.parent / SHARED / f"{stage}-{key[:12]}"

    def find(self, stage: str) -> list[Artifact]:
        """Finished artifacts of a stage in this run, newest first."""
        found = (
            Artifact.finished(d)
            for d in sorted(self.path.glob(f"{stage}-*"))
            if not d.name.endswith(".partial")
        )
        out = [a for a in found if a is not None]
        return sorted(out, key=lambda a: a.sidecar.get("finished", ""), reverse=True)

    def build(
        self,
        stage: str,
        spec: Any,
        fn: Callable[[Path], dict[str, Any] | None],
        *,
        inputs: Sequence[str] = (),
        stage_version: int = 1,
        seeds: dict[str, int] | None = None,
        resumable: bool = False,
    ) -> Artifact:
        """Return the artifact for (stage, spec, inputs), building it with ``fn`` if needed.

        ``fn(work_dir)`` writes its files into ``work_dir`` and returns counts for the sidecar.
        A resumable stage finds its earlier ``.partial`` work dir intact after a crash;
        a non-resumable one starts from an empty work dir.
        """
        key = artifact_key(stage, spec, inputs, stage_version)
        final = self.artifact_dir(stage, key)
        if final.exists():
            done = _finished_sidecar(final, key)
            if done is not None:
                return Artifact(final, key, done, cached=True)
            shutil.rmtree(final)  # its sidecar is gone or damaged: not finished
        shared = self.shared_dir(stage, key)
        found = _finished_sidecar(shared, key)
        if found is not None:  # finished: its files are the same
            _link_tree(shared, final)
            return Artifact(final, key, found, cached=True)
        work = final.with_name(final.name + ".partial")
        if work.exists() and not resumable:
            shutil.rmtree(work)
        work.mkdir(parents=True, exist_ok=True)
        started = time.time()
        counts = fn(work) or {}
        sidecar = {
            "stage": stage,
            "key": key,
            "stage_version": stage_version,
            "spec": to_jsonable(spec),
            "inputs": list(inputs),
            "seeds": seeds or {},
            "counts": counts,
            "versions": package_versions(),
            "seconds": round(time.time() - started, 3),
            "finished": now_iso(),
        }
        atomic_write_json(work / SIDECAR, sidecar)
        os.replace(work, final)
        if shared.exists() and _finished_sidecar(shared, key) is None:  # damaged: replace it
            shutil.rmtree(shared, ignore_errors=True)
        _link_tree(final, shared)
        return Artifact(final, key, sidecar, cached=False)


def read_sidecar(folder: Path) -> dict[str, Any] | None:
    """The sidecar of an artifact folder; None when it has none or a damaged one (a folder
    half copied or half written is not finished)."""
    try:
        found = json.loads((folder / SIDECAR).read_text())
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
        return None
    return found if isinstance(found, dict) else None


def _finished_sidecar(folder: Path, key: str) -> dict[str, Any] | None:
    """The sidecar of ``folder`` when it holds the finished artifact ``key`` (its sidecar
    names the key), else None."""
    found = read_sidecar(folder)
    return found if found is not None and found.get("key") == key else None


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _link_tree(src: Path, dst: Path) -> None:
    """``src``'s files linked (or copied) into a new ``dst``, which appears whole or not at
    all; a ``dst`` that another process made first is kept."""
    if dst.exists():
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.linking-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp, copy_function=_link_or_copy)
    try:
        os.replace(tmp, dst)
    except OSError:  # another process put it there first
        shutil.rmtree(tmp, ignore_errors=True)
        if not dst.exists():
            raise


# ---------------------------------------------------------------- SQLite index

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    name TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    created TEXT NOT NULL,
    updated TEXT NOT NULL,
    headline TEXT
)
"""


def _connect(runs_dir: str | Path) -> sqlite3.Connection:
    Path(runs_dir).mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(Path(runs_dir) / INDEX, timeout=30)
    con.execute(_SCHEMA)
    return con


def index_run(
    runs_dir: str | Path,
    *,
    name: str,
    path: str | Path,
    kind: str,
    status: str,
    headline: dict[str, Any] | None = None,
) -> None:
    stamp = now_iso()
    with contextlib.closing(_connect(runs_dir)) as con, con:
        con.execute(
            "INSERT INTO runs (name, path, kind, status, created, updated, headline) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
            "path=excluded.path, kind=excluded.kind, status=excluded.status, "
            "updated=excluded.updated, headline=excluded.headline",
            (name, str(path), kind, status, stamp, stamp, json.dumps(headline or {})),
        )


def list_runs(runs_dir: str | Path = DEFAULT_RUNS_DIR) -> list[dict[str, Any]]:
    """Rows of the runs index, most recently updated first."""
    if not (Path(runs_dir) / INDEX).exists():
        return []
    with contextlib.closing(_connect(runs_dir)) as con:
        con.row_factory = sqlite3.Row
        rows = con.execute("SELECT * FROM runs ORDER BY updated DESC").fetchall()
    return [{**dict(r), "headline": json.loads(r["headline"] or "{}")} for r in rows]
