"""Webhook channel configuration: subscribers and the signing key."""

from __future__ import annotations

from pydantic import Field, SecretStr

from services.dispatch.channels.base import ChannelConfig


class WebhookConfig(ChannelConfig):
    provider: str = "webhook"
    subscribers: dict[str, str] = Field(default_factory=dict, description="subscriber id (target_id) → URL")
    key_id: str = Field(
        default="k1", pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="sent so subscribers can rotate keys"
    )
    secret: SecretStr = Field(default=SecretStr(""), description="HMAC-SHA256 key shared with subscribers")
    concurrency: int = Field(default=16, ge=1)
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    include_cap_xml: bool = True
