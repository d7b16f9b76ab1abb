"""Emergency-broadcast channel configuration."""

from __future__ import annotations

from pydantic import Field, SecretStr

from services.dispatch.channels.base import ChannelConfig


class BroadcastConfig(ChannelConfig):
    provider: str = "sim-ebm"
    base_url: str = Field(default="http://127.0.0.1:8702", description="platform used for counties not listed below")
    county_urls: dict[str, str] = Field(default_factory=dict, description="county code → its platform's base URL")
    api_key: SecretStr = SecretStr("")
    terminals_per_request: int = Field(default=2000, ge=1, le=5000)
    concurrency: int = Field(default=12, ge=1, description="county platforms addressed in parallel")
    callback_url: str | None = None
