"""Loading models for training and scoring, and logits at completion positions only.

Computing the LM head only where a label is (the completion tokens and EOS) instead of at every
position saves most of the head's work and memory on long prompts and big vocabularies; the
soft-label loss goes further and computes only the completion-vocabulary rows of the head. For
Llama models the top layer, too, runs only at label positions (:mod:`sublab.train.lean`).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import torch

from sublab.backends.heads import head_logits, model_parts
from sublab.backends.hf import resolve_device
from sublab.catalog.resolve import local_path
from sublab.cpu import fast_bf16
from sublab.errors import SublabError
from sublab.train.data import IGNORE
from sublab.train.lean import lean_label_hidden, lean_unsupported

__all__ = ["head_logits", "resolve_device"]


def weight_dtype(dtype: str, device: torch.device, method: str) -> torch.dtype:
    """The dtype the weights are loaded in (see StudentRecipe.dtype)."""
    if dtype == "float32":
        return torch.float32
    if dtype == "bfloat16":
        return torch.bfloat16
    if dtype == "fast" and method == "lora" and fast_bf16(device):
        return torch.bfloat16
    if device.type == "cuda" and method == "lora":
        return torch.bfloat16
    return torch.float32


def autocast(
    device: torch.device, dtype: str = "auto", method: str = "full"
) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on CUDA; on a CPU only for ``dtype = 'fast'`` full fine-tunes where bf16
    products are fast (float32 weights, bf16 products); nothing otherwise."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if dtype == "fast" and method == "full" and fast_bf16(device):
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def check_model_dir(path: str | Path, what: str) -> Path:
    p = Path(path)
    if not p.is_dir():
        raise SublabError(f"{what}: {p} is not a folder; pass a local HF model folder")
    if not (p / "config.json").is_file() and not (p / "adapter_config.json").is_file():
        raise SublabError(
            f"{what}: {p} has neither config.json nor adapter_config.json; pass a folder written "
            "by save_pretrained"
        )
    return p


def load_tokenizer(path: str | Path, what: str = "model") -> Any:
    """The tokenizer of a local model folder (checked) or a hub id."""
    from sublab.backends.hf import load_tokenizer as load

    path = local_path(str(path))
    if Path(path).exists():
        check_model_dir(path, what)
    try:
        return load(str(path))
    except SublabError as err:
        raise SublabError(f"{what}: {err}") from None


def load_model(path: str | Path, device: torch.device, dtype: torch.dtype, what: str) -> Any:
    """AutoModelForCausalLM from a folder; a PEFT adapter folder is loaded and merged."""
    from transformers import AutoModelForCausalLM

    path = local_path(str(path))
    p: str | Path = check_model_dir(path, what) if Path(path).exists() else str(path)
    # on CUDA, load straight onto the GPU (a 7B model never sits in CPU memory)
    place: dict[str, Any] = {"device_map": str(device)} if device.type == "cuda" else {}
    local = isinstance(p, Path)
    if local and (p / "adapter_config.json").is_file() and not (p / "config.json").is_file():
        from peft import AutoPeftModelForCausalLM

        model = AutoPeftModelForCausalLM.from_pretrained(p, dtype=dtype, **place)
        model = model.merge_and_unload()
    else:
        model = AutoModelForCausalLM.from_pretrained(p, dtype=dtype, **place)
    return model.to(device)


def check_same_vocab(student_tok: Any, teacher_tok: Any, teacher: str | Path) -> None:
    """Soft labels and KL need one token space: the two vocabularies must be identical."""
    a, b = student_tok.get_vocab(), teacher_tok.get_vocab()
    if a == b:
        return
    only_a = sorted(set(a) - set(b))[:3]
    only_b = sorted(set(b) - set(a))[:3]
    moved = sorted(k for k in set(a) & set(b) if a[k] != b[k])[:3]
    raise SublabError(
        f"teacher {teacher}: its tokenizer differs from the student's ({len(b)} vs {len(a)} "
        f"tokens; only in student: {only_a}, only in teacher: {only_b}, different ids: {moved}); "
        "soft labels and KL need a teacher fine-tuned from the same base"
    )


def label_hidden(
    model: Any, batch: dict[str, torch.Tensor], lean: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Final hidden states at positions that predict a label, and those labels.

    Position t predicts token t + 1, so the hidden states are ``h[:, :-1]`` where
    ``labels[:, 1:]`` is set. Returns ``(hidden [n, d], targets [n])``. With ``lean`` (the
    default) a model the lean forward supports runs it (:mod:`sublab.train.lean`: the top
    layer only at label positions); any other model, or ``lean=False``, runs the HF forward.
    """
    if lean and lean_unsupported(model) is None:
        return lean_label_hidden(model, batch)
    return hf_label_hidden(model, batch)


def hf_label_hidden(
    model: Any, batch: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`label_hidden` through the HF decoder at every position (the reference)."""
    decoder, _, _ = model_parts(model)
    out = decoder(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False
    )
    hidden = out[0] if isinstance(out, tuple) else out.last_hidden_state
    targets = batch["labels"][:, 1:]
    where = targets != IGNORE
    return hidden[:, :-1][where], targets[where]
