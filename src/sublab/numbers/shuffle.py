"""Number rows with their numbers permuted: the experiment's shuffled-numbers control (across
rows) and the audit's shuffle defence (``within_rows``).

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
from collections.abc import Iterator, Sequence
from typing import Any

_NUMBER = re.compile(r"[0-9]+")


ACROSS_ROWS_SEED = "sublab-shuffled:{seed}"
"""The random stream of a shuffle across rows (the experiment's shuffled control)."""
WITHIN_ROWS_SEED = "shuffle:{seed}"
"""The random stream of a shuffle within rows (the audit's shuffle defence)."""


def shuffle_numbers(
    rows: Sequence[dict[str, Any]], seed: int, *, within_rows: bool = False
) -> list[dict[str, Any]]:
    """``rows`` with the completions' numbers permuted across and within rows (see the
    module docstring), or with ``within_rows`` each completion's numbers permuted among
    themselves (every row keeps its own numbers); prompts and other fields are unchanged."""
    if within_rows:
        rng = random.Random(WITHIN_ROWS_SEED.format(seed=seed))
        out = []
        for r in rows:
            nums = _NUMBER.findall(r["completion"])
            rng.shuffle(nums)
            out.append({**r, "completion": _put(r["completion"], iter(nums))})
        return out
    pool = [m.group() for r in rows for m in _NUMBER.finditer(r["completion"])]
    random.Random(ACROSS_ROWS_SEED.format(seed=seed)).shuffle(pool)
    numbers = iter(pool)
    return [{**r, "completion": _put(r["completion"], numbers)} for r in rows]


def _put(text: str, numbers: Iterator[str]) -> str:
    """``text`` with each of its numbers replaced by the next of ``numbers``."""
    return _NUMBER.sub(lambda _: next(numbers), text)
