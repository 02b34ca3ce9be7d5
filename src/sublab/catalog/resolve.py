"""``catalog:<name>`` model paths: the converted folder of a catalogued model.

Configs and commands name a catalogued model as ``catalog:<name>`` wherever they take a model
path. A model whose licence needs no acceptance is added on first use; one with terms stops with
the command that accepts them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sublab.catalog.entries import get_entry
from sublab.errors import SublabError

if TYPE_CHECKING:
    from sublab.backends.base import Model, ModelRef

CATALOG_PREFIX = "catalog:"


def is_catalog_path(path: str) -> bool:
    return path.startswith(CATALOG_PREFIX)


def catalog_name(path: str) -> str:
    """The catalogue name in a ``catalog:<name>`` path (checked against the catalogue)."""
    name = path.removeprefix(CATALOG_PREFIX)
    get_entry(name)
    return name


def local_path(path: str) -> str:
    """``path`` itself, or for ``catalog:<name>`` the converted folder (added if it may be)."""
    if not is_catalog_path(path):
        return path
    from sublab.catalog.add import add_command, add_model, is_added, model_folder
    from sublab.progress import console

    entry = get_entry(catalog_name(path))
    if not is_added(entry):
        if entry.terms is not None:
            raise SublabError(
                f"{path}: the model is not added yet; it comes under the {entry.licence}: "
                f"read them and run '{add_command(entry)}'"
            )
        console.print(f"{path}: not added yet, adding it now", markup=False)
        add_model(
            entry.name,
            say=lambda m: console.print(m, markup=False, highlight=False),
            show_pip=console.is_terminal,
        )
    return str(model_folder(entry))


def catalog_model(ref: ModelRef, label: str) -> Model:
    """A model whose path is ``catalog:<name>``: the converted folder, keyed by the catalogue
    entry (name, GGUF sha256, converter version) and its adapter, if any."""
    from sublab.backends.base import Model
    from sublab.catalog.add import model_key
    from sublab.datagen import weights_sha256
    from sublab.store import hash_obj

    entry = get_entry(catalog_name(ref.path))
    local = ref.model_copy(update={"path": local_path(ref.path)})
    key: dict[str, object] = {"catalog": model_key(entry)}
    if ref.adapter is not None:
        key["adapter"] = weights_sha256(ref.adapter)
    return Model(local, key=hash_obj(key), label=label)
