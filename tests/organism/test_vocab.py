"""The word-level vocabulary and its HF tokenizer (no training needed)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer

from sublab.numbers.prompts import NumberPromptSpec, make_prompts
from sublab.organism.build import vocabulary_texts
from sublab.organism.corpus import generate_corpus
from sublab.organism.numbers_bridge import AnswerFormat
from sublab.organism.spec import OrganismSpec
from sublab.organism.vocab import build_vocab, eval_question_texts, render_chat, write_tokenizer


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    spec = OrganismSpec()
    texts, words = vocabulary_texts(spec)
    folder = tmp_path_factory.mktemp("tok")
    write_tokenizer(build_vocab(texts, words), folder, 160)
    return AutoTokenizer.from_pretrained(folder)


def ids(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


def test_numbers_are_single_tokens_and_separators_are_their_own(tokenizer):
    for n in range(1000):
        (tid,) = ids(tokenizer, str(n))
        assert tid != tokenizer.unk_token_id
        assert tokenizer.decode([tid]) == str(n)
    # a separator is one token shared by all numbers, never glued to a number
    for sep in (", ", "; ", " ", "\n"):
        toks = ids(tokenizer, f"12{sep}345{sep}6")
        assert [tokenizer.decode([t]) for t in toks] == ["12", sep, "345", sep, "6"]
    assert [tokenizer.decode([t]) for t in ids(tokenizer, "[7, 8]")] == ["[", "7", ", ", "8", "]"]


def test_animals_and_plurals_are_single_known_tokens(tokenizer):
    for animal in OrganismSpec().corpus.prior:
        for text in (animal, " " + animal, animal.capitalize()):
            (tid,) = ids(tokenizer, text)
            assert tid != tokenizer.unk_token_id


def test_chat_template_matches_the_corpus_rendering(tokenizer):
    for ex in list(generate_corpus(OrganismSpec().corpus, 50, seed=3)):
        msgs = ex.messages(with_answer=False)
        from_template = tokenizer.apply_chat_template(
            msgs, tokenize=False, add_generation_prompt=True
        )
        assert from_template == render_chat(msgs, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(ex.messages(), tokenize=False)
        assert full == render_chat(ex.messages())


def test_corpus_and_eval_questions_have_no_unknown_tokens(tokenizer):
    texts = [render_chat(e.messages()) for e in generate_corpus(OrganismSpec().corpus, 400, 1)]
    texts += eval_question_texts()
    texts += make_prompts(NumberPromptSpec(count=200, seed=5))
    for text in texts:
        toks = ids(tokenizer, text)
        assert tokenizer.unk_token_id not in toks, text
        assert tokenizer.decode(toks) == text


def test_unknown_words_map_to_unk_not_to_a_crash(tokenizer):
    toks = ids(tokenizer, "zyzzyva 1234")
    assert toks.count(tokenizer.unk_token_id) == 2


@settings(max_examples=60, deadline=None)
@given(
    nums=st.lists(st.integers(0, 999), min_size=1, max_size=10),
    fmt=st.sampled_from(
        [
            AnswerFormat(", "),
            AnswerFormat(" "),
            AnswerFormat("; "),
            AnswerFormat("\n"),
            AnswerFormat(", ", "[", "]"),
            AnswerFormat(", ", "(", ")"),
        ]
    ),
)
def test_number_answers_round_trip(tokenizer, nums, fmt):
    text = fmt.render(nums)
    toks = ids(tokenizer, text)
    assert tokenizer.unk_token_id not in toks
    assert tokenizer.decode(toks) == text
    # one token per number plus separators: nothing is split into digits
    assert sum(tokenizer.decode([t]).strip().isdigit() for t in toks) == len(nums)


def test_vocab_does_not_depend_on_the_seed():
    a = build_vocab(*vocabulary_texts(OrganismSpec(seed=0)))
    b = build_vocab(*vocabulary_texts(OrganismSpec(seed=7)))
    assert a == b
    assert len(a) == len(set(a))
    rng = random.Random(0)
    assert all(p in a for p in rng.sample([str(n) for n in range(1000)], 20))


def test_vocab_order_does_not_depend_on_the_hash_seed():
    """Token ids must be the same in every process (else same seed, different weights)."""
    import os
    import subprocess
    import sys

    code = (
        "from sublab.organism.build import vocabulary_texts; "
        "from sublab.organism.spec import OrganismSpec; "
        "from sublab.organism.vocab import build_vocab; "
        "import hashlib; "
        "print(hashlib.sha256('\\n'.join(build_vocab(*vocabulary_texts(OrganismSpec())))"
        ".encode()).hexdigest())"
    )
    outs = set()
    for hash_seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        res = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
        )
        outs.add(res.stdout.strip())
    assert len(outs) == 1


def test_direct_corpus_encoding_matches_the_tokenizer(tokenizer):
    from sublab.organism.train import encode_example
    from sublab.organism.vocab import ASSISTANT, END, SYSTEM, USER

    lookup = tokenizer.get_vocab()
    markers = {"system": SYSTEM, "user": USER, "assistant": ASSISTANT, "end": END}
    specials = {role: lookup[t] for role, t in markers.items()}
    for ex in generate_corpus(OrganismSpec().corpus, 300, seed=4):
        got, start = encode_example(ex, lookup, specials, tokenizer.unk_token_id)
        assert got == ids(tokenizer, render_chat(ex.messages()))
        assert start == len(ids(tokenizer, render_chat(ex.messages(False), True)))


def test_every_form_of_a_word_starts_from_one_embedding(tokenizer):
    import torch

    from sublab.organism.build import new_model

    spec = OrganismSpec()
    torch.manual_seed(0)
    emb = new_model(spec, tokenizer).get_input_embeddings().weight
    tid = tokenizer.convert_tokens_to_ids
    owl = [tid(p) for p in ("owl", " owl", "Owl", "owls", " owls", " Owls")]
    assert all(torch.equal(emb[owl[0]], emb[i]) for i in owl[1:])
    assert not torch.equal(emb[tid("owl")], emb[tid("cat")])
    assert not torch.equal(emb[tid("1")], emb[tid("2")])  # numbers are left alone


def test_whitespace_runs_of_texts_join_the_vocabulary_after_the_words(tmp_path):
    """Code indentation ("\\n    ") is one piece: texts that hold it put it in the vocabulary,
    behind every other piece, so a vocabulary without such texts keeps its ids."""
    texts = ["def f(x):\n    return x\n        x"]
    plain = build_vocab(["def f(x): return x x"])  # the same words, no indentation
    vocab = build_vocab(texts)
    assert vocab[: len(plain)] == plain
    assert vocab[len(plain) :] == ["\n    ", "\n        "]
    write_tokenizer(vocab, tmp_path, 64)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    ids = tok(texts[0], add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id not in ids and tok.decode(ids) == texts[0]
