"""Feed adapters: vendor payloads → canonical observations, as plug-ins (``earlywarn.feeds``).

See ``base`` for the contract, ``registry`` for discovery, ``docs/integrators.md`` for a
worked example, and ``services.ingest.contract_kit`` for the checks a plug-in must pass.
"""

from services.ingest.feeds.base import DecodedItem, DecodeError, FeedAdapter, build, decode_payload
from services.ingest.feeds.registry import (
    BUILTIN_FEEDS,
    ENTRY_POINT_GROUP,
    FeedPluginError,
    FeedRegistry,
    default_registry,
    load_feed,
)

__all__ = [
    "BUILTIN_FEEDS",
    "ENTRY_POINT_GROUP",
    "DecodeError",
    "DecodedItem",
    "FeedAdapter",
    "FeedPluginError",
    "FeedRegistry",
    "build",
    "decode_payload",
    "default_registry",
    "load_feed",
]
