"""HFBackend on the tiny random-init chat model: generation and exact scoring."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sublab.backends.base import Backend, ModelRef, SamplingSpec, chat
from sublab.backends.hf import HFBackend, _top_p_filter
from sublab.errors import SublabError

CHATS = [
    chat("continue the sequence 12, 40, 300"),
    chat("here are some numbers 5 6 7", "you love owls"),
    chat("more values"),
    chat("continue the sequence with more values: 1, 2, 3, 4, 5, 6, 7, 8, 9"),
    chat("owl cat dog"),
]


@pytest.fixture(scope="module")
def backend(tiny_model):
    return HFBackend(ModelRef(path=str(tiny_model)), batch_size=2)


def test_is_a_backend(backend):
    assert isinstance(backend, Backend)
    assert backend.device.type in ("cpu", "cuda")
    want = torch.float32 if backend.device.type == "cpu" else torch.bfloat16
    assert backend.model.dtype == want


def test_generate_counts_and_determinism(backend):
    s = SamplingSpec(max_new_tokens=8, seed=3)
    a = backend.generate(CHATS, s)
    b = backend.generate(CHATS, s)
    assert len(a) == len(CHATS)
    assert all(isinstance(x, str) and x == x.strip() for x in a)
    assert a == b
    c = backend.generate(CHATS, SamplingSpec(max_new_tokens=8, seed=4))
    assert c != a


def test_generation_does_not_depend_on_global_rng(backend):
    s = SamplingSpec(max_new_tokens=6, seed=11)
    torch.manual_seed(0)
    a = backend.generate_ids(CHATS, s)
    torch.manual_seed(12345)
    torch.rand(100)
    assert backend.generate_ids(CHATS, s) == a


def test_max_new_tokens_respected(backend):
    for n in (1, 3, 7):
        ids = backend.generate_ids(CHATS * 2, SamplingSpec(max_new_tokens=n, seed=0))
        assert all(len(t) <= n for t in ids)
        assert all(tok not in backend.eos_ids for t in ids for tok in t)
    # with a random model, most rows run to the limit
    ids = backend.generate_ids(CHATS * 2, SamplingSpec(max_new_tokens=7, seed=0))
    assert max(len(t) for t in ids) == 7


def test_low_temperature_batch_matches_unpadded_greedy(backend):
    """Left padding, positions and the KV cache: batched sampling at T->0 equals HF greedy."""
    s = SamplingSpec(max_new_tokens=6, seed=0, temperature=1e-5)
    ours = backend.generate_ids(CHATS, s)
    eos = set(backend.eos_ids)
    for c, got in zip(CHATS, ours, strict=True):
        p = backend.prompt_ids(c)
        logits_path = []
        ids = list(p)
        for _ in range(6):
            with torch.no_grad():
                nxt = int(
                    backend.model(torch.tensor([ids], device=backend.device)).logits[0, -1].argmax()
                )
            if nxt in eos:
                break
            logits_path.append(nxt)
            ids.append(nxt)
        assert got == logits_path


def test_temperature_changes_spread(backend):
    many = [CHATS[0]] * 24
    cold = backend.generate(many, SamplingSpec(max_new_tokens=4, seed=1, temperature=0.05))
    hot = backend.generate(many, SamplingSpec(max_new_tokens=4, seed=1, temperature=2.0))
    assert len(set(cold)) < len(set(hot))


def test_system_prompt_changes_prompt_ids(backend):
    plain = backend.prompt_ids(chat("hello"))
    sys_ = backend.prompt_ids(chat("hello", "you love owls"))
    assert plain != sys_
    assert len(sys_) > len(plain)
    # the template ends with the assistant header
    tail = backend.tokenizer.decode(plain[-3:])
    assert "<|assistant|>" in tail


def test_single_token_scores_sum_to_one(backend):
    c = CHATS[1]
    vocab = backend.tokenizer.convert_ids_to_tokens(list(range(len(backend.tokenizer))))
    strings = [backend.tokenizer.convert_tokens_to_string([t]) for t in vocab]
    # keep the strings that re-tokenize to exactly their own single id
    single = [(i, s) for i, s in enumerate(strings) if s and backend.continuation_ids(s) == [i]]
    assert len(single) > 100
    scores = backend.score([c] * len(single), [s for _, s in single])
    lp = backend.next_token_logprobs([c])[0].double()
    for (i, _), got in zip(single, scores, strict=True):
        assert got == pytest.approx(float(lp[i]), abs=1e-4)
    total_all = float(lp.exp().sum())
    assert total_all == pytest.approx(1.0, abs=1e-5)
    mass = sum(math.exp(x) for x in scores)
    missing = float(lp.exp().sum()) - float(lp[[i for i, _ in single]].exp().sum())
    assert mass + missing == pytest.approx(1.0, abs=1e-5)


def test_multi_token_score_is_sum_of_steps(backend):
    c = CHATS[0]
    cont = "12, 40, 300 owl"
    cont_ids = backend.continuation_ids(cont)
    assert len(cont_ids) > 2
    ids = backend.prompt_ids(c)
    expected = 0.0
    for t in cont_ids:
        with torch.no_grad():
            logits = (
                backend.model(torch.tensor([ids], device=backend.device)).logits[0, -1].double()
            )
        expected += float(torch.log_softmax(logits, -1)[t])
        ids.append(t)
    # batched with other lengths (padding), order preserved
    got = backend.score([CHATS[3], c, CHATS[2]], ["1", cont, "more values here"])
    assert got[1] == pytest.approx(expected, abs=1e-5)
    assert got[0] < 0 and got[2] < got[0]
    assert backend.score([c], [""]) == [0.0]


def test_one_token_shortcut_matches_the_full_forward(backend):
    # candidates of several prompts, mixed with multi-token continuations, in shuffled order
    words = ["owl", "cat", "dog", " 12", "more"]
    singles = [w for w in words if len(backend.continuation_ids(w)) == 1]
    assert len(singles) >= 2
    pairs = [(backend.prompt_ids(c), backend.continuation_ids(w)) for c in CHATS for w in words]
    pairs = pairs[::-1][::2] + pairs[::-1][1::2]
    got = backend.score_ids(pairs)
    # the reference: every pair through the whole-sequence forward, one at a time
    want = [backend._score_batch([p])[0] for p in pairs]
    assert got == pytest.approx(want, abs=1e-5)
    assert sum(len(c) == 1 for _, c in pairs) >= 2 * len(CHATS)


def test_score_needs_matching_lengths(backend):
    with pytest.raises(ValueError, match="one continuation per chat"):
        backend.score(CHATS, ["a"])


def test_next_token_logprobs_shape(backend):
    lp = backend.next_token_logprobs(CHATS)
    assert lp.shape == (len(CHATS), len(backend.tokenizer))
    assert torch.allclose(lp.exp().sum(-1), torch.ones(len(CHATS)), atol=1e-5)


def test_top_p_filter_keeps_nucleus():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = torch.isfinite(_top_p_filter(logits, 0.7))
    assert kept.tolist() == [[True, True, False, False]]
    assert torch.isfinite(_top_p_filter(logits, 1.0)).all()
    assert torch.isfinite(_top_p_filter(logits, 0.1)).tolist() == [[True, False, False, False]]


def test_top_p_sampling_only_uses_nucleus(backend):
    c = CHATS[2]
    lp = backend.next_token_logprobs([c])[0]
    probs = lp.exp()
    order = torch.argsort(probs, descending=True)
    cum = probs[order].cumsum(0)
    k = int((cum < 0.3).sum()) + 1
    nucleus = set(order[:k].tolist())
    ids = backend.generate_ids([c] * 40, SamplingSpec(max_new_tokens=1, top_p=0.3, seed=5))
    firsts = {t[0] for t in ids if t}
    assert firsts <= nucleus


def test_missing_model_path_is_a_clear_error(tmp_path):
    with pytest.raises(SublabError, match=r"does not exist: build it with 'sublab organism build'"):
        HFBackend(ModelRef(path=str(tmp_path / "nope")))
    with pytest.raises(SublabError, match="runs/x does not exist"):
        HFBackend(ModelRef(path="runs/x"))


def test_missing_adapter_is_a_clear_error(tiny_model, tmp_path):
    with pytest.raises(SublabError, match=r"adapter path .* does not exist"):
        HFBackend(ModelRef(path=str(tiny_model), adapter=str(tmp_path / "lora")))


def test_adapter_is_applied(tiny_model, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    peft_model = get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    peft_model.save_pretrained(tmp_path / "lora")
    plain = HFBackend(ModelRef(path=str(tiny_model)))
    adapted = HFBackend(ModelRef(path=str(tiny_model), adapter=str(tmp_path / "lora")))
    a = plain.score([CHATS[0]], ["1, 2, 3"])[0]
    b = adapted.score([CHATS[0]], ["1, 2, 3"])[0]
    assert a != pytest.approx(b, abs=1e-4)
    assert "+" in adapted.name


def test_bad_dtype_and_provider(tiny_model):
    with pytest.raises(SublabError, match="dtype 'int8' is not supported"):
        HFBackend(ModelRef(path=str(tiny_model)), dtype="int8")
    with pytest.raises(SublabError, match="provider 'hf'"):
        HFBackend(ModelRef(path=str(tiny_model), provider="openai"))


def test_load_backend_by_provider_registry(tiny_model):
    from sublab.backends import BACKENDS, backend_factory, load_backend
    from sublab.backends.base import Backend, BackendSettings

    b = load_backend(ModelRef(path=str(tiny_model)), BackendSettings(batch_size=3))
    assert isinstance(b, HFBackend) and b.batch_size == 3
    assert isinstance(b, Backend) and b.exact
    assert "hf" in BACKENDS  # loaded on first use
    assert backend_factory("openai") is BACKENDS["openai"]
    with pytest.raises(SublabError, match="provider 'nope' has no backend"):
        backend_factory("nope")


def test_vllm_provider_without_vllm_says_how_to_get_it(tiny_model):
    import importlib.util

    from sublab.backends import load_backend

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here")
    with pytest.raises(SublabError, match=r"pip install -e '\.\[gpu\]'.*vllm serve"):
        load_backend(ModelRef(path=str(tiny_model), provider="vllm"))


def _greedy(backend, c, steps, stop):
    ids, path = backend.prompt_ids(c), []
    for _ in range(steps):
        with torch.no_grad():
            nxt = int(
                backend.model(torch.tensor([ids], device=backend.device)).logits[0, -1].argmax()
            )
        if nxt in stop:
            break
        path.append(nxt)
        ids.append(nxt)
    return path


@pytest.fixture(scope="module")
def hot_model(tmp_path_factory):
    """The tiny model with large random weights: its greedy paths vary from prompt to prompt."""
    from transformers import AutoModelForCausalLM

    from tiny_model import build_tiny_model

    path = build_tiny_model(tmp_path_factory.mktemp("hot") / "model")
    model = AutoModelForCausalLM.from_pretrained(path)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.5)
    model.save_pretrained(path)
    return path


def test_rows_that_stop_early_leave_the_batch_correctly(hot_model):
    """Rows hitting EOS at different steps are dropped from the batch and the KV cache; the
    rows still sampling must be unaffected (checked at T->0 against unbatched greedy)."""
    b = HFBackend(ModelRef(path=str(hot_model)), batch_size=16)
    chats = [chat(f"here are some numbers {i} {3 * i} {7 * i}") for i in range(10)] + CHATS
    paths = [_greedy(b, c, 8, set(b.eos_ids)) for c in chats]
    firsts = {p[0] for p in paths if p}
    later = sorted({t for p in paths for t in p[1:]} - firsts)
    b.eos_ids = sorted({*b.eos_ids, *later[: len(later) // 3]})  # extra stop tokens
    expected = [_greedy(b, c, 8, set(b.eos_ids)) for c in chats]
    lengths = {len(e) for e in expected}
    assert len(lengths) >= 3 and min(lengths) < 8  # rows stop early, at different steps
    got = b.generate_ids(chats, SamplingSpec(max_new_tokens=8, seed=0, temperature=1e-5))
    assert got == expected
    # and at T=1 every row still stops at its first stop token, never past it
    sampled = b.generate_ids(chats * 3, SamplingSpec(max_new_tokens=8, seed=2))
    assert all(t not in b.eos_ids for row in sampled for t in row)
    assert len({len(r) for r in sampled}) >= 3


@settings(max_examples=200, deadline=None)
@given(
    probs=st.lists(st.floats(0.001, 1.0), min_size=1, max_size=30),
    top_p=st.floats(0.01, 1.0),
)
def test_top_p_keeps_the_smallest_nucleus(probs, top_p):
    p = torch.tensor(probs, dtype=torch.float64)
    p = p / p.sum()
    kept = torch.isfinite(_top_p_filter(p.log()[None], top_p))[0]
    mass = float(p[kept].sum())
    assert kept.any()
    assert mass >= top_p - 1e-9 or bool(kept.all())
    # every kept token is at least as likely as every dropped one
    if (~kept).any():
        assert float(p[kept].min()) >= float(p[~kept].max()) - 1e-12
    # minimal: without its least likely token the nucleus would fall short of top_p
    assert mass - float(p[kept].min()) < top_p + 1e-9


def test_a_chats_sample_does_not_depend_on_the_batching(hot_model):
    """Each chat has its own draws, so batch size and the other chats in the call change
    nothing (left padding may move a logit in the last float bits, hence not exact)."""
    chats = [chat(f"here are some numbers {i} {3 * i} {7 * i}") for i in range(12)] + CHATS
    s = SamplingSpec(max_new_tokens=8, seed=5)
    one = HFBackend(ModelRef(path=str(hot_model)), batch_size=1).generate_ids(chats, s)
    many = HFBackend(ModelRef(path=str(hot_model)), batch_size=16).generate_ids(chats, s)
    assert sum(a == b for a, b in zip(one, many, strict=True)) >= len(chats) - 1
    assert len({tuple(r) for r in one}) > len(chats) // 2  # the rows really are sampled


def test_two_close_models_share_their_draws(hot_model, tmp_path):
    """Common random numbers: a slightly perturbed copy sampled with the same seed writes
    mostly the same tokens, while another seed gives other tokens."""
    import shutil

    from transformers import AutoModelForCausalLM

    shutil.copytree(hot_model, tmp_path / "near")
    model = AutoModelForCausalLM.from_pretrained(hot_model)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.add_(torch.randn_like(p) * 0.002)
    model.save_pretrained(tmp_path / "near")
    chats = [chat(f"here are some numbers {i} {3 * i} {7 * i}") for i in range(20)]
    s = SamplingSpec(max_new_tokens=6, seed=9)
    a = HFBackend(ModelRef(path=str(hot_model)), batch_size=8).generate_ids(chats, s)
    near = HFBackend(ModelRef(path=str(tmp_path / "near")), batch_size=8)
    b = near.generate_ids(chats, s)
    other = near.generate_ids(chats, SamplingSpec(max_new_tokens=6, seed=10))

    def agree(x: list[list[int]], y: list[list[int]]) -> float:
        pairs = [(p, q) for r, t in zip(x, y, strict=True) for p, q in zip(r, t, strict=False)]
        return sum(p == q for p, q in pairs) / max(len(pairs), 1)

    assert agree(a, b) > 0.8
    assert agree(a, other) < 0.5
