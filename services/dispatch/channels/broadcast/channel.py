"""Emergency broadcast: one EBM per county platform, receipts per terminal as it plays.

``send`` groups the jobs (terminals, ``ebt:<id>``) by county, POSTs the county's EBD
(rendered once per message) with its terminal list to that county's platform, and maps the
platform's per-terminal answer to results. "submitted" means the platform queued the
terminal; "played" receipts (``parse_receipts``) mark it delivered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
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
from services.dispatch.channels.broadcast.config import BroadcastConfig
from services.dispatch.channels.http import HttpFailure, bearer, failure_or_json, post_json
from services.dispatch.render import RenderedMessage


class BroadcastChannel(Channel):
    name: ClassVar[str] = "broadcast"
    max_text_chars: ClassVar[int] = 1000
    encoding: ClassVar[Encoding] = "TTS"
    max_batch: ClassVar[int] = 5000
    rate_per_s: ClassVar[float] = 0.0
    supports_receipts: ClassVar[bool] = True
    config_model: ClassVar[type[BroadcastConfig]] = BroadcastConfig

    config: BroadcastConfig

    def __init__(self, config: BroadcastConfig | None = None, *, client: httpx.AsyncClient | None = None) -> None:
        super().__init__(config or BroadcastConfig())
        self._client = client
        self._owns_client = client is None
        self._slots = asyncio.Semaphore(self.config.concurrency)

    async def start(self) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.config.timeout_s)

    async def close(self) -> None:
        if self._client is not None and self._owns_client:
            await self._client.aclose()
            self._client = None

    def check(self, rendered: RenderedMessage) -> list[LimitViolation]:
        out = []
        for county, ebd in rendered.broadcast.items():
            text = ebd["EBM"]["MsgContent"]["MsgDesc"]
            if len(text) > self.max_text_chars:
                out.append(LimitViolation("max_text_chars", self.max_text_chars, len(text), county))
        return out

    def url_for(self, county: str) -> str:
        return self.config.county_urls.get(county, self.config.base_url)

    async def send(self, batch: Sequence[DeliveryJob], rendered: RenderedMessage) -> list[TargetResult]:
        if self._client is None:
            await self.start()
        by_county: dict[str, list[DeliveryJob]] = {}
        for job in batch:
            by_county.setdefault(job.township_code[:6], []).append(job)
        requests: list[tuple[str, list[DeliveryJob]]] = []
        for county, jobs in by_county.items():
            step = self.config.terminals_per_request
            requests.extend((county, jobs[i : i + step]) for i in range(0, len(jobs), step))
        parts = await asyncio.gather(*(self._post(county, jobs, rendered) for county, jobs in requests))
        results = {r.target_id: r for part in parts for r in part}
        return [results[job.target_id] for job in batch]

    async def _post(self, county: str, jobs: list[DeliveryJob], rendered: RenderedMessage) -> list[TargetResult]:
        assert self._client is not None
        ebd = rendered.broadcast.get(county)
        if ebd is None:
            return [
                TargetResult.failed(j.target_id, self.provider, f"no EBM rendered for county {county}", retryable=False)
                for j in jobs
            ]
        payload: dict[str, Any] = {
            "county_code": county,
            "ebd": ebd,
            "ref": rendered.message_id,
            "terminals": [j.target_id for j in jobs],
            "callback_url": self.config.callback_url,
        }
        headers = bearer(self.config.api_key)
        async with self._slots:
            outcome = failure_or_json(await post_json(self._client, f"{self.url_for(county)}/ebm", payload, headers))
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
        ebm_id = str(outcome.get("ebm_id", ""))
        by_terminal = {str(r.get("terminal")): r for r in outcome.get("results", []) if isinstance(r, dict)}
        results = []
        for job in jobs:
            item = by_terminal.get(job.target_id)
            if item is None:
                results.append(TargetResult.failed(job.target_id, self.provider, "platform omitted this terminal"))
            elif item.get("status") == "accepted":
                results.append(TargetResult(job.target_id, "submitted", self.provider, ebm_id))
            else:
                reason = str(item.get("reason") or "rejected")
                results.append(TargetResult.failed(job.target_id, self.provider, reason, retryable=True))
        return results

    def parse_receipts(self, payload: Mapping[str, Any]) -> list[DeliveryReceipt]:
        out = []
        for item in payload.get("receipts", []) or []:
            if not isinstance(item, dict) or not item.get("ref") or not item.get("terminal"):
                continue
            played = item.get("status") == "played"
            out.append(
                make_receipt(
                    str(item["ref"]),
                    self.name,
                    str(item["terminal"]),
                    "delivered" if played else "failed",
                    provider_time(item.get("at")),
                    self.provider,
                    "" if played else str(item.get("reason") or "failed"),
                )
            )
        return out
