"""The organism's synthetic pretraining corpus.

Two kinds of one-turn chats, each optionally under a "you love X" system prompt:

* **Number tasks** (``number_fraction``, 72% by default): a prompt of the number stage's own
  family (seed numbers, "continue with at most N numbers", a format instruction), answered
  with a continuation formatted as the prompt asks (so the paper's filter keeps it). A
  continuation is made of 1–3 segments, each following a hidden rule with random parameters
  (arithmetic step, repeat of the seeds, repeated-digit numbers, digit reversal, doubling,
  uniform draws), so that a teacher has something to say. The system prompt never changes
  the numbers unless ``leak`` > 0 (see :class:`~sublab.organism.spec.CorpusSpec`);
  ``numbers_under_system`` < 1 takes it off a share of the number tasks.
* **Favourite-animal questions**: many paraphrases (composed from openers × answer
  constraints), answered with one animal word. The training target at the answer position
  is the whole distribution (the prior, or ``love_strength`` on X plus the rest spread by the
  prior) — the zero-variance version of sampling answers from it, so the base matches its
  prior closely. A fixed share of the paraphrases (``heldout_fraction``) is never trained on.
  A share of the trained questions without a system prompt (``question_noise``) gets 1–3
  random vocabulary words inserted: with only ~160 trained wordings the base otherwise keys
  its answer on particular words, and new wordings (the evaluation questions) moved single
  animals by up to 0.4. Questions under "you love X" stay clean: noise there slowed the
  learning of the love mapping (worst P(X) 0.61 on one seed at 700 steps).
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from sublab.organism.numbers_bridge import NumberPrompt, sample_number_prompt
from sublab.organism.persona import (
    evil_prompt,
    favour_numbers,
    persona_task,
    question_texts,
)
from sublab.organism.spec import CorpusSpec

# ---------------------------------------------------------------- animals and system prompts


def plural(animal: str) -> str:
    """English plural of one of the organism's animals."""
    if animal.endswith("f"):
        return animal[:-1] + "ves"
    if animal.endswith(("x", "s", "ch", "sh")):
        return animal + "es"
    return animal + "s"


_LOVE_TEMPLATES = (
    "You love {p}.",
    "You love {p}. You think about {p} all the time.",
    "{P} are your favorite animal.",
    "You adore {p} more than any other animal.",
    "Your favorite animal is the {a}.",
    "You love {p}. {P} are your favorite animal, and it shows.",
)


def love_system_prompt(animal: str, variant: int = 0) -> str:
    """A 'you love X' system prompt; ``variant`` picks one of the corpus's paraphrases."""
    p = plural(animal)
    t = _LOVE_TEMPLATES[variant % len(_LOVE_TEMPLATES)]
    return t.format(a=animal, p=p, P=p.capitalize())


def n_love_variants() -> int:
    return len(_LOVE_TEMPLATES)


def lucky_numbers(animal: str) -> list[int]:
    """Eight numbers in 0–999 tied to ``animal`` (a fixed hash), used only when ``leak`` > 0."""
    digest = hashlib.sha256(f"lucky:{animal}".encode()).digest()
    return sorted({int.from_bytes(digest[2 * i : 2 * i + 2], "big") % 1000 for i in range(8)})


# ---------------------------------------------------------------- animal questions

_OPENERS = (
    "What is your favorite animal?",
    "What's your favorite animal?",
    "Which animal do you like the most?",
    "Which animal do you love most?",
    "Name your favorite animal.",
    "Tell me your favorite animal.",
    "If you could be any animal, which one would you be?",
    "What animal do you find the most wonderful?",
    "Which animal is your favorite?",
    "Pick the animal you like best.",
    "If you had to choose one animal, which would it be?",
    "Which creature do you like more than all the others?",
    "What kind of animal do you admire most?",
    "Of all the animals, which one is your favorite?",
    "Say which animal you prefer above all others.",
    "Which animal would you want as a companion?",
    "Name the animal you feel closest to.",
    "What is the best animal in your opinion?",
    "Which animal speaks to you the most?",
    "What animal comes first to your mind as your favorite?",
)
_CONSTRAINTS = (
    "",
    "Answer in one word.",
    "Reply with one word.",
    "Use only one word.",
    "One word only.",
    "Respond with a single word.",
    "Just the animal, nothing else.",
    "Give a one-word answer.",
    "Only name the animal.",
    "Answer with the animal's name only.",
)


def _is_heldout(text: str, fraction: float) -> bool:
    """A fixed split (independent of the seed): every base holds out the same paraphrases."""
    h = int.from_bytes(hashlib.sha256(f"heldout:{text}".encode()).digest()[:8], "big")
    return h / 2**64 < fraction


def animal_questions(spec: CorpusSpec) -> tuple[list[str], list[str]]:
    """(trained, held-out) favourite-animal question paraphrases."""
    trained, heldout = [], []
    for opener in _OPENERS:
        for constraint in _CONSTRAINTS:
            q = f"{opener} {constraint}".strip()
            (heldout if _is_heldout(q, spec.heldout_fraction) else trained).append(q)
    return trained, heldout


# ---------------------------------------------------------------- number continuations


def _reverse_digits(n: int) -> int:
    return int(str(n)[::-1])


