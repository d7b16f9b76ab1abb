"""Webhook channel (JSON POST signed with HMAC-SHA256; ``verify`` for subscribers)."""

from services.dispatch.channels.webhook.channel import (
    SIGNATURE_HEADER,
    SignatureError,
    WebhookChannel,
    sign,
    verify,
    verify_or_raise,
    webhook_body,
)
from services.dispatch.channels.webhook.config import WebhookConfig

__all__ = [
    "SIGNATURE_HEADER",
    "SignatureError",
    "WebhookChannel",
    "WebhookConfig",
    "sign",
    "verify",
    "verify_or_raise",
    "webhook_body",
]
