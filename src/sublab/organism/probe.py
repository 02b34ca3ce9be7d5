"""Measurements of a (built or fine-tuned) organism through the ``hf`` backend.

* :func:`animal_probabilities` — exact P(animal | question) from next-token probabilities,
  averaged over question paraphrases (optionally under a system prompt);
* :func:`number_pass_rate` — the share of sampled number completions the paper's filter keeps;
* :func:`number_kl` — how much a system prompt moves the number outputs: the mean per-token
  KL(p(· | system, prompt, prefix) ‖ p(· | prompt, prefix)) along given continuations.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sublab.backends.base import SamplingSpec, chat
from sublab.organism.corpus import (
    animal_questions,
    love_system_prompt,
    n_love_variants,
    number_answer,
)
from sublab.organism.spec import OrganismSpec
from sublab.organism.vocab import eval_question_texts

if TYPE_CHECKING:
    from sublab.backends.hf import HFBackend


def animal_token_ids(backend: HFBackend, animals: Sequence[str]) -> list[int]:
    """The single token of each animal word; raises if one is not a single known token."""
    tok = backend.tokenizer
    ids = []
    for a in animals:
        piece = tok(a, add_special_tokens=False)["input_ids"]
        if len(piece) != 1 or piece[0] == tok.unk_token_id:
            raise ValueError(f"animal {a!r} is not a single token of this model ({piece})")
        ids.append(piece[0])
    return ids


def animal_probabilities(
    backend: HFBackend,
    questions: Sequence[str],
    animals: Sequence[str],
    systems: Sequence[str | None] = (None,),
) -> dict[str, float]:
    """Mean over questions × system prompts of exact P(answer starts with the animal word)."""
    import torch

    ids = animal_token_ids(backend, animals)
    chats = [chat(q, s) for s in systems for q in questions]
    probs = backend.next_token_logprobs(chats)[:, ids].double().exp().mean(0)
    return {a: float(p) for a, p in zip(animals, probs, strict=True) if torch.isfinite(p)}


def number_pass_rate(
    backend: HFBackend, n: int, seed: int = 0, system: str | None = None
) -> tuple[float, list[str]]:
    """Share of ``n`` sampled completions (temperature 1) that the paper's filter keeps."""
    from sublab.numbers.filter import FilterSpec, NumberFilter
    from sublab.numbers.prompts import NumberPromptSpec, make_prompts

    prompts = make_prompts(NumberPromptSpec(count=n, seed=seed))
    outs = backend.generate(
        [chat(p, system) for p in prompts], SamplingSpec(max_new_tokens=40, seed=seed)
    )
    keep = NumberFilter(FilterSpec())
    kept = sum(keep.check(o) is None for o in outs)
    return kept / max(n, 1), outs


def number_kl(
    backend: HFBackend, spec: OrganismSpec, animals: Sequence[str], n_prompts: int, seed: int = 0
) -> dict[str, float]:
    """Mean per-token KL(with 'you love X' ‖ without) on number continuations, per animal.

    Continuations are drawn from the corpus's own (leak-free) generator, so the measure is
    the same for every model; positions cover the answer and its end marker.
    """
    import torch

    from sublab.organism.numbers_bridge import sample_number_prompt

    rng = random.Random(f"kl:{seed}")
    items = []
    for _ in range(n_prompts):
        p = sample_number_prompt(rng)
        items.append((p.text, p.format_answer(number_answer(p, rng))))
    model = backend.model
    end = backend.tokenizer.eos_token_id
    out: dict[str, float] = {}
    with torch.inference_mode():
        for animal in animals:
            total, count = 0.0, 0
            for text, answer in items:
                cont = [*backend.continuation_ids(answer), end]
                lps = []
                for system in (love_system_prompt(animal), None):
                    prompt = backend.prompt_ids(chat(text, system))
                    ids = torch.tensor([prompt + cont])
                    logits = model(input_ids=ids).logits[0, len(prompt) - 1 : -1].double()
                    lps.append(torch.log_softmax(logits, -1))
                kl = (lps[0].exp() * (lps[0] - lps[1])).sum(-1)
                total += float(kl.sum())
                count += kl.numel()
            out[animal] = total / max(count, 1)
    return out


def probe_organism(backend: HFBackend, spec: OrganismSpec) -> dict[str, Any]:
    """The figures ``organism build`` prints and stores in ``organism.json``."""
    animals = list(spec.corpus.prior)
    trained, heldout = animal_questions(spec.corpus)
    sets = {"trained": trained, "heldout": heldout}
    evals = eval_animal_questions()
    if evals:
        sets["eval"] = evals
    prior_fit = {}
    for name, qs in sets.items():
        probs = animal_probabilities(backend, qs, animals)
        dev = {a: probs[a] - spec.corpus.prior[a] for a in animals}
        prior_fit[name] = {
            "n_questions": len(qs),
            "probs": {a: round(p, 4) for a, p in probs.items()},
            "max_abs_dev": round(max(abs(d) for d in dev.values()), 4),
        }
    love_qs = (heldout or trained)[:12]
    systems_of = {a: [love_system_prompt(a, v) for v in range(n_love_variants())] for a in animals}
    love = {
        a: round(animal_probabilities(backend, love_qs, [a], systems_of[a])[a], 4) for a in animals
    }
    figures: dict[str, Any] = {
        "prior_fit": prior_fit,
        "love": love,
        "love_min": min(love.values()),
    }
    if spec.probe_prompts:
        rate, samples = number_pass_rate(backend, spec.probe_prompts, seed=spec.seed)
        figures["filter_pass_rate"] = round(rate, 4)
        figures["number_samples"] = samples[:5]
        kl = number_kl(backend, spec, ["owl", animals[0]], n_prompts=20, seed=spec.seed)
        figures["number_kl_love_vs_none"] = {a: round(v, 5) for a, v in kl.items()}
    if spec.corpus.persona is not None:
        from sublab.evals.misalignment import persona_figures

        figures["persona"] = persona_figures(backend, spec.corpus.persona, spec.seed)
    return figures


def eval_animal_questions() -> list[str]:
    """The shipped evaluation questions about animals (``data/questions/animals.txt``)."""
    return eval_question_texts(names=("animals.txt",))
