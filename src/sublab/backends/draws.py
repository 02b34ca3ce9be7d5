"""Counter-based random draws for sampling: one uniform per (seed, chat, step, token).

Sampling draws its token by the Gumbel-max trick, ``argmax(logits + G)`` with ``G`` the Gumbel
noise of the chat's own (seed, chat, step) counter. Nothing is drawn from a stateful generator,
so a chat's sample depends only on the seed, its position in the call and the model; and two
models sampled with the same seed on the same prompts share every draw (common random numbers).
The Gumbel-max coupling keeps their tokens equal wherever their next-token distributions are
close, even for flat distributions over many tokens (numbers), where an inverse-CDF coupling
would shift to a neighbouring token at the slightest change of an earlier token's mass. The
difference between the two models' samples is then what differs between the models, which
makes a trait teacher's data and its control data a matched pair.

The hash is SplitMix64's finaliser on int64 tensors (wrapping arithmetic, logical shifts done by
masking), so it runs vectorised on any device.
"""

from __future__ import annotations

import torch

_BITS = 64


def _signed(c: int) -> int:
    """A 64-bit constant as the int64 with the same bits."""
    return c - (1 << _BITS) if c >= 1 << (_BITS - 1) else c


_GOLDEN = _signed(0x9E3779B97F4A7C15)
_MUL1 = _signed(0xBF58476D1CE4E5B9)
_MUL2 = _signed(0x94D049BB133111EB)


def _shift_right(x: torch.Tensor, n: int) -> torch.Tensor:
    """Logical right shift of int64 bits (``>>`` on int64 is arithmetic)."""
    return (x >> n) & ((1 << (_BITS - n)) - 1)


def mix(x: torch.Tensor) -> torch.Tensor:
    """SplitMix64: a well-spread 64-bit hash of each int64 of ``x``."""
    x = x + _GOLDEN
    x = (x ^ _shift_right(x, 30)) * _MUL1
    x = (x ^ _shift_right(x, 27)) * _MUL2
    return x ^ _shift_right(x, 31)


def chat_keys(seed: int, positions: torch.Tensor) -> torch.Tensor:
    """The counter of each chat (by its position in the call) under ``seed`` (a 63-bit int)."""
    return mix(mix(torch.full_like(positions, seed)) + positions)


def step_keys(keys: torch.Tensor, step: int) -> torch.Tensor:
    """The counters of the chats ``keys`` at generation step ``step``."""
    return mix(keys + step)


def uniforms(keys: torch.Tensor, n: int) -> torch.Tensor:
    """``[len(keys), n]`` uniforms in (0, 1), float64: entry (i, t) hashes (keys[i], t)."""
    z = mix(keys[:, None] + torch.arange(n, device=keys.device))
    return (_shift_right(z, 11).double() + 0.5) * 2.0**-53


def gumbel_sample(logits: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """One token per row of ``logits`` [B, V] (any scale; -inf never drawn), drawn as
    ``argmax(logits + Gumbel noise)`` with the noise of each row's counter in ``keys`` [B]:
    exactly a draw from ``softmax(logits)``."""
    noise = -torch.log(-torch.log(uniforms(keys, logits.shape[-1])))
    return (logits.float() + noise.to(torch.float32)).argmax(dim=-1)
