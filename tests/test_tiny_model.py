from __future__ import annotations

from transformers import AutoModelForCausalLM, AutoTokenizer


def test_tiny_model_loads_with_auto_classes(tiny_model):
    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    assert (tiny_model / "model.safetensors").exists()
    text = tok.apply_chat_template(
        [{"role": "system", "content": "hi"}, {"role": "user", "content": "1, 2, 3"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert text.startswith("<|system|> hi <|end|>") and text.endswith("<|assistant|> ")
    ids = tok(text, return_tensors="pt").input_ids
    assert tok.decode(ids[0]) == text
    out = model(ids)
    assert out.logits.shape == (1, ids.shape[1], len(tok))
