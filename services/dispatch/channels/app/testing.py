"""Test helpers: a fake push channel (records request sizes) and the simulator harness."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

from schemas.delivery import DeliveryJob
from services.dispatch.channels.app.channel import AppPushChannel
from services.dispatch.channels.app.config import AppPushConfig
from services.dispatch.channels.base import TargetResult
from services.dispatch.gateways.harness import Simulated, simulated_channel
from services.dispatch.gateways.push import PushGatewayConfig, create_push_gateway
from services.dispatch.render import RenderedMessage


class FakeAppPushChannel(AppPushChannel):
    def __init__(self, config: AppPushConfig | None = None, *, invalid_tokens: Sequence[str] = ()) -> None:
        super().__init__(config or AppPushConfig(provider="fake-push"))
        self.invalid_tokens = set(invalid_tokens)
        self.request_sizes: list[int] = []

    async def start(self) -> None:
        return None

    async def send(self, batch: Sequence[DeliveryJob], rendered: RenderedMessage) -> list[TargetResult]:
        out: list[TargetResult] = []
        for i in range(0, len(batch), self.chunk_size):
            chunk = batch[i : i + self.chunk_size]
            self.request_sizes.append(len(chunk))
            out.extend(
                TargetResult.failed(j.target_id, self.provider, "unregistered", retryable=False)
                if j.target_id in self.invalid_tokens
                else TargetResult(j.target_id, "submitted", self.provider, f"fake-{j.target_id[-8:]}")
                for j in chunk
            )
        return out


@contextlib.asynccontextmanager
async def push_simulator(
    gateway: PushGatewayConfig | None = None, channel: AppPushConfig | None = None
) -> AsyncIterator[Simulated[AppPushChannel]]:
    base = channel or AppPushConfig()

    def make(url: str, callback_url: str) -> AppPushChannel:
        return AppPushChannel(base.model_copy(update={"base_url": url, "callback_url": callback_url}))

    async with simulated_channel(create_push_gateway(gateway), make) as sim:
        yield sim
