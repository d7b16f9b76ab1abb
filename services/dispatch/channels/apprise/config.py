"""Apprise channel configuration: duty-group targets as Apprise URLs (secrets: they embed tokens)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from services.dispatch.channels.base import ChannelConfig


class AppriseConfig(ChannelConfig):
    provider: str = "apprise"
    targets: dict[str, SecretStr] = Field(
        default_factory=dict, description="target id → Apprise URL (mailto://…, dingtalk://…, json://…)"
    )
    concurrency: int = Field(default=8, ge=1)
