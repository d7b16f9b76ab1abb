"""Shared pieces of the dispatch service tests (no tests here).

Real gateway simulators on loopback, the dispatch service on a ``MemoryBus``, small
deterministic townships and audiences, and readers for the output topics.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from schemas import topics
from schemas.coverage import CoverageReport
from schemas.delivery import DeliveryJob, DeliveryReceipt
from schemas.rejected import RejectedRecord
from schemas.warning import Approval, MessageRef, MsgType, WarningMessage
from services.common.bus.base import Bus
from services.common.bus.memory import MemoryBus
from services.dispatch.gateways import (
    BroadcastGatewayConfig,
    PushGatewayConfig,
    SmsGatewayConfig,
    create_broadcast_gateway,
    create_push_gateway,
    create_sms_gateway,
    run_gateway,
)
from services.dispatch.ledger import progress
from services.dispatch.orchestrator import DispatchSettings, LedgerStore
from services.dispatch.service import DispatchService, synthetic_towns
from services.dispatch.targeting import AudienceData, OfficialsShape, TownshipInfo

TOWNS: dict[str, TownshipInfo] = synthetic_towns(total_population=2_000_000)
CODES: tuple[str, ...] = tuple(sorted(TOWNS))

SMALL_OFFICIALS = OfficialsShape(
    city_officials=2,
    per_county=2,
    per_township=2,
    villages_per_township_min=1,
    villages_per_township_max=2,
    per_village=2,
)


def audience(codes: tuple[str, ...], app_per_township: int = 20, **kw: Any) -> AudienceData:
    return AudienceData(
        app_subscribers=dict.fromkeys(codes, app_per_township),
        people_per_terminal_min=2_000,
        people_per_terminal_max=6_000,
        officials=kw.pop("officials", SMALL_OFFICIALS),
        **kw,
    )


def warning(
    codes: tuple[str, ...],
    *,
    version: int = 1,
    msg_type: MsgType | None = None,
    approval: Approval = "auto",
    level: str = "red",
    sent_at: datetime | None = None,
    valid_for: timedelta = timedelta(hours=6),
    warning_id: str | None = None,
) -> WarningMessage:
    """Version ``version`` of a rainstorm warning over ``codes`` (earlier versions referenced)."""
    sent = sent_at or datetime.now(UTC)
    wid = warning_id or f"rainstorm-{codes[0]}-{sent:%Y%m%dT%H%M%S%f}"
    kind: MsgType = msg_type or ("Alert" if version == 1 else "Update")
    return WarningMessage.model_validate(
        {
            "message_id": f"{wid}.v{version}",
            "warning_id": wid,
            "version": version,
            "msg_type": kind,
            "hazard": "rainstorm",
            "level": level,
            "township_codes": codes,
            "sent_at": sent,
            "onset_at": sent,
            "expires_at": sent + valid_for,
            "references": [
                MessageRef(message_id=f"{wid}.v{v}", sent_at=sent - timedelta(seconds=version - v))
                for v in range(1, version)
            ],
            "headline": f"test rainstorm {level}",
            "approval": approval,
        }
    )


async def publish(bus: Bus, msg: WarningMessage | bytes, key: str = "rainstorm:000000000") -> None:
    if isinstance(msg, WarningMessage):
        await bus.publish(topics.WARNINGS, msg.key, msg.model_dump_json().encode())
    else:
        await bus.publish(topics.WARNINGS, key, msg)


_group_seq = iter(range(1_000_000))


async def read_topic(bus: Bus, topic: str) -> list[bytes]:
    """Everything on ``topic`` so far (a fresh consumer group reads from the start)."""
    sub = await bus.subscribe([topic], group=f"test-reader-{next(_group_seq)}")
    out: list[bytes] = []
    try:
        while batch := await sub.getmany(timeout_s=0.01, max_records=100_000):
            out.extend(r.value for r in batch)
    finally:
        await sub.close()
    return out


async def receipts(bus: Bus) -> list[DeliveryReceipt]:
    return [DeliveryReceipt.model_validate_json(v) for v in await read_topic(bus, topics.RECEIPTS)]


async def jobs(bus: Bus) -> list[DeliveryJob]:
    return [DeliveryJob.model_validate_json(v) for v in await read_topic(bus, topics.DELIVERIES)]


async def rejected(bus: Bus) -> list[RejectedRecord]:
    return [RejectedRecord.model_validate_json(v) for v in await read_topic(bus, topics.OBS_REJECTED)]


async def coverage(bus: Bus) -> list[CoverageReport]:
    return [CoverageReport.model_validate_json(v) for v in await read_topic(bus, topics.COVERAGE)]


def final_states(items: list[DeliveryReceipt], message_id: str | None = None) -> dict[tuple[str, str], str]:
    """(channel, target) → the state with the most progress (the ledger's account)."""
    best: dict[tuple[str, str], DeliveryReceipt] = {}
    for r in items:
        if message_id is not None and r.message_id != message_id:
            continue
        key = (r.channel, r.target_id)
        if key not in best or progress(r.state, r.attempt) > progress(best[key].state, best[key].attempt):
            best[key] = r
    return {k: r.state for k, r in best.items()}


async def delivered_count(bus: Bus, channel: str) -> int:
    """How many targets of ``channel`` the receipts on the bus show as delivered."""
    states = final_states(await receipts(bus))
    return sum(1 for (ch, _), state in states.items() if ch == channel and state == "delivered")


async def wait_for(predicate: Callable[[], bool | Awaitable[bool]], timeout_s: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if not isinstance(value, bool):
            value = await value
        if value:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what or predicate}")


@dataclass
class Gateway:
    url: str
    stop: Callable[[], None]

    async def stats(self) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=5.0) as client:
            body: dict[str, Any] = (await client.get(f"{self.url}/stats")).json()
            return body

    async def control(self, down: bool) -> None:
        async with httpx.AsyncClient(timeout=5.0) as client:
            await client.post(f"{self.url}/control", json={"down": down})


