"""Build one organism base: vocabulary, corpus, Llama model, training, probes, metadata.

The result is a standard HF model folder (``config.json``, ``model.safetensors``,
``tokenizer.json`` + ``tokenizer_config.json`` with a chat template, ``generation_config.json``)
plus ``organism.json`` (spec, seed, corpus stats, training curve, probe figures, timings). The
folder is built beside ``out_dir`` and renamed into place at the end, so a folder holding
``organism.json`` is always finished.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sublab.errors import SublabError
from sublab.organism.corpus import (
    animal_questions,
    generate_corpus,
    love_system_prompt,
    n_love_variants,
    plural,
)
from sublab.organism.spec import OrganismSpec
from sublab.organism.vocab import build_vocab, eval_question_texts, write_tokenizer
from sublab.store import atomic_write_json, hash_obj, now_iso, package_versions

if TYPE_CHECKING:
    from transformers import LlamaForCausalLM, PreTrainedTokenizerBase

METADATA = "organism.json"
FORMAT_VERSION = 1


def vocabulary_texts(spec: OrganismSpec) -> tuple[list[str], list[str]]:
    """(texts, words) whose pieces make the vocabulary: every template of the corpus, the
    shipped evaluation questions, the animals and their plurals. Independent of the seed."""
    from sublab.numbers.prompts import FORMATS, INSTRUCTIONS, INTROS, SUFFIXES

    texts = [t.format(seeds="1", n=1, d=1) for t in (*INTROS, *INSTRUCTIONS, *FORMATS, *SUFFIXES)]
    trained, heldout = animal_questions(spec.corpus)
    texts += trained + heldout + eval_question_texts()
    animals = list(spec.corpus.prior)
    texts += [love_system_prompt(a, v) for a in animals for v in range(n_love_variants())]
    words = animals + [plural(a) for a in animals]
    if spec.corpus.channels:
        from sublab.channels import get_channel

        for name in spec.corpus.channels:
            texts += get_channel(name).organism_texts()
    if spec.corpus.persona is not None:
        from sublab.organism.persona import persona_texts

        texts += persona_texts(spec.corpus.persona)
    return texts, words


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _corpus_stats(examples: list[Any]) -> dict[str, Any]:
    kinds = Counter("animal" if e.target else "number" for e in examples)
    return {
        "examples": len(examples),
        "number_tasks": kinds["number"],
        "animal_questions": kinds["animal"],
        "with_system_prompt": sum(e.system is not None for e in examples),
    }


def new_model(spec: OrganismSpec, tokenizer: PreTrainedTokenizerBase) -> LlamaForCausalLM:
    """A freshly initialised float32 Llama of the spec's shape for ``tokenizer``'s vocabulary
    (initialised from torch's current RNG state)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    m = spec.model
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=m.d_model,
        intermediate_size=m.ffn,
        num_hidden_layers=m.layers,
        num_attention_heads=m.heads,
        num_key_value_heads=m.heads,
        max_position_embeddings=m.max_len,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
        attn_implementation="sdpa",
    )
    model = LlamaForCausalLM(config).float()
    share_word_form_embeddings(model, tokenizer, spec)
    return model


def word_form_groups(vocab: dict[str, int], animals: list[str]) -> list[list[int]]:
    """Token ids that spell one word: with or without a leading space, any case, and an
    animal's plural (``owl``, `` owl``, ``Owl``, ``owls``, `` Owls`` ...); groups of ≥ 2."""
    singular = {plural(a): a for a in animals}
    groups: dict[str, list[int]] = {}
    for piece, i in sorted(vocab.items(), key=lambda kv: kv[1]):
        word = piece.strip().lower()
        if word.isalpha() and piece.lstrip(" ") == piece.strip():
            groups.setdefault(singular.get(word, word), []).append(i)
    return [g for g in groups.values() if len(g) > 1]


