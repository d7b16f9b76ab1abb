"""SMS through an HTTP gateway: batched, paced, prioritised; receipts by callback.

``send`` splits the batch into requests of ``min(batch_size, burst)`` numbers. Every request
waits in a ``PriorityPacer`` (token bucket at ``tps``, ``concurrency`` in flight): the
message's level rank is the priority, so red goes ahead of queued yellow. Each number's
``ref`` is ``<message_id>|<target_id>``; the gateway echoes it in delivery reports, which
``parse_receipts`` turns back into ``DeliveryReceipt``s (``DELIVRD`` → delivered).

``submitted`` means the gateway accepted the number; delivery is known only from the report.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, ClassVar

import httpx

from schemas.delivery import DeliveryJob, DeliveryReceipt
from services.dispatch.channels.base import (
    Channel,
    Encoding,
    LimitViolation,
    TargetResult,
    make_receipt,
    provider_time,
)
from services.dispatch.channels.http import HttpFailure, bearer, failure_or_json, post_json
from services.dispatch.channels.pacing import PriorityPacer, TokenBucket
from services.dispatch.channels.sms.config import SmsConfig
from services.dispatch.render import RenderedMessage

DELIVERED_STATUSES = frozenset({"DELIVRD", "DELIVERED"})


class SmsChannel(Channel):
    name: ClassVar[str] = "sms"
    max_text_chars: ClassVar[int] = 5 * 67
    encoding: ClassVar[Encoding] = "GSM-7/UCS-2"
    max_batch: ClassVar[int] = 1000
    rate_per_s: ClassVar[float] = 200.0
    supports_receipts: ClassVar[bool] = True
    config_model: ClassVar[type[SmsConfig]] = SmsConfig

    config: SmsConfig

    def __init__(
        self,
        config: SmsConfig | None = None,
        *,
        address_of: Callable[[str], str] | None = None,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(config or SmsConfig())
        self._address_of = address_of or (lambda target_id: target_id)
        self._client = client
        self._owns_client = client is None
        burst = self.config.burst
        self.pacer = PriorityPacer(TokenBucket(self.config.tps, burst, clock), self.config.concurrency)
        self.chunk_size = min(self.config.batch_size, burst, self.max_batch)

    async def start(self) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.config.timeout_s)

    async def close(self) -> None:
        if self._client is not None and self._owns_client:
            await self._client.aclose()
            self._client = None

    def check(self, rendered: RenderedMessage) -> list[LimitViolation]:
        out = []
        if rendered.sms.segments > self.config.max_segments:
            out.append(LimitViolation("segments", self.config.max_segments, rendered.sms.segments, rendered.sms.text))
        if len(rendered.sms.text) > self.max_text_chars:
            out.append(LimitViolation("max_text_chars", self.max_text_chars, len(rendered.sms.text)))
        return out

    async def send(self, batch: Sequence[DeliveryJob], rendered: RenderedMessage) -> list[TargetResult]:
        if self._client is None:
            await self.start()
        chunks = [batch[i : i + self.chunk_size] for i in range(0, len(batch), self.chunk_size)]

        def work(chunk: Sequence[DeliveryJob]) -> Callable[[], Awaitable[list[TargetResult]]]:
            return lambda: self._post(chunk, rendered)

        parts = await asyncio.gather(*(self.pacer.run(rendered.priority, len(chunk), work(chunk)) for chunk in chunks))
        return [result for part in parts for result in part]

    async def _post(self, chunk: Sequence[DeliveryJob], rendered: RenderedMessage) -> list[TargetResult]:
        assert self._client is not None
        payload = {
            "text": rendered.sms.text,
            "priority": rendered.priority,
            "callback_url": self.config.callback_url,
            "messages": [{"to": self._address_of(j.target_id), "ref": f"{j.message_id}|{j.target_id}"} for j in chunk],
        }
        headers = bearer(self.config.api_key)
        outcome = failure_or_json(await post_json(self._client, f"{self.config.base_url}/sms/batch", payload, headers))
        if isinstance(outcome, HttpFailure):
            return [
                TargetResult.failed(
                    j.target_id,
                    self.provider,
                    outcome.reason,
                    retryable=outcome.retryable,
                    retry_after_s=outcome.retry_after_s,
                )
                for j in chunk
            ]
        by_ref = {str(r.get("ref")): r for r in outcome.get("results", []) if isinstance(r, dict)}
        results = []
        for job in chunk:
            item = by_ref.get(f"{job.message_id}|{job.target_id}")
            if item is None:
                results.append(TargetResult.failed(job.target_id, self.provider, "gateway omitted this number"))
            elif item.get("status") == "accepted":
                results.append(TargetResult(job.target_id, "submitted", self.provider, str(item.get("id", ""))))
            else:
                reason = str(item.get("reason") or item.get("status") or "rejected")
                results.append(TargetResult.failed(job.target_id, self.provider, reason, retryable=False))
        return results

    def parse_receipts(self, payload: Mapping[str, Any]) -> list[DeliveryReceipt]:
        out = []
        for item in payload.get("receipts", []) or []:
            if not isinstance(item, dict):
                continue
            message_id, sep, target_id = str(item.get("ref", "")).partition("|")
            if not sep or not message_id or not target_id:
                continue
            status = str(item.get("status", ""))
            delivered = status in DELIVERED_STATUSES
            out.append(
                make_receipt(
                    message_id,
                    self.name,
                    target_id,
                    "delivered" if delivered else "failed",
                    provider_time(item.get("done_at")),
                    self.provider,
                    "" if delivered else str(item.get("error") or status),
                )
            )
        return out
