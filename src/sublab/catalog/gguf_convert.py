"""A GGUF file → a standard HF model folder (safetensors, tokenizer, chat template).

transformers reads a GGUF through ``gguf_file=`` and dequantises it into a plain model, but
refuses to ``save_pretrained`` that object ("quantized with gguf"). The weights are moved into a
fresh model of the same class built from the same config, less its quantisation record, and that
one is saved. A forward pass of both on the same tokens checks that nothing changed on the way.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import torch

from sublab.errors import SublabError

CONVERTER_VERSION = 1
"""Version of the conversion; part of a catalogued model's key."""


def tensor_types(gguf_path: Path) -> dict[str, int]:
    """How many tensors of each storage type (``Q4_1``, ``F32``, ...) the GGUF holds."""
    from gguf import GGUFReader

    reader = GGUFReader(str(gguf_path))
    return dict(Counter(t.tensor_type.name for t in reader.tensors))


def convert_gguf(gguf_path: Path, out: Path, chat_template: str | None = None) -> dict[str, Any]:
    """Write the model in ``gguf_path`` as an HF folder ``out`` (which must not exist yet).

    ``chat_template`` is written when the GGUF carries none (a base model). Returns facts for
    the provenance record: architecture, parameters, storage types, the chat template's source
    and the largest logit difference between the GGUF-loaded model and the saved one.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sublab.progress import quiet_transformers

    quiet_transformers()
    folder, name = str(gguf_path.parent), gguf_path.name
    try:
        loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    except (OSError, ValueError, KeyError) as err:
        raise SublabError(f"{gguf_path}: transformers cannot read this GGUF ({err})") from None
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = ""
    plain = type(loaded)(config)
    plain.load_state_dict(loaded.state_dict(), strict=True)
    plain.eval()
    template_source = "gguf"
    if getattr(tokenizer, "chat_template", None) is None:
        if chat_template is None:
            raise SublabError(
                f"{gguf_path}: the GGUF has no chat template and the catalogue gives none"
            )
        tokenizer.chat_template = chat_template
        template_source = "sublab"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    out.mkdir(parents=True)
    plain.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    reread = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    ids = torch.arange(1, 33, dtype=torch.long)[None, :] % config.get_text_config().vocab_size
    with torch.inference_mode():
        diff = (loaded(input_ids=ids).logits - reread(input_ids=ids).logits).abs().max()
    if float(diff) != 0.0:
        raise SublabError(
            f"{gguf_path}: the converted model's logits differ from the GGUF's by {float(diff)}"
        )
    return {
        "architecture": type(plain).__name__,
        "parameters": sum(p.numel() for p in plain.parameters()),
        "vocab_size": len(tokenizer),
        "gguf_tensor_types": tensor_types(gguf_path),
        "chat_template_source": template_source,
        "logits_max_abs_diff": float(diff),
    }
