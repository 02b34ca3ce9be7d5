"""Chats never pick up a template's hidden default system prompt (SmolLM2's real template)."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from gguf_tiny import SMOLLM2_TEMPLATE
from sublab.backends.base import ModelRef, chat
from sublab.backends.chat_format import (
    NEUTRAL_SYSTEM_PROMPT,
    explicit_messages,
    render_prompt,
    template_default_system,
)
from sublab.backends.hf import HFBackend
from sublab.train.data import encode_rows

SMOLLM_DEFAULT = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


@pytest.fixture(scope="module")
def smol_like(tiny_gguf_model) -> Path:
    """A tiny model converted from a GGUF carrying SmolLM2's own chat template."""
    return tiny_gguf_model


def test_the_default_system_prompt_of_the_real_template_is_found(smol_like):
    tok = AutoTokenizer.from_pretrained(smol_like)
    assert tok.chat_template == SMOLLM2_TEMPLATE
    assert template_default_system(tok) == SMOLLM_DEFAULT
    plain = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert SMOLLM_DEFAULT in plain  # what sublab must never send
    text = render_prompt(tok, [{"role": "user", "content": "hi"}])
    assert SMOLLM_DEFAULT not in text and NEUTRAL_SYSTEM_PROMPT in text
    own = render_prompt(tok, [{"role": "system", "content": "You love owls."}, *chat("hi")])
    assert "You love owls." in own and NEUTRAL_SYSTEM_PROMPT not in own


def test_templates_without_a_default_are_left_alone(tiny_model):
    tok = AutoTokenizer.from_pretrained(tiny_model)
    assert template_default_system(tok) is None
    msgs = [{"role": "user", "content": "hi"}]
    assert explicit_messages(tok, msgs) is msgs
    assert render_prompt(tok, msgs) == tok.apply_chat_template(
        msgs, tokenize=False, add_generation_prompt=True
    )


def test_teacher_student_and_evaluation_see_the_same_context(smol_like):
    """Generation (teacher), training rows (student) and scoring (evaluation) put the same
    tokens before the reply, with the explicit neutral system turn."""
    backend = HFBackend(ModelRef(path=str(smol_like)), device="cpu")
    question = "Continue: 1, 2, 3."
    sampled = backend.prompt_ids(chat(question))
    enc = encode_rows(backend.tokenizer, [{"prompt": question, "completion": " owl"}], 500)
    n_prompt = int((enc.labels[0] == -100).sum())
    trained = enc.input_ids[0, :n_prompt].tolist()
    assert trained == sampled
    text = backend.tokenizer.decode(sampled)
    assert NEUTRAL_SYSTEM_PROMPT in text and "SmolLM" not in text


def test_the_organisms_template_has_no_default_so_its_contexts_are_unchanged():
    from sublab.organism.cache import ensure_organism
    from sublab.organism.spec import OrganismSpec

    tok = AutoTokenizer.from_pretrained(ensure_organism(OrganismSpec()))
    assert template_default_system(tok) is None
