"""Test helpers for integrators: a fake SMS channel and a ready simulator harness.

- ``FakeSmsChannel``: the real contract without HTTP; records what was sent, fails the
  targets you name, and hands out delivery receipts for what it accepted.
- ``sms_simulator(...)``: the real ``SmsChannel`` against the gateway simulator on
  loopback, with a receipt sink (see ``services.dispatch.gateways.harness``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence

from schemas.common import utc_now
from schemas.delivery import DeliveryJob, DeliveryReceipt
from services.dispatch.channels.base import TargetResult, make_receipt
from services.dispatch.channels.sms.channel import SmsChannel
from services.dispatch.channels.sms.config import SmsConfig
from services.dispatch.gateways.harness import Simulated, simulated_channel
from services.dispatch.gateways.sms import SmsGatewayConfig, create_sms_gateway
from services.dispatch.render import RenderedMessage


class FakeSmsChannel(SmsChannel):
    def __init__(self, config: SmsConfig | None = None, *, fail_targets: Sequence[str] = ()) -> None:
        super().__init__(config or SmsConfig(provider="fake-sms"))
        self.fail_targets = set(fail_targets)
        self.sent: list[tuple[str, str, str]] = []
        """(message_id, target_id, text) per accepted target."""

    async def start(self) -> None:
        return None

    async def send(self, batch: Sequence[DeliveryJob], rendered: RenderedMessage) -> list[TargetResult]:
        out = []
        for job in batch:
            if job.target_id in self.fail_targets:
                out.append(TargetResult.failed(job.target_id, self.provider, "fake failure", retryable=True))
                continue
            self.sent.append((job.message_id, job.target_id, rendered.sms.text))
            out.append(TargetResult(job.target_id, "submitted", self.provider, f"fake-{len(self.sent)}"))
        return out

    def delivery_receipts(self) -> list[DeliveryReceipt]:
        now = utc_now()
        return [make_receipt(m, self.name, t, "delivered", now, self.provider) for m, t, _ in self.sent]


@contextlib.asynccontextmanager
async def sms_simulator(
    gateway: SmsGatewayConfig | None = None,
    channel: SmsConfig | None = None,
    address_of: Callable[[str], str] | None = None,
) -> AsyncIterator[Simulated[SmsChannel]]:
    base = channel or SmsConfig()

    def make(url: str, callback_url: str) -> SmsChannel:
        return SmsChannel(
            base.model_copy(update={"base_url": url, "callback_url": callback_url}), address_of=address_of
        )

    async with simulated_channel(create_sms_gateway(gateway), make) as sim:
        yield sim
