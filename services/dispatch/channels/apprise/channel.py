"""Duty-group chat / e-mail through Apprise, with one honest result per URL.

Apprise's ``notify()`` answers for all its URLs at once. To keep per-target results, each
target URL gets its **own** ``apprise.Apprise`` instance and its own ``async_notify`` call
(run concurrently), and the outcome maps as:

==========================  =============================================================
Apprise outcome             TargetResult
==========================  =============================================================
SUCCESS                     ``submitted`` — the service accepted the request; Apprise has
                            no delivery receipts, so never ``delivered``
FAILURE / TIMEOUT           ``failed``, retryable, reason = the last Apprise log line
URL rejected by ``add()``   ``failed``, permanent ("unusable Apprise URL"; the URL itself
                            is never logged — it carries credentials)
target id not configured    ``failed``, permanent
==========================  =============================================================
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import ClassVar

import apprise

from schemas.delivery import DeliveryJob
from services.dispatch.channels.apprise.config import AppriseConfig
from services.dispatch.channels.base import Channel, Encoding, TargetResult
from services.dispatch.render import RenderedMessage


class AppriseChannel(Channel):
    name: ClassVar[str] = "apprise"
    max_text_chars: ClassVar[int] = 4000
    encoding: ClassVar[Encoding] = "UTF-8"
    max_batch: ClassVar[int] = 100
    rate_per_s: ClassVar[float] = 0.0
    supports_receipts: ClassVar[bool] = False
    config_model: ClassVar[type[AppriseConfig]] = AppriseConfig

    config: AppriseConfig

    def __init__(self, config: AppriseConfig | None = None) -> None:
        super().__init__(config or AppriseConfig())
        self._slots = asyncio.Semaphore(self.config.concurrency)

    async def send(self, batch: Sequence[DeliveryJob], rendered: RenderedMessage) -> list[TargetResult]:
        return list(await asyncio.gather(*(self._notify(job, rendered) for job in batch)))

    async def _notify(self, job: DeliveryJob, rendered: RenderedMessage) -> TargetResult:
        url = self.config.targets.get(job.target_id)
        if url is None:
            return TargetResult.failed(job.target_id, self.provider, "unknown apprise target", retryable=False)
        notifier = apprise.Apprise()
        if not notifier.add(url.get_secret_value()):
            return TargetResult.failed(job.target_id, self.provider, "unusable Apprise URL", retryable=False)
        async with self._slots:
            result = await notifier.async_notify(
                body=rendered.chat_body[: self.max_text_chars], title=rendered.chat_title, timeout=self.config.timeout_s
            )
        if result.status == apprise.AppriseResultStatus.SUCCESS:
            service = result.results[0].name if result.results else ""
            return TargetResult(job.target_id, "submitted", self.provider, service)
        last = ""
        for entry in result.logs():
            last = str(entry.asdict().get("message", ""))
        reason = f"apprise {result.status.name.lower()}" + (f": {last}" if last else "")
        return TargetResult.failed(job.target_id, self.provider, reason[:300], retryable=True)
