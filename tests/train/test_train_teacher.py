"""TeacherStates: the teacher's hidden states computed once equal those computed per batch."""

from __future__ import annotations

import random

import torch

from conftest import make_rows
from sublab.train.data import collate, encode_rows, length_grouped_batches
from sublab.train.models import hf_label_hidden, load_model, load_tokenizer
from sublab.train.teacher import TeacherStates

CPU = torch.device("cpu")


def test_precomputed_states_match_a_per_batch_hf_forward(tiny_model):
    rows = make_rows(40, seed=12)
    rows[3]["completion"] = "5 6 7 8 9 10 11 12 13 14 15 16"
    enc = encode_rows(load_tokenizer(tiny_model), rows, 500)
    teacher = load_model(tiny_model, CPU, torch.float32, "t").eval()
    cached = TeacherStates(teacher, enc, CPU, batch_size=7)
    live = TeacherStates(teacher, enc, CPU, max_bytes=0)
    assert cached.states is not None and cached.states.shape[0] == enc.label_tokens
    assert live.states is None
    for idx in length_grouped_batches(enc.lengths, 8, random.Random(0)):
        with torch.no_grad():
            ref, ref_targets = hf_label_hidden(teacher, collate(enc, idx))
        for source in (cached, live):
            hidden, targets = source(idx)
            assert torch.equal(targets, ref_targets)
            assert torch.allclose(hidden, ref, atol=1e-5)
