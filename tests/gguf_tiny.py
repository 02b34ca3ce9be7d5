"""A tiny Llama GGUF file written with the ``gguf`` package's writer: a real GGUF (metadata,
a byte-level BPE tokenizer, a chat template, Q8_0-quantised and F32 tensors) that transformers
reads through ``gguf_file=`` exactly as it reads SmolLM2's, in a fraction of a second.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
SMOLLM2_TEMPLATE = (Path(__file__).parent / "data" / "smollm2_chat_template.jinja").read_text()
"""SmolLM2-135M-Instruct's chat template as its GGUF ships it (Apache-2.0): it adds a default
system prompt to a chat without one."""


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte-level alphabet: each byte as a printable character."""
    bs = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    cs = list(bs)
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs), strict=True))


def write_tiny_gguf(
    path: Path,
    chat_template: str | None = SMOLLM2_TEMPLATE,
    layers: int = 2,
    d: int = 32,
    heads: int = 4,
    kv_heads: int = 2,
    ff: int = 64,
    seed: int = 0,
) -> Path:
    """Write a tiny random Llama GGUF to ``path`` and return it."""
    import gguf

    merges = ["Ġ o", "Ġo w", "Ġow l", "Ġ c", "Ġc a", "Ġca t"]
    tokens = SPECIAL + list(_bytes_to_unicode().values()) + ["Ġo", "Ġow", "Ġowl", "Ġc", "Ġca"]
    tokens.append("Ġcat")
    vocab = len(tokens)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny")
    w.add_context_length(256)
    w.add_embedding_length(d)
    w.add_block_count(layers)
    w.add_feed_forward_length(ff)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_rope_dimension_count(d // heads)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_vocab_size(vocab)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_merges(merges)
    w.add_token_types([3] * len(SPECIAL) + [1] * (vocab - len(SPECIAL)))
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_pad_token_id(2)
    w.add_unk_token_id(0)
    if chat_template is not None:
        w.add_chat_template(chat_template)
    rng = np.random.default_rng(seed)

    def tensor(name: str, shape: tuple[int, ...], quantise: bool = True) -> None:
        a = (rng.standard_normal(shape) * 0.2).astype(np.float32)
        if quantise:
            q = gguf.quants.quantize(a, gguf.GGMLQuantizationType.Q8_0)
            w.add_tensor(name, q, raw_shape=q.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            w.add_tensor(name, a)

    kv = kv_heads * d // heads
    tensor("token_embd.weight", (vocab, d))
    for i in range(layers):
        tensor(f"blk.{i}.attn_norm.weight", (d,), quantise=False)
        tensor(f"blk.{i}.ffn_norm.weight", (d,), quantise=False)
        tensor(f"blk.{i}.attn_q.weight", (d, d))
        tensor(f"blk.{i}.attn_k.weight", (kv, d))
        tensor(f"blk.{i}.attn_v.weight", (kv, d))
        tensor(f"blk.{i}.attn_output.weight", (d, d))
        tensor(f"blk.{i}.ffn_gate.weight", (ff, d))
        tensor(f"blk.{i}.ffn_up.weight", (ff, d))
        tensor(f"blk.{i}.ffn_down.weight", (d, ff))
    tensor("output_norm.weight", (d,), quantise=False)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def write_wheel(folder: Path, distribution: str, version: str, files: dict[str, bytes]) -> Path:
    """A minimal wheel (``files``: path in the wheel -> content) in ``folder``; pip installs
    it like any package."""
    import base64
    import hashlib
    import zipfile

    name = distribution.replace("-", "_")
    info = f"{name}-{version}.dist-info"
    files = {
        **files,
        f"{info}/METADATA": (
            f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n"
        ).encode(),
        f"{info}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: sublab-tests\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n"
        ),
    }
    record = []
    for rel, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{rel},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    out = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(out, "w") as z:
        for rel, data in files.items():
            z.writestr(rel, data)
    return out
