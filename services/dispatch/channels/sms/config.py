"""SMS channel configuration (defaults stated here, secrets as ``SecretStr``)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from services.dispatch.channels.base import ChannelConfig


class SmsConfig(ChannelConfig):
    provider: str = "sim-sms"
    base_url: str = Field(default="http://127.0.0.1:8701", description="gateway root; POST {base_url}/sms/batch")
    api_key: SecretStr = SecretStr("")
    tps: float = Field(default=200.0, gt=0, description="numbers/s we send; keep ≤ the provider's contracted TPS")
    burst: int = Field(default=100, ge=1, description="token-bucket capacity; keep ≤ the provider's burst")
    batch_size: int = Field(default=100, ge=1, le=1000, description="numbers per request (≤ burst is enforced)")
    concurrency: int = Field(default=4, ge=1, description="requests in flight")
    max_segments: int = Field(default=3, ge=1, le=5, description="longest text we pay for, in segments")
    callback_url: str | None = Field(default=None, description="where the gateway POSTs delivery reports")
