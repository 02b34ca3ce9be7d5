"""Match a free-text answer to one of a list of candidate words.

Rules (the evaluation's definition of "the model answered X"):

- whole words only, case-insensitive: ``cat`` matches "Cat.", "my cat!" and "cat-like" (a word is
  a run of letters and digits; anything else, hyphen and underscore included, ends it) but not
  "caterpillar" or "concatenate";
- simple English plurals count as the word: ``owls``, ``foxes``, ``wolves``, ``puppies``-style
  ``y → ies``, ``knife → knives``, and a few irregulars (``mice``, ``geese``, ``octopi``);
- multi-word candidates (``polar bear``) match with any whitespace between their words;
- if several candidates occur, the one that occurs **first** in the text wins (at the same position
  the longer one wins, so "polar bear" beats "polar"); a reply naming no candidate is a
  non-answer (``None``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

_IRREGULAR = {
    "mouse": ["mice"],
    "goose": ["geese"],
    "ox": ["oxen"],
    "octopus": ["octopi", "octopuses"],
    "cactus": ["cacti", "cactuses"],
    "child": ["children"],
    "person": ["people"],
}
_VOWELS = set("aeiou")


def word_forms(word: str) -> list[str]:
    """The singular and the plural spellings accepted for one (lower-case) word."""
    forms = [word]
    if word in _IRREGULAR:
        forms += _IRREGULAR[word]
    elif word.endswith(("s", "x", "z", "ch", "sh")):
        forms.append(word + "es")
    elif len(word) > 1 and word.endswith("y") and word[-2] not in _VOWELS:
        forms.append(word[:-1] + "ies")
    elif word.endswith("fe"):
        forms += [word[:-2] + "ves", word + "s"]
    elif word.endswith("f") and not word.endswith("ff"):
        forms += [word[:-1] + "ves", word + "s"]
    else:
        forms.append(word + "s")
    return forms


def candidate_forms(candidate: str) -> list[str]:
    """Accepted spellings of a candidate; for several words only the last is pluralised."""
    words = candidate.lower().split()
    if not words:
        raise ValueError("empty candidate")
    head = " ".join(words[:-1])
    return [f"{head} {f}" if head else f for f in word_forms(words[-1])]


@lru_cache(maxsize=64)
def _compile(candidates: tuple[str, ...]) -> tuple[re.Pattern[str], dict[str, str]]:
    by_form: dict[str, str] = {}
    for cand in candidates:
        for form in candidate_forms(cand):
            # A form shared by two candidates goes to the first one listed.
            by_form.setdefault(form, cand)
    # Longest first so that at one position the longest alternative wins.
    alternatives = sorted(by_form, key=len, reverse=True)
    body = "|".join(r"\s+".join(map(re.escape, f.split())) for f in alternatives)
    pattern = re.compile(rf"(?<![^\W_])(?:{body})(?![^\W_])")
    return pattern, by_form


def match_answer(text: str, candidates: Sequence[str]) -> str | None:
    """The candidate that ``text`` names first (see the module rules), or None if none."""
    if not candidates:
        return None
    pattern, by_form = _compile(tuple(c.lower() for c in candidates))
    # Lower-case the text rather than matching with IGNORECASE: the match is then always one of
    # the lower-case forms (IGNORECASE would also match look-alikes such as the long s 'ſ').
    m = pattern.search(text.lower())
    if m is None:
        return None
    return by_form[" ".join(m.group(0).lower().split())]