@dataclass
class Gateways:
    sms: Gateway | None = None
    sms_secondary: Gateway | None = None
    push: Gateway | None = None
    broadcast: Gateway | None = None
    extra: list[Gateway] = field(default_factory=list)

    def all(self) -> list[Gateway]:
        return [g for g in (self.sms, self.sms_secondary, self.push, self.broadcast, *self.extra) if g is not None]


async def _serve(app: Any) -> Gateway:
    url, stop = await asyncio.to_thread(run_gateway, app)
    return Gateway(url, stop)


@contextlib.asynccontextmanager
async def gateways(
    *,
    sms: SmsGatewayConfig | None = None,
    sms_secondary: SmsGatewayConfig | None = None,
    push: PushGatewayConfig | None = None,
    broadcast: BroadcastGatewayConfig | None = None,
) -> AsyncIterator[Gateways]:
    out = Gateways()
    try:
        if sms is not None:
            out.sms = await _serve(create_sms_gateway(sms))
        if sms_secondary is not None:
            out.sms_secondary = await _serve(create_sms_gateway(sms_secondary))
        if push is not None:
            out.push = await _serve(create_push_gateway(push))
        if broadcast is not None:
            out.broadcast = await _serve(create_broadcast_gateway(broadcast))
        yield out
    finally:
        for g in out.all():
            await asyncio.to_thread(g.stop)


@contextlib.asynccontextmanager
async def service(
    settings: DispatchSettings,
    *,
    bus: Bus | None = None,
    store: LedgerStore | None = None,
    towns: dict[str, TownshipInfo] | None = None,
) -> AsyncIterator[DispatchService]:
    svc = DispatchService(bus or MemoryBus(), settings, towns or TOWNS, store=store)
    await svc.start()
    try:
        yield svc
    finally:
        await svc.close()


def sealed(svc: DispatchService, message_id: str) -> bool:
    """The message's account is final (sealed and compacted)."""
    meta = svc.dispatcher.ledger.messages.get(message_id)
    return meta is not None and meta.sealed


async def sealed_and_published(svc: DispatchService, message_id: str) -> bool:
    """``sealed``, and the tick that sealed the message has published what it emitted — the
    final coverage report among them (the tick loop holds ``svc.lock`` until its outbox is
    flushed, so a check under the lock never lands between the seal and that flush)."""
    async with svc.lock:
        return sealed(svc, message_id)


def fast_policy(**kw: Any) -> dict[str, Any]:
    """Retry/breaker settings that make failure handling visible within a test's seconds."""
    return {
        "retry": {"base_s": 0.05, "cap_s": 0.5, "max_attempts": 6, "max_attempts_per_provider": 3},
        "breaker": {"failure_threshold": 2, "open_s": 30.0},
        "tick_interval_s": 0.02,
        "coverage_interval_s": 0.2,
        "seal_check_interval_s": 0.1,
        **kw,
    }
