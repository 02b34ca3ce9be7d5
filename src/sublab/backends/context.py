"""A backend whose every chat starts with the same earlier turns (in-context learning).

:class:`InContext` wraps any backend: each chat it is given gets ``turns`` (user and assistant
messages, e.g. a teacher's prompts and completions) put before its user turn, after its
system prompt if it has one. Evaluations run on it unchanged, so the in-context-learning
control asks the trait questions with a teacher's rows in the model's context.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sublab.backends.base import Backend, Chat, SamplingSpec


def context_turns(rows: Sequence[dict[str, str]]) -> Chat:
    """Rows (prompt, completion) as alternating user and assistant messages."""
    turns: Chat = []
    for r in rows:
        turns.append({"role": "user", "content": r["prompt"]})
        turns.append({"role": "assistant", "content": r["completion"]})
    return turns


def with_context(chat: Chat, turns: Chat) -> Chat:
    """``chat`` with ``turns`` put after its system messages, before the rest."""
    head = [m for m in chat if m["role"] == "system"]
    if chat[: len(head)] != head:
        raise ValueError("system messages must come first in a chat")
    return head + list(turns) + chat[len(head) :]


class InContext:
    """``backend`` with ``turns`` in the context of every chat (see the module docstring).

    Other attributes (``exact``, ``show_progress``, ``tokenizer``, ...) are the wrapped
    backend's.
    """

    def __init__(self, backend: Backend, turns: Chat) -> None:
        self._backend = backend
        self.turns = list(turns)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("_backend", "turns"):
            object.__setattr__(self, name, value)
        else:
            setattr(self._backend, name, value)

    @property
    def name(self) -> str:
        return self._backend.name

    def generate(self, chats: Sequence[Chat], sampling: SamplingSpec) -> list[str]:
        return self._backend.generate([with_context(c, self.turns) for c in chats], sampling)

    def score(
        self, chats: Sequence[Chat], continuations: Sequence[str], prefix: str = ""
    ) -> list[float]:
        chats = [with_context(c, self.turns) for c in chats]
        return self._backend.score(chats, continuations, prefix)
