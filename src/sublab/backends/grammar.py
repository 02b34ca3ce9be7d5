"""Constrained decoding: a number-list grammar that every sampled answer must follow.

A real model asked for numbers answers cleanly only about one time in four; restricting the
sampler to digits and separators alone still leaves malformed lists ("1. 10\\n2. 99", numbers
of four digits). :class:`NumberGrammar` is the shape of an answer the paper's filter keeps: one
to ``max_count`` numbers of at most ``max_digits`` digits, one separator repeated exactly
(``", "``, ``","``, ``" "``, ``"; "``, ``";"`` or a newline), optionally inside one pair of
brackets or parentheses, optionally ending in a period. The filter still runs on every answer
(banned numbers and ``max_value`` are its business).

:class:`TokenGrammar` runs the grammar over a tokenizer's vocabulary: the candidate tokens are
those made only of the grammar's characters (and end of turn); at each step a row's state
allows the candidates whose characters the grammar accepts from that state. Masks and
transitions are computed once per state reached and reused. :func:`number_regex` is the same
language as a regular expression, for engines that take one (vLLM's guided decoding).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from pydantic import Field

from sublab.config import Spec

SEPARATORS = (", ", ",", " ", "; ", ";", "\n")
"""The separators an answer may use (the first one it writes, then that one throughout)."""
BRACKETS = {"[": "]", "(": ")"}
ALPHABET = frozenset("0123456789,; \n[]().")


class NumberGrammar(Spec):
    """A list of numbers in one of the shapes the paper's filter keeps."""

    kind: Literal["numbers"] = Field("numbers", description="The grammar: 'numbers'.")
    max_count: int = Field(10, ge=1, description="Most numbers in an answer.")
    max_digits: int = Field(3, ge=1, le=9, description="Most digits in a number.")


@dataclass(frozen=True)
class State:
    """Where an answer is: ``phase`` 'start' (nothing yet), 'num' (in a number), 'sep' (in a
    separator), 'closed' (after the closing bracket), 'end' (after the final period)."""

    phase: str = "start"
    bracket: str = ""
    count: int = 0
    digits: int = 0
    sep: str = ""
    """The separator fixed by the first one written ('' until then)."""
    buf: str = ""
    """The separator characters written so far (phase 'sep')."""


def step(g: NumberGrammar, s: State, ch: str) -> State | None:
    """The state after character ``ch``, or None when the grammar forbids it."""
    if s.phase == "start":
        if ch in BRACKETS and not s.bracket:
            return State("start", bracket=ch)
        return State("num", s.bracket, 1, 1) if ch.isdigit() else None
    if s.phase == "num":
        if ch.isdigit():
            return (
                State("num", s.bracket, s.count, s.digits + 1, s.sep)
                if s.digits < g.max_digits
                else None
            )
        if s.bracket and ch == BRACKETS[s.bracket]:
            return State("closed", s.bracket, s.count)
        if ch == "." and not s.bracket:
            return State("end", count=s.count)
        if s.count < g.max_count and _sep_prefix(s.sep, ch):
            return State("sep", s.bracket, s.count, 0, s.sep, ch)
        return None
    if s.phase == "sep":
        if ch.isdigit() and (s.buf == s.sep or (not s.sep and s.buf in SEPARATORS)):
            return State("num", s.bracket, s.count + 1, 1, s.buf)
        return (
            State("sep", s.bracket, s.count, 0, s.sep, s.buf + ch)
            if _sep_prefix(s.sep, s.buf + ch)
            else None
        )
    if s.phase == "closed":
        return State("end", count=s.count) if ch == "." else None
    return None


def _sep_prefix(sep: str, text: str) -> bool:
    """Whether ``text`` can still become the separator (``sep``, or any when none is fixed)."""
    return sep.startswith(text) if sep else any(x.startswith(text) for x in SEPARATORS)


def can_end(s: State) -> bool:
    """Whether an answer may end in state ``s`` (end of turn is allowed)."""
    return (s.phase == "num" and not s.bracket) or s.phase in ("closed", "end")


def walk(g: NumberGrammar, s: State, text: str) -> State | None:
    """The state after ``text``, or None when the grammar forbids any of its characters."""
    for ch in text:
        nxt = step(g, s, ch)
        if nxt is None:
            return None
        s = nxt
    return s


def number_regex(g: NumberGrammar) -> str:
    """The grammar's language as a regular expression (one alternative per separator)."""
    num = f"[0-9]{{1,{g.max_digits}}}"
    lists = [num] + [
        f"{num}(?:{_re_escape(sep)}{num}){{1,{g.max_count - 1}}}"
        for sep in SEPARATORS
        if g.max_count > 1
    ]
    body = "(?:" + "|".join(lists) + ")"
    return rf"(?:{body}\.?|\[{body}\]\.?|\({body}\)\.?)"


def _re_escape(sep: str) -> str:
    return sep.replace("\n", "\\n")


class TokenGrammar:
    """A :class:`NumberGrammar` over a tokenizer: candidate ids, per-state masks, transitions.

    ``texts`` are the decoded texts of ids ``0..len(texts)-1``; ``eos_ids`` end a turn.
    """

    def __init__(
        self, g: NumberGrammar, texts: list[str], eos_ids: list[int], special: set[int]
    ) -> None:
        self.grammar = g
        ids = [i for i, t in enumerate(texts) if t and i not in special and set(t) <= ALPHABET]
        self.texts = [texts[i] for i in ids]
        self.eos = sorted(set(eos_ids))
        self.candidates = torch.tensor(ids + self.eos, dtype=torch.long)
        self._n_text = len(ids)
        self._masks: dict[State, torch.Tensor] = {}
        self._next: dict[State, dict[int, State]] = {}

    def _visit(self, s: State) -> None:
        nexts: dict[int, State] = {}
        for j, text in enumerate(self.texts):
            t = walk(self.grammar, s, text)
            if t is not None:
                nexts[j] = t
        mask = torch.zeros(len(self.candidates), dtype=torch.bool)
        mask[list(nexts)] = True
        if can_end(s):
            mask[self._n_text :] = True
        self._masks[s], self._next[s] = mask, nexts

    def mask(self, s: State) -> torch.Tensor:
        """Which candidates state ``s`` allows (bool over :attr:`candidates`)."""
        if s not in self._masks:
            self._visit(s)
        return self._masks[s]

    def advance(self, s: State, j: int) -> State:
        """The state after candidate ``j`` (an allowed one; end of turn leaves it as it is)."""
        if j >= self._n_text:
            return s
        if s not in self._next:
            self._visit(s)
        return self._next[s][j]


def token_grammar(
    g: NumberGrammar, tokenizer: Any, vocab_size: int, eos_ids: list[int]
) -> TokenGrammar:
    """:class:`TokenGrammar` of ``g`` over ``tokenizer``'s first ``vocab_size`` ids."""
    size = min(len(tokenizer), vocab_size)
    texts = tokenizer.batch_decode([[i] for i in range(size)], clean_up_tokenization_spaces=False)
    return TokenGrammar(g, texts, eos_ids, set(tokenizer.all_special_ids))
