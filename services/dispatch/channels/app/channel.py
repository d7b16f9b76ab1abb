"""Mobile-app push: device tokens in requests of ≤ 500, per-token results, receipts later.

``invalid_token`` is permanent (the app was uninstalled: do not retry, drop the token);
transport errors, 429 and 5xx fail every token of the request as retryable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import httpx

from schemas.delivery import DeliveryJob, DeliveryReceipt
from services.dispatch.channels.app.config import AppPushConfig
from services.dispatch.channels.base import (
    Channel,
    Encoding,
    LimitViolation,
    TargetResult,
    make_receipt,
    provider_time,
)
from services.dispatch.channels.http import HttpFailure, bearer, failure_or_json, post_json
from services.dispatch.render import RenderedMessage

MAX_TOKENS_PER_REQUEST = 500


class AppPushChannel(Channel):
    name: ClassVar[str] = "app"
    max_text_chars: ClassVar[int] = 256
    encoding: ClassVar[Encoding] = "UTF-8"
    max_batch: ClassVar[int] = MAX_TOKENS_PER_REQUEST
    rate_per_s: ClassVar[float] = 0.0
    supports_receipts: ClassVar[bool] = True
    config_model: ClassVar[type[AppPushConfig]] = AppPushConfig

    config: AppPushConfig

    def __init__(self, config: AppPushConfig | None = None, *, client: httpx.AsyncClient | None = None) -> None:
        super().__init__(config or AppPushConfig())
        self._client = client
        self._owns_client = client is None
        self._slots = asyncio.Semaphore(self.config.concurrency)
        self.chunk_size = min(self.config.tokens_per_request, MAX_TOKENS_PER_REQUEST)

    async def start(self) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.config.timeout_s)

    async def close(self) -> None:
        if self._client is not None and self._owns_client:
            await self._client.aclose()
            self._client = None

    def check(self, rendered: RenderedMessage) -> list[LimitViolation]:
        body = rendered.push["body"]
        if len(body) > self.max_text_chars:
            return [LimitViolation("max_text_chars", self.max_text_chars, len(body))]
        return []

    async def send(self, batch: Sequence[DeliveryJob], rendered: RenderedMessage) -> list[TargetResult]:
        if self._client is None:
            await self.start()
        size = self.chunk_size
        parts = await asyncio.gather(*(self._post(batch[i : i + size], rendered) for i in range(0, len(batch), size)))
        return [r for part in parts for r in part]

    async def _post(self, jobs: Sequence[DeliveryJob], rendered: RenderedMessage) -> list[TargetResult]:
        assert self._client is not None
        payload = {
            "tokens": [j.target_id for j in jobs],
            "payload": rendered.push,
            "ref": rendered.message_id,
            "callback_url": self.config.callback_url,
        }
        headers = bearer(self.config.api_key)
        async with self._slots:
            outcome = failure_or_json(await post_json(self._client, f"{self.config.base_url}/push", payload, headers))
        if isinstance(outcome, HttpFailure):
            return [
                TargetResult.failed(
                    j.target_id,
                    self.provider,
                    outcome.reason,
                    retryable=outcome.retryable,
                    retry_after_s=outcome.retry_after_s,
                )
                for j in jobs
            ]
        by_token = {str(r.get("token")): r for r in outcome.get("results", []) if isinstance(r, dict)}
        results = []
        for job in jobs:
            item = by_token.get(job.target_id)
            if item is None:
                results.append(TargetResult.failed(job.target_id, self.provider, "gateway omitted this token"))
            elif item.get("status") == "ok":
                results.append(TargetResult(job.target_id, "submitted", self.provider, str(item.get("id", ""))))
            else:
                reason = str(item.get("reason") or item.get("status") or "rejected")
                results.append(TargetResult.failed(job.target_id, self.provider, reason, retryable=False))
        return results

    def parse_receipts(self, payload: Mapping[str, Any]) -> list[DeliveryReceipt]:
        out = []
        for item in payload.get("receipts", []) or []:
            if not isinstance(item, dict) or not item.get("ref") or not item.get("token"):
                continue
            ok = item.get("status") == "delivered"
            out.append(
                make_receipt(
                    str(item["ref"]),
                    self.name,
                    str(item["token"]),
                    "delivered" if ok else "failed",
                    provider_time(item.get("at")),
                    self.provider,
                    "" if ok else str(item.get("reason") or "failed"),
                )
            )
        return out
