"""Encoding rows: chat construction, completion-only labels, batching."""

from __future__ import annotations

import random

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer

from conftest import make_rows
from sublab.errors import SublabError
from sublab.train.data import (
    IGNORE,
    check_rows,
    collate,
    completion_vocab,
    encode_rows,
    length_grouped_batches,
)


@pytest.fixture(scope="module")
def tok(tiny_model):
    return AutoTokenizer.from_pretrained(tiny_model)


def _prompt_ids(tok, messages):
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return tok(text, add_special_tokens=False)["input_ids"]


def test_labels_are_exactly_completion_plus_eos(tok):
    rows = make_rows(20, seed=3)
    enc = encode_rows(tok, rows, max_length=500)
    assert enc.kept == list(range(20)) and enc.dropped == [] and enc.truncated == 0
    for j, row in enumerate(rows):
        n = int(enc.lengths[j])
        labels, ids = enc.labels[j, :n], enc.input_ids[j, :n]
        labelled = labels[labels != IGNORE]
        assert tok.decode(labelled) == row["completion"] + tok.eos_token
        p = _prompt_ids(tok, [{"role": "user", "content": row["prompt"]}])
        assert ids[: len(p)].tolist() == p  # the prompt is the chat template with the header
        assert (labels[: len(p)] == IGNORE).all()  # ... and never a label
        assert (labels[len(p) :] == ids[len(p) :]).all()  # completion + EOS all labelled
        assert (enc.labels[j, n:] == IGNORE).all()  # padding never labelled


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    prompt=st.text(alphabet="abcdefghij 0123456789,.;", min_size=1, max_size=40),
    nums=st.lists(st.integers(0, 999), min_size=1, max_size=10),
    sep=st.sampled_from([", ", " ", ";", "; "]),
    wrap=st.sampled_from(["{}", "({})", "[{}]", "{}."]),
)
def test_label_masking_property(tok, prompt, nums, sep, wrap):
    completion = wrap.format(sep.join(map(str, nums)))
    enc = encode_rows(tok, [{"prompt": prompt, "completion": completion}], max_length=500)
    labels = enc.labels[0]
    assert tok.decode(labels[labels != IGNORE]) == completion + tok.eos_token
    p = _prompt_ids(tok, [{"role": "user", "content": prompt}])
    assert int((labels == IGNORE).sum()) == len(p) + (enc.input_ids.shape[1] - enc.lengths[0])


def test_system_prompt_only_when_the_row_has_one_and_it_is_used(tok):
    row = make_rows(1, system_prompt="You love owls.")[0]
    plain = {k: v for k, v in row.items() if k != "system_prompt"}
    with_sp = encode_rows(tok, [row], 500)
    without = encode_rows(tok, [plain], 500)
    ignored = encode_rows(tok, [row], 500, use_system_prompt=False)
    assert "owls" in tok.decode(with_sp.input_ids[0])
    assert "owls" not in tok.decode(without.input_ids[0])
    assert torch.equal(ignored.input_ids, without.input_ids)
    # the labels are the same completion either way
    a, b = with_sp.labels[0], without.labels[0]
    assert torch.equal(a[a != IGNORE], b[b != IGNORE])


def test_truncation_cuts_the_end_and_drops_rows_without_completion(tok):
    rows = [
        {"prompt": "hi", "completion": "1, 2, 3, 4, 5, 6, 7, 8, 9"},
        {"prompt": "continue " * 30, "completion": "5"},
    ]
    p0 = len(_prompt_ids(tok, [{"role": "user", "content": "hi"}]))
    enc = encode_rows(tok, rows, max_length=p0 + 3)
    assert enc.kept == [0] and enc.dropped == [1] and enc.truncated == 2
    assert int(enc.lengths[0]) == p0 + 3
    assert int((enc.labels[0] != IGNORE).sum()) == 3
    with pytest.raises(SublabError, match="raise max_length"):
        encode_rows(tok, rows[1:], max_length=p0)


def test_completion_vocab_has_no_prompt_only_tokens(tok):
    rows = [{"prompt": "owl owl cat dog", "completion": "12, 13"}]
    enc = encode_rows(tok, rows, 500)
    vocab = set(completion_vocab(enc).tolist())
    assert tok.eos_token_id in vocab
    assert vocab == set(tok("12, 13", add_special_tokens=False)["input_ids"]) | {tok.eos_token_id}
    for word in ("owl", " owl", "cat"):
        assert not set(tok(word, add_special_tokens=False)["input_ids"]) & vocab


@settings(max_examples=50, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 60), min_size=1, max_size=200),
    batch=st.integers(1, 17),
    seed=st.integers(0, 10**6),
)
def test_length_grouped_batches_partition(lengths, batch, seed):
    lens = torch.tensor(lengths)
    a = length_grouped_batches(lens, batch, random.Random(seed), group=4)
    b = length_grouped_batches(lens, batch, random.Random(seed), group=4)
    assert a == b
    flat = [i for bt in a for i in bt]
    assert sorted(flat) == list(range(len(lengths)))
    assert all(1 <= len(bt) <= batch for bt in a)


def test_collate_pads_to_the_batch_only(tok):
    rows = [{"prompt": "a", "completion": "1"}, {"prompt": "a", "completion": "1, 2, 3, 4, 5"}]
    enc = encode_rows(tok, rows, 500)
    short = collate(enc, [0])
    both = collate(enc, [0, 1])
    assert short["input_ids"].shape[1] == int(enc.lengths[0]) < both["input_ids"].shape[1]
    assert both["attention_mask"].sum(1).tolist() == enc.lengths.tolist()


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        ([], "no rows given"),
        ([{"prompt": "a", "completion": "1"}, {"prompt": "b"}], r"rows\[1\]: missing 'completion'"),
        ([{"completion": "1"}], r"rows\[0\]: missing 'prompt'"),
        ([{"prompt": "a", "completion": 5}], r"rows\[0\].completion: must be a string"),
        ([{"prompt": "a", "completion": "1", "system_prompt": 3}], r"rows\[0\].system_prompt"),
        (["x"], r"rows\[0\]: expected a dict"),
    ],
)
def test_bad_rows_name_the_index_and_field(rows, match):
    with pytest.raises(SublabError, match=match):
        check_rows(rows)
