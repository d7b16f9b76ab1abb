"""Test helpers: a fake broadcast channel and the simulator harness."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

from schemas.delivery import DeliveryJob
from services.dispatch.channels.base import TargetResult
from services.dispatch.channels.broadcast.channel import BroadcastChannel
from services.dispatch.channels.broadcast.config import BroadcastConfig
from services.dispatch.gateways.broadcast import BroadcastGatewayConfig, create_broadcast_gateway
from services.dispatch.gateways.harness import Simulated, simulated_channel
from services.dispatch.render import RenderedMessage


class FakeBroadcastChannel(BroadcastChannel):
    def __init__(self, config: BroadcastConfig | None = None, *, offline: Sequence[str] = ()) -> None:
        super().__init__(config or BroadcastConfig(provider="fake-ebm"))
        self.offline = set(offline)
        self.ebms: list[tuple[str, str]] = []
        """(county, EBMID) per county submitted."""

    async def start(self) -> None:
        return None

    async def send(self, batch: Sequence[DeliveryJob], rendered: RenderedMessage) -> list[TargetResult]:
        for county in sorted({j.township_code[:6] for j in batch}):
            self.ebms.append((county, rendered.broadcast[county]["EBM"]["EBMID"]))
        return [
            TargetResult.failed(j.target_id, self.provider, "terminal offline")
            if j.target_id in self.offline
            else TargetResult(
                j.target_id, "submitted", self.provider, rendered.broadcast[j.township_code[:6]]["EBM"]["EBMID"]
            )
            for j in batch
        ]


@contextlib.asynccontextmanager
async def broadcast_simulator(
    gateway: BroadcastGatewayConfig | None = None, channel: BroadcastConfig | None = None
) -> AsyncIterator[Simulated[BroadcastChannel]]:
    base = channel or BroadcastConfig()

    def make(url: str, callback_url: str) -> BroadcastChannel:
        return BroadcastChannel(base.model_copy(update={"base_url": url, "callback_url": callback_url}))

    async with simulated_channel(create_broadcast_gateway(gateway), make) as sim:
        yield sim
