"""finetune: hard labels, LoRA, soft labels, determinism, outputs and errors."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from conftest import FAST, make_rows
from sublab.errors import SublabError
from sublab.train.data import collate, completion_vocab, encode_rows
from sublab.train.distill import hard_loss_sum, kl_sum
from sublab.train.loop import _add_lora, finetune, train_loop
from sublab.train.models import head_logits, label_hidden, load_model
from sublab.train.recipe import StudentRecipe
from sublab.train.strength import mean_logprob
from tiny_model import build_tiny_model


def weights(folder):
    return load_file(str(folder / "model.safetensors"))


def same_weights(a, b):
    wa, wb = weights(a), weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_hard_labels_lower_the_loss_and_raise_logp(tiny_model, rows, trained_full):
    r = trained_full
    assert r.steps == 3 * 3 and len(r.losses) == r.steps
    assert r.losses[-1] < r.losses[0] - 0.3
    before, after = mean_logprob(tiny_model, rows), mean_logprob(r.path, rows)
    assert after > before + 0.3
    # held-out rows of the same kind also get likelier (it learned the format, not just rows)
    held = make_rows(16, seed=99)
    assert mean_logprob(r.path, held) > mean_logprob(tiny_model, held)


def test_output_folder_is_a_standard_hf_model_with_train_json(tiny_model, rows, trained_full):
    out = trained_full.path
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    info = json.loads((out / "train.json").read_text())
    assert info["rows_used"] == len(rows) == info["rows_given"]
    assert info["row_indices"] == list(range(len(rows)))
    assert info["recipe"]["method"] == "full" and info["seed"] == 0
    assert len(info["loss"]) == info["steps"] == len(info["learning_rate"])
    assert info["loss"] == trained_full.losses
    assert info["tokens_per_s"] > 0 and info["seconds"] > 0
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.dtype == torch.float32
    assert AutoTokenizer.from_pretrained(out).chat_template is not None
    assert not same_weights(out, tiny_model)


def test_two_runs_give_identical_weights(tiny_model, rows, trained_full, tmp_path):
    again = finetune(tiny_model, rows, StudentRecipe(**FAST), tmp_path / "again")
    assert same_weights(again.path, trained_full.path)
    assert again.losses == trained_full.losses
    other = finetune(tiny_model, rows, StudentRecipe(**FAST, seed=1), tmp_path / "other")
    assert not same_weights(other.path, trained_full.path)


def test_grad_accum_matches_one_big_batch(tiny_model, rows, tmp_path):
    # 1 × 16 vs 4 × 4 on the same (length-grouped) order: same token-mean loss per step
    # is not guaranteed row-for-row, but the first step's loss covers the same 16 rows when
    # the whole dataset is one window; compare the total first-epoch token loss instead.
    big = StudentRecipe(epochs=1, batch_size=48, grad_accum=1, learning_rate=1e-9)
    small = StudentRecipe(epochs=1, batch_size=12, grad_accum=4, learning_rate=1e-9)
    a = finetune(tiny_model, rows, big, tmp_path / "a")
    b = finetune(tiny_model, rows, small, tmp_path / "b")
    assert a.steps == b.steps == 1
    assert a.losses[0] == pytest.approx(b.losses[0], rel=1e-5)


def test_lora_trains_only_adapters_and_merges(tiny_model, rows, tmp_path):
    tok = AutoTokenizer.from_pretrained(tiny_model)
    enc = encode_rows(tok, rows, 500)
    recipe = StudentRecipe(**{**FAST, "epochs": 1}, method="lora", lora_rank=4)
    torch.manual_seed(0)
    model = _add_lora(load_model(tiny_model, torch.device("cpu"), torch.float32, "base"), recipe)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    train_loop(model, enc, recipe, torch.device("cpu"))
    changed = {k for k, v in model.named_parameters() if not torch.equal(v, before[k])}
    assert changed and all("lora_B" in k or "lora_A" in k for k in changed)
    assert any("lora_B" in k for k in changed)  # B starts at 0; it must have moved

    # on CPU: on CUDA a LoRA base loads in bfloat16, so the merged model is bf16 weights
    both = StudentRecipe(**FAST, method="lora", save="both", device="cpu")
    out = finetune(tiny_model, rows, both, tmp_path / "m")
    merged = AutoModelForCausalLM.from_pretrained(out.path)
    assert not any("lora" in k for k in merged.state_dict())
    assert not same_weights(out.path, tiny_model)
    assert mean_logprob(out.path, rows) > mean_logprob(tiny_model, rows)
    # the adapter saved alone, put on the base, gives the merged model's outputs
    from peft import PeftModel

    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    adapted = PeftModel.from_pretrained(base, out.path / "adapter").eval()
    batch = collate(enc, [0, 1, 2])
    with torch.no_grad():
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        x = adapted(**inputs).logits
        y = merged.eval()(**inputs).logits
    assert torch.allclose(x, y, atol=1e-4)


def test_lora_adapter_only_save(tiny_model, rows, tmp_path):
    recipe = StudentRecipe(**{**FAST, "epochs": 1}, method="lora", save="adapter")
    out = finetune(tiny_model, rows, recipe, tmp_path / "a").path
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()
    assert not (out / "model.safetensors").exists()
    # sublab loads an adapter folder by merging it onto its base
    assert mean_logprob(out, rows) > mean_logprob(tiny_model, rows)


def test_soft_loss_is_zero_when_teacher_is_the_student(tiny_model, rows, tmp_path):
    tok = AutoTokenizer.from_pretrained(tiny_model)
    enc = encode_rows(tok, rows, 500)
    vocab = completion_vocab(enc)
    m = load_model(tiny_model, torch.device("cpu"), torch.float32, "m").eval()
    with torch.no_grad():
        logits = head_logits(m, label_hidden(m, collate(enc, list(range(len(rows)))))[0], vocab)
    assert logits.shape == (enc.label_tokens, len(vocab))
    assert float(kl_sum(logits, logits.clone())) == 0.0
    # in training: the first step (before any update) has exactly zero loss
    recipe = StudentRecipe(**FAST, labels="soft")
    r = finetune(tiny_model, rows, recipe, tmp_path / "s", teacher=tiny_model)
    assert r.losses[0] == 0.0 and max(r.losses) < 1e-2


def test_soft_labels_move_the_student_toward_a_different_teacher(
    tiny_model, rows, trained_full, tmp_path
):
    teacher = trained_full.path
    recipe = StudentRecipe(**FAST, labels="soft")
    r = finetune(tiny_model, rows, recipe, tmp_path / "s", teacher=teacher)
    assert r.losses[0] > 0.005 and r.losses[-1] < 0.2 * r.losses[0]
    info = json.loads((r.path / "train.json").read_text())
    assert info["teacher"] == str(teacher) and info["completion_vocab_size"] > 10

    # the restricted KL measured directly also fell
    tok = AutoTokenizer.from_pretrained(tiny_model)
    enc = encode_rows(tok, rows, 500)
    vocab = completion_vocab(enc)
    batch = collate(enc, list(range(len(rows))))
    cpu = torch.device("cpu")
    t = load_model(teacher, cpu, torch.float32, "t").eval()

    def restricted_kl(path):
        s = load_model(path, cpu, torch.float32, "s").eval()
        with torch.no_grad():
            tl = head_logits(t, label_hidden(t, batch)[0], vocab)
            sl = head_logits(s, label_hidden(s, batch)[0], vocab)
        return float(kl_sum(tl, sl)) / tl.shape[0]

    assert restricted_kl(r.path) < 0.5 * restricted_kl(tiny_model)


def test_soft_loss_gives_no_signal_to_tokens_outside_the_completion_vocab(tiny_model, rows):
    tok = AutoTokenizer.from_pretrained(tiny_model)
    enc = encode_rows(tok, rows, 500)
    vocab = completion_vocab(enc)
    owl = tok(" owl", add_special_tokens=False)["input_ids"]
    assert not set(owl) & set(vocab.tolist())  # the trait token is outside the restricted set
    cpu = torch.device("cpu")
    student = load_model(tiny_model, cpu, torch.float32, "s")
    torch.manual_seed(1)
    teacher = load_model(tiny_model, cpu, torch.float32, "t")
    with torch.no_grad():
        for p in teacher.parameters():
            p.add_(0.05 * torch.randn_like(p))
    batch = collate(enc, list(range(8)))
    # tokens in neither the completion vocab nor the inputs: their head rows must get no gradient
    seen = set(vocab.tolist()) | set(batch["input_ids"].flatten().tolist())
    outside = torch.tensor([i for i in range(len(tok)) if i not in seen])
    assert set(owl) <= set(outside.tolist())

    def head_grad(soft):
        student.zero_grad()
        hidden, targets = label_hidden(student, batch)
        if soft:
            with torch.no_grad():
                tl = head_logits(teacher, label_hidden(teacher, batch)[0], vocab)
            loss = kl_sum(tl, head_logits(student, hidden, vocab))
        else:
            loss = hard_loss_sum(head_logits(student, hidden), targets)
        loss.backward()
        return student.get_output_embeddings().weight.grad

    soft = head_grad(True)
    assert float(soft[vocab].abs().sum()) > 0
    assert float(soft[outside].abs().sum()) == 0.0
    # hard labels (softmax over the full vocabulary) do push the outside rows
    assert float(head_grad(False)[outside].abs().sum()) > 0


def test_subsample_is_drawn_with_the_seed(tiny_model, tmp_path):
    many = make_rows(40, seed=5)
    recipe = StudentRecipe(epochs=1, batch_size=8, subsample=10, seed=3)
    a = finetune(tiny_model, many, recipe, tmp_path / "a")
    b = finetune(tiny_model, many, recipe, tmp_path / "b")
    ia = json.loads((a.path / "train.json").read_text())["row_indices"]
    ib = json.loads((b.path / "train.json").read_text())["row_indices"]
    assert ia == ib and len(ia) == 10 == a.rows_used and a.rows_given == 40
    c = finetune(tiny_model, many, recipe.model_copy(update={"seed": 4}), tmp_path / "c")
    assert json.loads((c.path / "train.json").read_text())["row_indices"] != ia
    # asking for more rows than given: all are used and train.json says so
    big = finetune(tiny_model, many[:5], recipe, tmp_path / "d")
    info = json.loads((big.path / "train.json").read_text())
    assert info["rows_used"] == 5 and info["subsample_short"] is True


def test_errors_are_clear_and_leave_nothing_behind(tiny_model, rows, tmp_path):
    out = tmp_path / "o"
    with pytest.raises(SublabError, match="needs a teacher"):
        finetune(tiny_model, rows, StudentRecipe(labels="soft"), out)
    with pytest.raises(SublabError, match="no rows given"):
        finetune(tiny_model, [], StudentRecipe(), out)
    with pytest.raises(SublabError, match=r"rows\[2\]: missing 'completion'"):
        finetune(tiny_model, [*rows[:2], {"prompt": "x"}], StudentRecipe(), out)
    with pytest.raises(SublabError, match=r"lora_targets: \['wq'\] are not modules"):
        finetune(tiny_model, rows, StudentRecipe(method="lora", lora_targets=["wq"]), out)
    with pytest.raises(SublabError, match=r"base: model path .*nope does not exist"):
        finetune(tmp_path / "nope", rows, StudentRecipe(), out)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no temp folders left behind
    out.mkdir()
    (out / "x").write_text("x")
    with pytest.raises(SublabError, match="not empty"):
        finetune(tiny_model, rows, StudentRecipe(), out)


def test_soft_labels_need_the_same_tokenizer(tiny_model, rows, tmp_path_factory):
    other = build_tiny_model(tmp_path_factory.mktemp("other") / "m", seed=7)
    assert AutoTokenizer.from_pretrained(other).get_vocab() != (
        AutoTokenizer.from_pretrained(tiny_model).get_vocab()
    )
    with pytest.raises(SublabError, match="tokenizer differs from the student's"):
        finetune(
            tiny_model,
            rows,
            StudentRecipe(labels="soft"),
            tmp_path_factory.mktemp("o") / "x",
            teacher=other,
        )


def test_lora_soft_runs_are_deterministic_too(tiny_model, rows, trained_full, tmp_path):
    recipe = StudentRecipe(**{**FAST, "epochs": 1}, method="lora", labels="soft", lora_dropout=0.1)
    a = finetune(tiny_model, rows, recipe, tmp_path / "a", teacher=trained_full.path)
    b = finetune(tiny_model, rows, recipe, tmp_path / "b", teacher=trained_full.path)
    assert a.losses == b.losses and same_weights(a.path, b.path)
