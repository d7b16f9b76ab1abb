"""Emergency-broadcast channel (per-county EBM platforms; play-out receipts)."""

from services.dispatch.channels.broadcast.channel import BroadcastChannel
from services.dispatch.channels.broadcast.config import BroadcastConfig

__all__ = ["BroadcastChannel", "BroadcastConfig"]
