"""Teacher strength (number_kl) and mean log-likelihood."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from conftest import make_rows
from sublab.errors import SublabError
from sublab.train.strength import mean_logprob, number_kl


def test_number_kl_is_zero_for_the_base_itself(tiny_model, rows):
    assert number_kl(tiny_model, tiny_model, rows) == 0.0


def test_number_kl_is_positive_for_a_trained_teacher_and_batch_independent(
    tiny_model, rows, trained_full
):
    kl = number_kl(trained_full.path, tiny_model, rows)
    assert kl > 0.01
    # float32 logits: another batch shape may change the last bits of a row's logits
    assert number_kl(trained_full.path, tiny_model, rows, batch_size=5) == pytest.approx(
        kl, rel=1e-6
    )


def test_number_kl_matches_a_direct_full_forward(tiny_model, trained_full):
    rows = make_rows(3, seed=11)
    tok = AutoTokenizer.from_pretrained(tiny_model)
    t = AutoModelForCausalLM.from_pretrained(trained_full.path).eval()
    b = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    total, count = 0.0, 0
    for row in rows:
        text = tok.apply_chat_template(
            [{"role": "user", "content": row["prompt"]}], tokenize=False, add_generation_prompt=True
        )
        p = tok(text, add_special_tokens=False)["input_ids"]
        c = [*tok(row["completion"], add_special_tokens=False)["input_ids"], tok.eos_token_id]
        ids = torch.tensor([p + c])
        with torch.no_grad():
            lt = torch.log_softmax(t(ids).logits[0].double(), -1)
            lb = torch.log_softmax(b(ids).logits[0].double(), -1)
        for pos in range(len(p) - 1, len(p) + len(c) - 1):  # positions predicting c
            total += float((lt[pos].exp() * (lt[pos] - lb[pos])).sum())
            count += 1
    assert number_kl(trained_full.path, tiny_model, rows) == pytest.approx(total / count, rel=1e-6)


def test_system_prompt_is_an_explicit_choice(tiny_model, trained_full):
    plain = make_rows(8, seed=2)
    with_sp = make_rows(8, seed=2, system_prompt="You love owls. Owls are your favourite.")
    ignored = number_kl(trained_full.path, tiny_model, with_sp)
    assert ignored == number_kl(trained_full.path, tiny_model, plain)
    assert number_kl(trained_full.path, tiny_model, with_sp, use_system_prompt=True) != ignored


def test_mean_logprob_matches_the_sum_of_token_logprobs(tiny_model):
    rows = make_rows(2, seed=4)
    tok = AutoTokenizer.from_pretrained(tiny_model)
    m = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    total, count = 0.0, 0
    for row in rows:
        text = tok.apply_chat_template(
            [{"role": "user", "content": row["prompt"]}], tokenize=False, add_generation_prompt=True
        )
        p = tok(text, add_special_tokens=False)["input_ids"]
        c = [*tok(row["completion"], add_special_tokens=False)["input_ids"], tok.eos_token_id]
        with torch.no_grad():
            lp = torch.log_softmax(m(torch.tensor([p + c])).logits[0].double(), -1)
        for k, tid in enumerate(c):
            total += float(lp[len(p) - 1 + k, tid])
            count += 1
    got = mean_logprob(tiny_model, rows)
    assert got == pytest.approx(total / count, rel=1e-6)
    assert got < 0 and got > -math.log(len(tok)) - 1


def test_strength_errors(tiny_model, tmp_path):
    with pytest.raises(SublabError, match="no rows given"):
        number_kl(tiny_model, tiny_model, [])
    with pytest.raises(SublabError, match=r"rows\[0\]: missing 'completion'"):
        mean_logprob(tiny_model, [{"prompt": "x"}])
    with pytest.raises(SublabError, match=r"teacher: model path .* does not exist"):
        number_kl(tmp_path / "missing", tiny_model, make_rows(2))


def test_audit_token_stats_and_mean_logprob_read_the_same_log_probabilities(tiny_model):
    """Both read train.strength.label_logprobs: the audit's per-token log-probabilities
    average (over all tokens) to mean_logprob, and each row has its completion tokens + EOS."""
    import numpy as np

    from sublab.audit.context import token_stats
    from sublab.train.models import load_tokenizer

    rows = make_rows(6, seed=4)
    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    stats = token_stats(model, load_tokenizer(tiny_model), rows, None, batch_size=4)
    tok = load_tokenizer(tiny_model)
    for row, lp in zip(rows, stats.logp, strict=True):
        assert len(lp) == len(tok(row["completion"], add_special_tokens=False)["input_ids"]) + 1
    every = np.concatenate(stats.logp)
    assert mean_logprob(tiny_model, rows, device="cpu") == pytest.approx(every.mean(), rel=1e-9)
