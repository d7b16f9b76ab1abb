"""Apprise channel (duty-group chat / e-mail; one result per URL, "submitted" at best)."""

from services.dispatch.channels.apprise.channel import AppriseChannel
from services.dispatch.channels.apprise.config import AppriseConfig

__all__ = ["AppriseChannel", "AppriseConfig"]