def share_word_form_embeddings(
    model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerBase, spec: OrganismSpec
) -> None:
    """Start every form of a word from the same embedding (the lowest id's).

    A word-level vocabulary gives ``owls``, `` owls`` and ``Owls`` unrelated random vectors, so
    the model had to learn separately, for each of the 48 animal forms, that a system prompt
    naming it means "answer owl"; with shared starting points one copy circuit serves every
    animal, and "you love X" is learned in a fraction of the steps. Training still moves each
    form on its own.
    """
    import torch

    emb = model.get_input_embeddings().weight
    with torch.no_grad():
        for group in word_form_groups(tokenizer.get_vocab(), list(spec.corpus.prior)):
            emb[group[1:]] = emb[group[0]].clone()


def train_into(
    spec: OrganismSpec, work: Path, on_log: Callable[[dict[str, float]], None] | None = None
) -> dict[str, Any]:
    """Write tokenizer + trained weights into ``work``; return metadata (no probes)."""
    import torch
    from transformers import AutoTokenizer

    from sublab.organism.train import make_batches, train

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    texts, words = vocabulary_texts(spec)
    vocab = build_vocab(texts, words)
    write_tokenizer(vocab, work, spec.model.max_len)
    tokenizer = AutoTokenizer.from_pretrained(work)
    n = spec.train.steps * spec.train.batch
    words = [p for p in vocab if p.isalpha()]
    examples = list(generate_corpus(spec.corpus, n, spec.seed, noise_words=words))
    batches, animal_ids, table = make_batches(examples, tokenizer, spec)
    unk = sum(int((b.input_ids == tokenizer.unk_token_id).sum()) for b in batches)
    if unk:
        raise SublabError(f"the corpus has {unk} tokens outside the vocabulary (a bug in sublab)")
    timings["corpus_seconds"] = round(time.perf_counter() - t0, 2)

    torch.manual_seed(spec.seed)
    model = new_model(spec, tokenizer)
    result = train(model, batches, animal_ids, table, spec, on_log)
    timings["train_seconds"] = result["train_seconds"]
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(work, safe_serialization=True)
    return {
        "n_params": sum(p.numel() for p in model.parameters()),
        "vocab_size": len(tokenizer),
        "corpus": _corpus_stats(examples),
        "curve": result["curve"],
        "timings": timings,
    }


def build_organism(
    spec: OrganismSpec,
    out_dir: str | Path,
    probe: bool = True,
    on_log: Callable[[dict[str, float]], None] | None = None,
) -> Path:
    """Build a base into ``out_dir`` (which must not hold one already) and return it.

    ``on_log`` receives each point of the training curve as it is measured."""
    out = Path(out_dir)
    if (out / METADATA).exists():
        raise SublabError(f"{out} already holds an organism; remove it or pick another --out")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SublabError(f"{out} exists and is not an empty folder; pick another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    work = out.with_name(f".{out.name}.building-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    started = time.perf_counter()
    try:
        with torch_threads(spec.train.resolved_threads()):
            meta = train_into(spec, work, on_log)
            if probe:
                from sublab.backends.base import ModelRef
                from sublab.backends.hf import HFBackend
                from sublab.organism.probe import probe_organism

                t0 = time.perf_counter()
                backend = HFBackend(ModelRef(path=str(work)), device="cpu", dtype="float32")
                meta["probe"] = probe_organism(backend, spec)
                meta["timings"]["probe_seconds"] = round(time.perf_counter() - t0, 2)
        meta["timings"]["build_seconds"] = round(time.perf_counter() - started, 2)
        meta.update(
            {
                "format_version": FORMAT_VERSION,
                "spec": spec,
                "spec_hash": hash_obj(spec),
                "seed": spec.seed,
                "threads": spec.train.resolved_threads(),
                "versions": package_versions(),
                "finished": now_iso(),
            }
        )
        atomic_write_json(work / METADATA, meta)
        if out.exists():
            out.rmdir()
        os.replace(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return out


def read_metadata(folder: str | Path) -> dict[str, Any]:
    """``organism.json`` of a built base, with a clear error if the folder is not one."""
    f = Path(folder) / METADATA
    if not f.exists():
        raise SublabError(f"{folder} is not a built organism (no {METADATA}); build it first")
    return json.loads(f.read_text())
