"""Channels: the carriers of hidden traits (number sequences, code, chain-of-thought).

See :mod:`sublab.channels.base` for what a channel is; every module of this package defines
one and registers it by name.
"""

from sublab.channels.base import (
    CHANNELS,
    Channel,
    ChannelData,
    ChannelSpec,
    Check,
    Prompt,
    channel_names,
    default_data,
    get_channel,
    register_channel,
)

__all__ = [
    "CHANNELS",
    "Channel",
    "ChannelData",
    "ChannelSpec",
    "Check",
    "Prompt",
    "channel_names",
    "default_data",
    "get_channel",
    "register_channel",
]