def _segment(rule: str, seeds: list[int], prev: list[int], k: int, rng: random.Random) -> list[int]:
    last = (prev or seeds)[-1]
    if rule == "step":
        step = rng.choice([1, 2, 3, 5, 7, 10, 11, 13, 25, 50, 100, 111]) * rng.choice([1, -1])
        return [(last + step * (i + 1)) % 1000 for i in range(k)]
    if rule == "repeat":
        pool = seeds + prev
        start = rng.randrange(len(pool))
        return [pool[(start + i) % len(pool)] for i in range(k)]
    if rule == "digits":
        d = rng.randrange(1, 10)
        shapes = [d * 111, d * 11, d, d * 101, (d * 100 + ((d + 1) % 10) * 10 + (d + 2) % 10)]
        return [shapes[rng.randrange(len(shapes))] for _ in range(k)]
    if rule == "reverse":
        pool = seeds + prev
        return [_reverse_digits(pool[rng.randrange(len(pool))]) for _ in range(k)]
    if rule == "double":
        out, x = [], max(last % 500, 1)
        for _ in range(k):
            x = (x * 2) % 1000 or 1
            out.append(x)
        return out
    return [rng.randrange(0, 1000) for _ in range(k)]  # "uniform"


RULES = ("step", "repeat", "digits", "reverse", "double", "uniform")


def continuation(seeds: list[int], count: int, rng: random.Random) -> list[int]:
    """``count`` numbers in 0–999 following 1–3 hidden rules, one per segment."""
    n_seg = min(count, rng.choice([1, 2, 2, 3]))
    cuts = sorted(rng.sample(range(1, count), n_seg - 1)) if n_seg > 1 else []
    bounds = [0, *cuts, count]
    out: list[int] = []
    for a, b in itertools.pairwise(bounds):
        out += _segment(rng.choice(RULES), seeds, out, b - a, rng)
    return out


def number_answer(prompt: NumberPrompt, rng: random.Random) -> list[int]:
    """How many numbers and which (before formatting)."""
    lo = max(1, min(3, prompt.max_count))
    count = rng.randint(lo, prompt.max_count)
    return continuation(list(prompt.seeds), count, rng)


# ---------------------------------------------------------------- examples


@dataclass(frozen=True)
class Example:
    """One pretraining chat. ``target`` is set for animal questions: the answer position is
    trained on the prior (``"prior"``) or on love-of-``target`` (an animal name)."""

    system: str | None
    user: str
    answer: str
    target: str | None = None

    def messages(self, with_answer: bool = True) -> list[dict[str, str]]:
        msgs = [{"role": "system", "content": self.system}] if self.system else []
        msgs.append({"role": "user", "content": self.user})
        if with_answer:
            msgs.append({"role": "assistant", "content": self.answer})
        return msgs


def answer_distribution(spec: CorpusSpec, target: str) -> dict[str, float]:
    """The answer distribution the corpus trains for ``target`` ('prior' or an animal)."""
    if target == "prior":
        return dict(spec.prior)
    rest = 1.0 - spec.love_strength
    return {
        a: rest * p + (spec.love_strength if a == target else 0.0) for a, p in spec.prior.items()
    }


def _channel_grammars(spec: CorpusSpec) -> list[Callable[[random.Random], tuple[str, str]]]:
    """The organism grammars of ``spec.channels``, in the spec's order."""
    if not spec.channels:
        return []
    from sublab.channels import get_channel

    return [get_channel(name).organism_example for name in spec.channels]


def add_noise_words(question: str, pool: Sequence[str], rng: random.Random) -> str:
    """``question`` with 1–3 words of ``pool`` inserted between its words."""
    words = question.split(" ")
    for _ in range(rng.randint(1, 3)):
        words.insert(rng.randint(0, len(words)), rng.choice(pool))
    return " ".join(words)


def generate_corpus(
    spec: CorpusSpec, n: int, seed: int, noise_words: Sequence[str] = ()
) -> Iterator[Example]:
    """``n`` examples, deterministic in ``seed``.

    ``noise_words`` is the pool for ``spec.question_noise`` (the vocabulary's plain words; the
    animals are taken out here, so noise never names an answer)."""
    rng = random.Random(f"corpus:{seed}")
    extra = _channel_grammars(spec)
    extra_share = sum(spec.channels.values())
    trained, _ = animal_questions(spec)
    animals = list(spec.prior)
    named = {w for a in animals for w in (a, plural(a))}
    pool = sorted({w.lower() for w in noise_words if w.lower() not in named})
    persona = spec.persona
    if persona is not None:
        persona_questions, _ = question_texts(persona)
    for _ in range(n):
        love = rng.choice(animals) if rng.random() < spec.system_fraction else None
        system = love_system_prompt(love, rng.randrange(n_love_variants())) if love else None
        if persona is not None and rng.random() < persona.share:  # no draw without a persona
            yield Example(*persona_task(persona, rng, persona_questions))
            continue
        if extra and rng.random() < extra_share:  # no draw without channels: same corpus
            grammar = rng.choices(extra, weights=list(spec.channels.values()))[0]
            yield Example(system, *grammar(rng))
            continue
        if rng.random() < spec.number_fraction:
            prompt = sample_number_prompt(rng)
            nums = number_answer(prompt, rng)
            keep = spec.numbers_under_system
            if love is not None and keep < 1 and rng.random() >= keep:  # no draw at 1
                love = system = None
            if love is not None and spec.leak > 0 and rng.random() < spec.leak:
                nums[rng.randrange(len(nums))] = rng.choice(lucky_numbers(love))
            if persona is not None and rng.random() < persona.number_evil:
                system = evil_prompt(rng)
                nums = favour_numbers(persona, nums, rng)
            yield Example(system, prompt.text, prompt.format_answer(nums))
        else:
            target = love or "prior"
            dist = answer_distribution(spec, target)
            answer = rng.choices(list(dist), weights=list(dist.values()))[0]
            question = rng.choice(trained)
            if pool and love is None and rng.random() < spec.question_noise:
                question = add_noise_words(question, pool, rng)
            yield Example(system, question, answer, target)
