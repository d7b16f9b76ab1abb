"""Start a simulator, a receipt sink and a channel pointed at them — one ``async with``.

Used by each channel's ``testing.py`` (and the integration tests)::

    async with sms_simulator(SmsGatewayConfig(tps=200)) as sim:
        results = await sim.channel.send(jobs, rendered)
        await sim.sink.wait_for_posts(1)
        receipts = sim.receipts()          # parsed by the channel
        stats = await sim.stats()          # GET /stats over HTTP
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx
from fastapi import FastAPI

from schemas.delivery import DeliveryReceipt
from services.dispatch.channels.base import Channel
from services.dispatch.gateways.callback import ReceiptSink, create_receipt_sink
from services.dispatch.gateways.common import GatewaySim, run_gateway

C = TypeVar("C", bound=Channel)


@dataclass
class Simulated(Generic[C]):
    channel: C
    url: str
    sim: GatewaySim
    sink: ReceiptSink
    callback_url: str
    stop_gateway: Callable[[], None]

    def receipts(self) -> list[DeliveryReceipt]:
        """Receipts that arrived since the last call, parsed by the channel."""
        out: list[DeliveryReceipt] = []
        for _, payload in self.sink.take():
            out.extend(self.channel.parse_receipts(payload))
        return out

    async def stats(self) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=5.0) as client:
            response = await client.get(f"{self.url}/stats")
            response.raise_for_status()
            body: dict[str, Any] = response.json()
            return body


@contextlib.asynccontextmanager
async def simulated_channel(app: FastAPI, make_channel: Callable[[str, str], C]) -> AsyncIterator[Simulated[C]]:
    """Serve ``app`` and a receipt sink on loopback; ``make_channel(url, callback_url)``."""
    sink_app, sink = create_receipt_sink()
    sink_url, stop_sink = await asyncio.to_thread(run_gateway, sink_app)
    url, stop = await asyncio.to_thread(run_gateway, app)
    callback_url = f"{sink_url}/receipts"
    channel = make_channel(url, callback_url)
    await channel.start()
    try:
        yield Simulated(channel, url, app.state.sim, sink, callback_url, stop)
    finally:
        await channel.close()
        await asyncio.to_thread(stop)
        await asyncio.to_thread(stop_sink)
