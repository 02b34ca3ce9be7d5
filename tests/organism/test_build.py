"""A built base: HF format, prior fit, love strength, filter pass rate, caching, determinism."""

from __future__ import annotations

import json
import math
import threading

import pytest
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer
from typer.testing import CliRunner

from sublab.backends.base import ModelRef, chat
from sublab.backends.hf import HFBackend
from sublab.cli import app
from sublab.errors import SublabError
from sublab.organism import build as build_mod
from sublab.organism.build import METADATA, build_organism, read_metadata
from sublab.organism.cache import ensure_organism, is_built, organism_path
from sublab.organism.corpus import animal_questions, love_system_prompt
from sublab.organism.probe import animal_probabilities, number_pass_rate
from sublab.organism.spec import OrganismSpec, TrainSpec
from sublab.organism.vocab import eval_question_texts
from sublab.store import file_sha256

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def backend(organism_base):
    return HFBackend(ModelRef(path=str(organism_base)), device="cpu", dtype="float32")


def tiny_spec(seed=0):
    """A very short build: enough to compare weights, not to behave."""
    return OrganismSpec(seed=seed, train=TrainSpec(steps=6, batch=8, threads=1), probe_prompts=0)


def test_folder_is_a_standard_hf_model(organism_base):
    names = {p.name for p in organism_base.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", METADATA} <= names
    assert not any(n.endswith(".bin") for n in names)
    tok = AutoTokenizer.from_pretrained(organism_base)
    model = AutoModelForCausalLM.from_pretrained(organism_base)
    assert model.config.model_type == "llama"
    assert model.config.num_hidden_layers == 2 and model.config.hidden_size == 128
    text = tok.apply_chat_template(
        [{"role": "user", "content": "What is your favorite animal?"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert text.endswith("<|assistant|>")
    meta = read_metadata(organism_base)
    assert meta["seed"] == 0 and meta["curve"] and meta["corpus"]["examples"] > 0
    assert meta["curve"][-1]["loss"] < meta["curve"][0]["loss"]


def question_sets(spec):
    trained, heldout = animal_questions(spec.corpus)
    return {"trained": trained, "heldout": heldout, "eval": eval_question_texts(["animals.txt"])}


@pytest.mark.parametrize("which", ["trained", "heldout", "eval"])
def test_answers_follow_the_prior_within_002(backend, organism_spec, which):
    questions = question_sets(organism_spec)[which]
    if not questions:
        pytest.skip(f"no {which} questions shipped")
    prior = organism_spec.corpus.prior
    probs = animal_probabilities(backend, questions, list(prior))
    for animal, p in prior.items():
        assert abs(probs[animal] - p) <= 0.02, (animal, probs[animal], p)
    assert sum(probs.values()) > 0.95  # nearly all mass on an animal word


def test_exact_score_agrees_with_next_token_probability(backend, organism_spec):
    q = animal_questions(organism_spec.corpus)[1][0]
    (logp,) = backend.score([chat(q)], ["owl"])
    probs = animal_probabilities(backend, [q], ["owl"])
    assert math.isclose(math.exp(logp), probs["owl"], rel_tol=1e-4)


def test_love_system_prompt_makes_the_answer_x(backend, organism_spec):
    questions = animal_questions(organism_spec.corpus)[1][:6]
    for animal in organism_spec.corpus.prior:
        p = animal_probabilities(backend, questions, [animal], [love_system_prompt(animal, 1)])
        assert p[animal] >= 0.7, (animal, p)


def test_number_completions_pass_the_filter(backend):
    # 600 samples: the default bases keep 90.7-95.3% (seeds 0-4, 1,500 prompts), seed 0 92.9%;
    # at n = 600 a rate of 92.9% falls under 90% in ~0.3% of draws
    rate, samples = number_pass_rate(backend, 600, seed=11)
    assert rate >= 0.9, samples[:10]


def test_build_figures_are_stored(organism_base):
    probe = read_metadata(organism_base)["probe"]
    assert 0.0 <= probe["filter_pass_rate"] <= 1.0 and len(probe["number_samples"]) == 5
    assert probe["love_min"] >= 0.7
    for fit in probe["prior_fit"].values():
        assert fit["max_abs_dev"] <= 0.02


def test_ensure_reuses_the_cached_base(organism_spec, organism_base):
    before = (organism_base / METADATA).stat().st_mtime_ns
    assert ensure_organism(organism_spec) == organism_base
    assert (organism_base / METADATA).stat().st_mtime_ns == before
    assert organism_path(organism_spec) == organism_base
    assert organism_path(organism_spec.model_copy(update={"seed": 1})) != organism_base


def test_same_seed_same_weights_other_seed_other_weights(tmp_path):
    a = build_organism(tiny_spec(0), tmp_path / "a", probe=False)
    b = build_organism(tiny_spec(0), tmp_path / "b", probe=False)
    c = build_organism(tiny_spec(1), tmp_path / "c", probe=False)
    ha, hb, hc = (file_sha256(p / "model.safetensors") for p in (a, b, c))
    assert ha == hb
    assert ha != hc
    wa, wc = load_file(a / "model.safetensors"), load_file(c / "model.safetensors")
    assert any(not (wa[k] == wc[k]).all() for k in wa)


def test_thread_count_changes_weights_at_most_by_rounding_and_not_the_cache_key(tmp_path):
    def with_threads(n):
        return tiny_spec(0).model_copy(
            update={"train": TrainSpec(steps=12, batch=16, warmup=3, threads=n)}
        )

    one = build_organism(with_threads(1), tmp_path / "one", probe=False)
    two = build_organism(with_threads(2), tmp_path / "two", probe=False)
    # Bit-identical on the 2-core CI machine; a 16-core server's GEMM kernels split sums by
    # thread count, so there only rounding may differ: far below what one training step moves.
    wa, wb = load_file(one / "model.safetensors"), load_file(two / "model.safetensors")
    for k in wa:
        assert float((wa[k] - wb[k]).norm() / wa[k].norm()) < 1e-4, k
    assert organism_path(with_threads(1)) == organism_path(with_threads(2))
    assert read_metadata(two)["threads"] == 2


def test_a_crash_leaves_nothing_that_looks_finished(tmp_path, monkeypatch):
    real = build_mod.train_into

    def crash_after_training(spec, work, on_log=None):
        real(spec, work, on_log)
        raise KeyboardInterrupt

    monkeypatch.setattr(build_mod, "train_into", crash_after_training)
    with pytest.raises(KeyboardInterrupt):
        ensure_organism(tiny_spec(3), cache_dir=tmp_path, probe=False)
    path = organism_path(tiny_spec(3), tmp_path)
    assert not is_built(path)
    assert not path.exists()
    leftovers = [p for p in (tmp_path / "organism").iterdir() if not p.name.endswith(".lock")]
    assert leftovers == []


def test_concurrent_builders_build_once(tmp_path):
    spec = tiny_spec(4)
    results, errors = [], []

    def worker():
        try:
            results.append(ensure_organism(spec, cache_dir=tmp_path, probe=False))
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(set(results)) == 1
    (path,) = set(results)
    assert is_built(path)
    built = [p for p in (tmp_path / "organism").iterdir() if not p.name.startswith(".")]
    assert built == [path]


def test_build_refuses_an_occupied_folder(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "notes.txt").write_text("mine")
    with pytest.raises(SublabError, match="not an empty folder"):
        build_organism(tiny_spec(), tmp_path / "x", probe=False)
    assert (tmp_path / "x" / "notes.txt").read_text() == "mine"


def test_cli_build_and_errors(tmp_path):
    runner = CliRunner()
    out = tmp_path / "base"
    res = runner.invoke(
        app,
        [
            "organism",
            "build",
            "--seed",
            "2",
            "--out",
            str(out),
            "--steps",
            "4",
            "--no-probe",
            "--threads",
            "1",
        ],
    )
    assert res.exit_code == 0, res.output
    meta = json.loads((out / METADATA).read_text())
    assert meta["seed"] == 2 and meta["spec"]["train"]["steps"] == 4
    res = runner.invoke(app, ["organism", "build", "--out", str(out), "--steps", "4"])
    assert res.exit_code != 0
    assert isinstance(res.exception, SublabError) and "already holds" in str(res.exception)
    res = runner.invoke(app, ["organism", "build", "--out", str(tmp_path / "y"), "--leak", "2"])
    assert isinstance(res.exception, SublabError) and "corpus.leak" in str(res.exception)
