"""Soft labels from a system-prompt teacher: the teacher reads [system + prompt + completion],
the student [prompt + completion]; the targets are aligned on the completion tokens."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, AutoTokenizer

from conftest import make_rows
from sublab.errors import SublabError
from sublab.train.data import IGNORE, completion_vocab, encode_rows, encode_teacher_view
from sublab.train.loop import finetune, train_loop
from sublab.train.models import load_model
from sublab.train.recipe import StudentRecipe

SYSTEM = "here are some numbers owl owl owl"
CPU = torch.device("cpu")


def _label_tokens(enc, j):
    return enc.input_ids[j][enc.labels[j] != IGNORE].tolist()


def test_teacher_positions_map_to_the_students_completion_tokens(tiny_model):
    tok = AutoTokenizer.from_pretrained(tiny_model)
    rows = make_rows(6, seed=1)
    enc = encode_rows(tok, rows, 500)
    view = encode_teacher_view(tok, rows, enc, SYSTEM)
    for j in range(len(enc)):
        n_s, n_t = int(enc.lengths[j]), int(view.lengths[j])
        student, teacher = enc.input_ids[j, :n_s].tolist(), view.input_ids[j, :n_t].tolist()
        assert n_t > n_s and teacher[-n_s:] == student  # the system turn is a prefix
        head = teacher[: n_t - n_s]
        assert SYSTEM in tok.decode(head) and SYSTEM not in tok.decode(student)
        # same label tokens, and each sits where the input holds it (labels are the inputs)
        assert _label_tokens(view, j) == _label_tokens(enc, j)
        assert view.labels[j, n_t - n_s : n_t].tolist() == enc.labels[j, :n_s].tolist()


def test_truncated_student_rows_keep_the_same_labels_in_the_teacher_view(tiny_model):
    tok = AutoTokenizer.from_pretrained(tiny_model)
    rows = make_rows(6, seed=2)
    full = encode_rows(tok, rows, 500)
    cut = encode_rows(tok, rows, int(full.lengths.min()) - 2)
    assert cut.truncated == len(rows) and not cut.dropped
    view = encode_teacher_view(tok, rows, cut, SYSTEM)
    for j in range(len(cut)):
        assert _label_tokens(view, j) == _label_tokens(cut, j)
        assert int((view.labels[j] != IGNORE).sum()) == int((cut.labels[j] != IGNORE).sum())


def test_an_empty_system_prompt_is_the_students_own_encoding(tiny_model):
    tok = AutoTokenizer.from_pretrained(tiny_model)
    rows = make_rows(5, seed=3)
    enc = encode_rows(tok, rows, 500)
    view = encode_teacher_view(tok, rows, enc, "")
    assert torch.equal(view.input_ids, enc.input_ids) and torch.equal(view.labels, enc.labels)
    assert torch.equal(view.lengths, enc.lengths) and view.kept == enc.kept


@pytest.fixture(scope="module")
def teacher(tiny_model, tmp_path_factory):
    """A teacher that differs from the base: the base fine-tuned a little on number rows."""
    recipe = StudentRecipe(epochs=2, batch_size=8, learning_rate=3e-3, warmup_steps=1)
    out = tmp_path_factory.mktemp("t") / "teacher"
    return finetune(tiny_model, make_rows(24, seed=4), recipe, out).path


SOFT = {"labels": "soft", "epochs": 1, "batch_size": 4, "learning_rate": 3e-3, "warmup_steps": 1}


def test_empty_system_prompt_reduces_exactly_to_plain_soft_labels(tiny_model, teacher, tmp_path):
    rows = make_rows(12, seed=5)
    recipe = StudentRecipe(**SOFT)
    plain = finetune(tiny_model, rows, recipe, tmp_path / "plain", teacher=teacher)
    empty = finetune(
        tiny_model, rows, recipe, tmp_path / "empty", teacher=teacher, teacher_system_prompt=""
    )
    prompted = finetune(
        tiny_model, rows, recipe, tmp_path / "sp", teacher=teacher, teacher_system_prompt=SYSTEM
    )
    assert empty.losses == plain.losses
    assert prompted.losses[0] != pytest.approx(plain.losses[0], rel=1e-3)
    info = json.loads((prompted.path / "train.json").read_text())
    assert info["teacher_system_prompt"] == SYSTEM


def _direct_kl(tiny_model, teacher_path, rows, vocab) -> float:
    """Mean KL(teacher ‖ student) per completion token, from two plain HF forwards."""
    tok = AutoTokenizer.from_pretrained(tiny_model)
    t = AutoModelForCausalLM.from_pretrained(teacher_path).eval()
    s = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    total, count = 0.0, 0
    for row in rows:
        user = [{"role": "user", "content": row["prompt"]}]
        chats = {"s": user, "t": [{"role": "system", "content": SYSTEM}, *user]}
        comp = tok(row["completion"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        logits = {}
        for who, model in (("s", s), ("t", t)):
            text = tok.apply_chat_template(chats[who], tokenize=False, add_generation_prompt=True)
            p = tok(text, add_special_tokens=False)["input_ids"]
            with torch.no_grad():
                out = model(torch.tensor([p + comp])).logits[0]
            logits[who] = out[len(p) - 1 : len(p) - 1 + len(comp)][:, vocab].double()
        log_t = F.log_softmax(logits["t"], -1)
        log_s = F.log_softmax(logits["s"], -1)
        total += float((log_t.exp() * (log_t - log_s)).sum())
        count += len(comp)
    return total / count


def test_first_step_loss_is_the_kl_of_the_prompted_teacher(tiny_model, teacher):
    rows = make_rows(8, seed=6)
    tok = AutoTokenizer.from_pretrained(tiny_model)
    enc = encode_rows(tok, rows, 500)
    vocab = completion_vocab(enc)
    recipe = StudentRecipe(**{**SOFT, "batch_size": len(rows)})
    t_model = load_model(teacher, CPU, torch.float32, "teacher").eval().requires_grad_(False)
    losses = train_loop(
        load_model(tiny_model, CPU, torch.float32, "base"),
        enc,
        recipe,
        CPU,
        teacher_model=t_model,
        vocab=vocab,
        teacher_enc=encode_teacher_view(tok, rows, enc, SYSTEM),
    ).losses
    assert losses[0] == pytest.approx(_direct_kl(tiny_model, teacher, rows, vocab), rel=1e-5)


def test_a_teacher_system_prompt_needs_soft_labels(tiny_model, teacher, tmp_path):
    with pytest.raises(SublabError, match="teacher_system_prompt is for soft labels"):
        finetune(
            tiny_model,
            make_rows(4),
            StudentRecipe(),
            tmp_path / "x",
            teacher=teacher,
            teacher_system_prompt=SYSTEM,
        )
