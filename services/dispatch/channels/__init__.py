"""Delivery channels: the ``Channel`` contract, the lazy registry and the built-ins.

Every built-in has the same folder shape ``channels/<name>/{__init__, channel, config,
testing}.py``; shared plumbing (pacing, HTTP error mapping) is in ``pacing.py``/``http.py``.
"""

from services.dispatch.channels.base import (
    Channel,
    ChannelConfig,
    ChannelError,
    LimitViolation,
    PermanentChannelError,
    TargetResult,
    TransientChannelError,
)
from services.dispatch.channels.registry import (
    BUILTIN_CHANNELS,
    ENTRY_POINT_GROUP,
    ChannelPluginError,
    ChannelRegistry,
    default_registry,
    load_channel,
)

__all__ = [
    "BUILTIN_CHANNELS",
    "ENTRY_POINT_GROUP",
    "Channel",
    "ChannelConfig",
    "ChannelError",
    "ChannelPluginError",
    "ChannelRegistry",
    "LimitViolation",
    "PermanentChannelError",
    "TargetResult",
    "TransientChannelError",
    "default_registry",
    "load_channel",
]
