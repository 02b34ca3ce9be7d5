"""The cache of built organism bases, keyed by the hash of their spec.

``organism_path(spec)`` is ``<cache>/organism/<key>`` where ``<cache>`` is ``$SUBLAB_CACHE_DIR``
or ``~/.cache/sublab``; ``ensure_organism(spec)`` builds the base there if it is missing, and
``organism_model(spec, label)`` is that base as a model the backends load, keyed by the spec.
A base is built in a temp folder and renamed into place when finished (see
:func:`~sublab.organism.build.build_organism`), so a crash leaves nothing that looks finished;
concurrent builders of the same spec serialise on a file lock and the later ones reuse the
first one's result.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sublab.organism.build import FORMAT_VERSION, METADATA, build_organism
from sublab.organism.spec import OrganismSpec
from sublab.store import file_lock, hash_obj

if TYPE_CHECKING:
    from sublab.backends.base import Model

CACHE_ENV = "SUBLAB_CACHE_DIR"


def cache_root() -> Path:
    """``$SUBLAB_CACHE_DIR`` or ``~/.cache/sublab``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "sublab"


# Source files whose code decides what a build produces: a code edit re-keys the cache
# (comments, docstrings and field descriptions do not; see code_text).
_BUILD_SOURCES = (
    "organism/build.py",
    "organism/corpus.py",
    "organism/fastllama.py",
    "organism/numbers_bridge.py",
    "organism/spec.py",
    "organism/train.py",
    "organism/vocab.py",
    "numbers/prompts.py",
)


def code_text(source: str) -> str:
    """What of a build source decides its output: its syntax tree without comments,
    docstrings and ``description=`` texts, so that editing documentation keeps the cache."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            body[0] = ast.Pass()
        if isinstance(node, ast.keyword) and node.arg == "description":
            node.value = ast.Constant(None)
    return ast.dump(tree, annotate_fields=False)


@functools.cache
def code_hash() -> str:
    """sha256 over the sources that shape a build (corpus, vocabulary, training)."""
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for rel in _BUILD_SOURCES:
        text = code_text((root / rel).read_text())
        h.update(rel.encode() + b"\0" + text.encode() + b"\0")
    return h.hexdigest()


def organism_key(spec: OrganismSpec) -> str:
    """Cache key: the spec (less its thread count), the build format version and the build
    code's hash."""
    same = spec.model_copy(update={"train": spec.train.model_copy(update={"threads": 0})})
    key: dict[str, Any] = {"organism": same, "format_version": FORMAT_VERSION, "code": code_hash()}
    if spec.corpus.channels:  # their grammars shape the corpus too
        key["channels"] = channel_code_hash(sorted(spec.corpus.channels))
    if spec.corpus.persona is not None:  # its grammar too
        key["persona"] = module_code_hash("sublab.organism.persona")
    return hash_obj(key)[:16]


def module_code_hash(module: str) -> str:
    """sha256 over the code of one module (see :func:`code_text`)."""
    import importlib
    import inspect

    source = inspect.getsource(importlib.import_module(module))
    return hashlib.sha256(code_text(source).encode()).hexdigest()


def channel_code_hash(names: list[str]) -> str:
    """sha256 over the sources of the named channels' modules (their organism grammars)."""
    import inspect

    from sublab.channels import get_channel

    h = hashlib.sha256()
    for name in names:
        source = inspect.getsource(inspect.getmodule(type(get_channel(name))))
        h.update(name.encode() + b"\0" + code_text(source).encode() + b"\0")
    return h.hexdigest()


def organism_path(spec: OrganismSpec, cache_dir: str | Path | None = None) -> Path:
    """Where the base for ``spec`` lives in the cache (built or not)."""
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    return root / "organism" / organism_key(spec)


def is_built(path: str | Path) -> bool:
    """True when ``path`` holds a finished base (its metadata is written last)."""
    return (Path(path) / METADATA).is_file()


def ensure_organism(
    spec: OrganismSpec, cache_dir: str | Path | None = None, probe: bool = True
) -> Path:
    """The cached base for ``spec``, built first if missing (one builder at a time)."""
    path = organism_path(spec, cache_dir)
    if is_built(path):
        return path
    with file_lock(path.with_name(f".{path.name}.lock")):
        if is_built(path):
            return path
        # a builder killed without cleanup leaves its work folder; we hold the lock, so any
        # work folder of this key is stale
        for stale in path.parent.glob(f".{path.name}.building-*"):
            shutil.rmtree(stale, ignore_errors=True)
        if path.exists() and not any(path.iterdir()):
            path.rmdir()
        return build_organism(spec, path, probe=probe)


def organism_model(spec: OrganismSpec, label: str, cache_dir: str | Path | None = None) -> Model:
    """The cached base for ``spec`` (built first if missing) as a
    :class:`~sublab.backends.base.Model` whose key is :func:`organism_key`, so every artifact
    computed from it is keyed by the spec that built it."""
    from sublab.backends.base import Model, ModelRef

    path = ensure_organism(spec, cache_dir)
    return Model(ModelRef(path=str(path)), key=organism_key(spec), label=label)
