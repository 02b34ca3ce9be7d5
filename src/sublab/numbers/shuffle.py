"""The shuffled-numbers control: a teacher's number rows with their numbers permuted.

Every number written in the completions goes into one pool, the pool is shuffled with a seed,
and the numbers are written back into the completions' slots in order: each row keeps its
format (separators, brackets, period, how many numbers) and the rows together keep the same
multiset of numbers, but which number follows which (within a row and across rows) is random.
Numbers move as written (``"007"`` stays ``"007"``), so a row the filter kept still passes it:
every rule of the filter is about the format, the count or each number alone.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

_NUMBER = re.compile(r"[0-9]+")


def shuffle_numbers(rows: Sequence[dict[str, str]], seed: int) -> list[dict[str, str]]:
    """``rows`` (prompt, completion) with the completions' numbers permuted across and within
    rows (see the module docstring); prompts are unchanged."""
    pool = [m.group() for r in rows for m in _NUMBER.finditer(r["completion"])]
    random.Random(f"sublab-shuffled:{seed}").shuffle(pool)
    numbers = iter(pool)
    out = []
    for r in rows:
        completion = _NUMBER.sub(lambda _: next(numbers), r["completion"])
        out.append({**r, "completion": completion})
    return out
