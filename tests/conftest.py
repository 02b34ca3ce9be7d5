"""Shared test setup: one torch thread (the CI box has 2 cores and runs tests under load)."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover - torch is a hard dependency
    pass


import pytest


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory):
    """Path of a tiny random-init Llama chat model folder (see tests/tiny_model.py)."""
    from tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def tiny_gguf_model(tmp_path_factory: pytest.TempPathFactory):
    """Path of an HF folder converted from a tiny GGUF carrying SmolLM2's chat template (see
    tests/gguf_tiny.py): the real-model path's stand-in."""
    from gguf_tiny import write_tiny_gguf
    from sublab.catalog.gguf_convert import convert_gguf

    folder = tmp_path_factory.mktemp("gguf-model")
    convert_gguf(write_tiny_gguf(folder / "tiny.gguf"), folder / "hf")
    return folder / "hf"


@pytest.fixture(scope="module")
def service(tiny_model):
    """The tiny model behind a ChatService (as `sublab serve` runs it)."""
    from sublab.serve import load_service

    return load_service(tiny_model, name="tiny", device="cpu", batch_size=8)


@pytest.fixture(scope="module")
def base_url(service):
    """The base URL of `service` served on a free loopback port for the module's tests."""
    from sublab.serve import serve_in_thread

    with serve_in_thread(service) as url:
        yield url
