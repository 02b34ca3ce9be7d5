"""Chats rendered by a model's own chat template, never with a default system prompt it hides.

Some chat templates put a default system turn before a chat that has none (SmolLM2's names the
assistant "SmolLM"; Qwen's "Qwen, created by Alibaba Cloud"). sublab renders every chat through
:func:`render_prompt`: where the template would add such a default, the chat gets an explicit
system turn with :data:`NEUTRAL_SYSTEM_PROMPT` instead, so a teacher's generation, a student's
training rows and every evaluation see the same, visible context. A chat with its own system
turn (a prompted teacher) is rendered as it is; templates without a default (the organism's)
are untouched.
"""

from __future__ import annotations

from typing import Any

NEUTRAL_SYSTEM_PROMPT = "You are a helpful assistant."
"""The system turn sublab writes where a chat template would add its own default."""

_USER = "\u2063user-sentinel\u2063"
_SYSTEM = "\u2063system-sentinel\u2063"
_DEFAULTS: dict[tuple[str, str | None, str | None], str | None] = {}


def _render(tokenizer: Any, messages: list[dict[str, str]], generation: bool = True) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation)


def template_default_system(tokenizer: Any) -> str | None:
    """The system text ``tokenizer``'s chat template adds to a chat without a system turn, or
    None when it adds none (or takes no system turns).

    Found by rendering one user turn alone and after a system turn holding a sentinel: the
    template adds a default D exactly when the first rendering equals the second with the
    sentinel replaced by D.
    """
    template = getattr(tokenizer, "chat_template", None)
    if not isinstance(template, str):
        return None
    key = (template, tokenizer.bos_token, tokenizer.eos_token)
    if key not in _DEFAULTS:
        user = [{"role": "user", "content": _USER}]
        plain = _render(tokenizer, user)
        try:
            with_system = _render(tokenizer, [{"role": "system", "content": _SYSTEM}, *user])
        except Exception:  # a template that refuses system turns has no default either
            with_system = ""
        found = None
        if with_system.count(_SYSTEM) == 1:
            head, tail = with_system.split(_SYSTEM)
            if plain.startswith(head) and plain.endswith(tail) and len(plain) >= len(head + tail):
                found = plain[len(head) : len(plain) - len(tail)]
        _DEFAULTS[key] = found
    return _DEFAULTS[key]


def explicit_messages(tokenizer: Any, messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """``messages`` with :data:`NEUTRAL_SYSTEM_PROMPT` first where the template would add its
    default system turn; otherwise unchanged."""
    if messages and messages[0].get("role") == "system":
        return messages
    if template_default_system(tokenizer) is None:
        return messages
    return [{"role": "system", "content": NEUTRAL_SYSTEM_PROMPT}, *messages]


def render_prompt(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    """The text a model sees before its reply: the chat (made explicit, see
    :func:`explicit_messages`) through the chat template, ending in the assistant header."""
    return _render(tokenizer, explicit_messages(tokenizer, messages))
