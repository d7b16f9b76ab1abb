"""Mobile-app push channel (device tokens, ≤ 500 per request; delivery receipts)."""

from services.dispatch.channels.app.channel import AppPushChannel
from services.dispatch.channels.app.config import AppPushConfig

__all__ = ["AppPushChannel", "AppPushConfig"]
