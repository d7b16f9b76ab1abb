"""App-push channel configuration."""

from __future__ import annotations

from pydantic import Field, SecretStr

from services.dispatch.channels.base import ChannelConfig


class AppPushConfig(ChannelConfig):
    provider: str = "sim-push"
    base_url: str = Field(default="http://127.0.0.1:8703", description="POST {base_url}/push")
    api_key: SecretStr = SecretStr("")
    tokens_per_request: int = Field(default=500, ge=1, le=500, description="the gateway takes at most 500")
    concurrency: int = Field(default=8, ge=1)
    callback_url: str | None = None
