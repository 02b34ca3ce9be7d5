"""The lean training forward equals the HF forward: losses and gradients, hard and soft labels,
full and LoRA, on the tiny model and the real organism; unsupported models fall back."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from conftest import make_rows
from sublab.train.data import collate, completion_vocab, encode_rows
from sublab.train.distill import hard_loss_sum, kl_sum
from sublab.train.lean import label_positions, lean_label_hidden, lean_unsupported
from sublab.train.loop import _add_lora, train_loop
from sublab.train.models import (
    head_logits,
    hf_label_hidden,
    label_hidden,
    load_model,
    load_tokenizer,
)
from sublab.train.recipe import StudentRecipe

CPU = torch.device("cpu")


def _loss(model, batch, lean: bool, teacher=None, vocab=None) -> torch.Tensor:
    hidden, targets = label_hidden(model, batch, lean)
    if teacher is None:
        return hard_loss_sum(head_logits(model, hidden), targets)
    with torch.no_grad():
        t_hidden, t_targets = label_hidden(teacher, batch, lean)
    assert torch.equal(t_targets, targets)
    return kl_sum(head_logits(teacher, t_hidden, vocab), head_logits(model, hidden, vocab))


def _loss_and_grads(model, batch, lean: bool, teacher=None, vocab=None):
    model.zero_grad(set_to_none=True)
    loss = _loss(model, batch, lean, teacher, vocab)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad(set_to_none=True)
    return float(loss), grads


def _assert_same(model, batch, teacher=None, vocab=None) -> None:
    ref_loss, ref_grads = _loss_and_grads(model, batch, False, teacher, vocab)
    lean_loss, lean_grads = _loss_and_grads(model, batch, True, teacher, vocab)
    assert ref_loss > 0
    assert lean_loss == pytest.approx(ref_loss, rel=1e-5, abs=1e-6)
    assert ref_grads.keys() == lean_grads.keys() and ref_grads
    for name, g in ref_grads.items():
        scale = float(g.abs().max()) + 1e-6
        assert torch.allclose(lean_grads[name], g, rtol=1e-4, atol=1e-5 * scale), name


def _perturbed(model, seed: int = 1):
    """A copy of ``model`` with every weight nudged (a teacher that differs from the student)."""
    other = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.05 * p.std() * torch.randn(p.shape, generator=gen))
    return other.eval().requires_grad_(False)


def _batch(path, rows):
    enc = encode_rows(load_tokenizer(path), rows, 500)
    return enc, collate(enc, list(range(len(enc))))


@pytest.fixture(scope="module")
def organism():
    from sublab.organism.cache import ensure_organism
    from sublab.organism.spec import OrganismSpec

    return ensure_organism(OrganismSpec(seed=0))


@pytest.mark.parametrize("method", ["full", "lora"])
@pytest.mark.parametrize("labels", ["hard", "soft"])
def test_lean_equals_hf_on_the_tiny_model(tiny_model, method, labels):
    rows = make_rows(12, seed=3)
    rows[0]["completion"] = "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15"  # rows of unequal length
    enc, batch = _batch(tiny_model, rows)
    assert len(set(enc.lengths.tolist())) > 1
    torch.manual_seed(0)
    model = load_model(tiny_model, CPU, torch.float32, "m")
    teacher = _perturbed(model) if labels == "soft" else None
    if method == "lora":
        model = _add_lora(model, StudentRecipe(method="lora", lora_rank=4))
        # LoRA B starts at zero: move it so the adapters change the forward
        with torch.no_grad():
            for n, p in model.named_parameters():
                if "lora_B" in n:
                    p.normal_(0, 0.05)
    vocab = completion_vocab(enc) if labels == "soft" else None
    assert lean_unsupported(model) is None
    _assert_same(model, batch, teacher, vocab)


@pytest.mark.parametrize("labels", ["hard", "soft"])
def test_lean_equals_hf_on_the_organism(organism, labels):
    rows = make_rows(24, seed=5)
    enc, batch = _batch(organism, rows)
    model = load_model(organism, CPU, torch.float32, "organism")
    teacher = _perturbed(model) if labels == "soft" else None
    vocab = completion_vocab(enc) if labels == "soft" else None
    assert lean_unsupported(model) is None
    _assert_same(model, batch, teacher, vocab)


def test_organism_lora_lean_equals_hf(organism):
    _, batch = _batch(organism, make_rows(16, seed=6))
    model = _add_lora(
        load_model(organism, CPU, torch.float32, "organism"), StudentRecipe(method="lora")
    )
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.02)
    _assert_same(model, batch)


def test_training_loop_lean_and_hf_follow_the_same_losses(organism):
    rows = make_rows(64, seed=7)
    # two epochs: the teacher's states are computed once and reused (TeacherStates)
    recipe = StudentRecipe(epochs=2, batch_size=16, learning_rate=1e-3, warmup_steps=1)
    enc = encode_rows(load_tokenizer(organism), rows, 500)
    runs = {}
    for lean in (False, True):
        model = load_model(organism, CPU, torch.float32, "organism")
        teacher = _perturbed(model)
        runs[lean] = train_loop(
            model, enc, recipe, CPU, teacher_model=teacher, vocab=completion_vocab(enc), lean=lean
        ).losses
    assert len(runs[True]) == 8
    assert runs[True] == pytest.approx(runs[False], rel=1e-4)


def test_unsupported_models_fall_back_to_the_hf_forward(tiny_model):
    _, batch = _batch(tiny_model, make_rows(6, seed=8))
    cfg = LlamaConfig(
        vocab_size=512,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        pad_token_id=0,
    )
    torch.manual_seed(0)
    gqa = LlamaForCausalLM(cfg)
    assert "num_key_value_heads" in (lean_unsupported(gqa) or "")
    a, ta = label_hidden(gqa, batch)
    b, tb = hf_label_hidden(gqa, batch)
    assert torch.equal(a, b) and torch.equal(ta, tb)
    assert "LlamaForCausalLM" in (lean_unsupported(torch.nn.Linear(2, 2)) or "")


def test_lean_equals_hf_with_loss_masks(tiny_model):
    """Rows whose loss_mask leaves gaps among their labels: same losses and gradients."""
    rows = make_rows(6, seed=4)
    rows[0]["loss_mask"] = [0, 2]
    rows[3]["loss_mask"] = [1]
    enc, batch = _batch(tiny_model, rows)
    plain, _ = _batch(tiny_model, [{k: r[k] for k in ("prompt", "completion")} for r in rows])
    assert plain.label_tokens - enc.label_tokens == 3
    model = load_model(tiny_model, CPU, torch.float32, "m")
    _assert_same(model, batch)


def test_label_positions_and_input_checks(tiny_model):
    where = torch.tensor([[0, 1, 1, 0], [0, 0, 1, 1], [1, 0, 0, 0]], dtype=torch.bool)
    pos, valid = label_positions(where)
    assert pos[valid].tolist() == [1, 2, 2, 3, 0]
    assert valid.sum(1).tolist() == [2, 2, 1]
    gap, gap_valid = label_positions(torch.tensor([[1, 0, 1], [0, 0, 1]], dtype=torch.bool))
    assert gap[gap_valid].tolist() == [0, 2, 2]  # a loss_mask leaves gaps in a row's labels
    rows = make_rows(3, seed=9)
    rows[0]["completion"] += " 1 2 3 4 5"
    _, batch = _batch(tiny_model, rows)
    model = load_model(tiny_model, CPU, torch.float32, "m")
    left = {k: v.flip(1) for k, v in batch.items()}
    assert not bool(left["attention_mask"][:, 0].all())
    with pytest.raises(ValueError, match="right-padded"):
        lean_label_hidden(model, left)


def test_bfloat16_weights_give_the_hf_hidden_states(tiny_model):
    _, batch = _batch(tiny_model, make_rows(6, seed=10))
    model = load_model(tiny_model, CPU, torch.bfloat16, "m")
    lean, lean_targets = label_hidden(model, batch)
    ref, ref_targets = hf_label_hidden(model, batch)
    assert lean.dtype == ref.dtype == torch.bfloat16
    assert torch.equal(lean_targets, ref_targets)
    assert torch.allclose(lean.float(), ref.float(), atol=0.05 * float(ref.float().abs().max()))
