"""A tiny random-init Llama chat model with a locally trained tokenizer, built by the tests.

Until (and besides) the model organism, backend tests run on this: it is a real HF model folder
(config, safetensors weights, tokenizer.json, chat template) that AutoModelForCausalLM and
AutoTokenizer load like any hub model. Its outputs are random; tests check properties
(counts, determinism, resume, formats), never canned text.
"""

from __future__ import annotations

import random
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} <|end|> {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|> {% endif %}"
)
SPECIALS = ["<|pad|>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>"]


def _corpus(n: int = 400, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    words = "here are some numbers continue the sequence with more values owl cat dog".split()
    lines = []
    for _ in range(n):
        nums = [str(rng.randint(0, 999)) for _ in range(rng.randint(3, 10))]
        sep = rng.choice([", ", " ", "; "])
        lines.append(" ".join(rng.sample(words, 4)) + " " + sep.join(nums) + ".")
    return lines


def build_tiny_model(out: Path, seed: int = 0, hidden: int = 32, layers: int = 2) -> Path:
    """Write a tiny Llama chat model folder to ``out`` and return it."""
    out.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)

    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(_corpus(seed=seed), trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<|pad|>",
        eos_token="<|end|>",
        bos_token=None,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=256,
        pad_token_id=fast.pad_token_id,
        eos_token_id=fast.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(out, safe_serialization=True)
    return out
