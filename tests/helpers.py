"""Scenario drivers shared by the memory and Kafka tests (write each scenario once)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from schemas.warning import WarningMessage
from services.common.bus.base import Bus, Record
from services.common.clock import VirtualClock
from services.common.metrics import Metrics
from services.ingest.gate import static_lookup
from services.ingest.simulate.rainband import RainbandScenario, gauges_by_township, observations, stations
from services.pipeline import IngestCounts, MemoryPipeline
from services.replay import replay_ticks
from services.rules.processors import rules_processors

PARITY_LATENESS_S = 6 * 3600


def warning_signature(messages: list[WarningMessage]) -> list[tuple[str, str, str, str]]:
    """Order-free comparable form: one row per message id."""
    rows = {(m.message_id, m.msg_type, m.level, m.sent_at.isoformat()) for m in messages}
    return sorted(rows)


async def memory_run(scenario: RainbandScenario) -> tuple[list[WarningMessage], IngestCounts]:
    warnings: list[WarningMessage] = []
    pipeline = MemoryPipeline(rules_processors(Metrics(), PARITY_LATENESS_S, gauges_by_township(scenario)))
    await pipeline.start(warnings.append)
    counts = IngestCounts()
    await replay_ticks(
        pipeline.bus, observations(scenario), static_lookup(stations(scenario)), VirtualClock(scenario.start), counts
    )
    await pipeline.drain()
    await pipeline.close()
    return warnings, counts


async def read_until_idle(
    bus: Bus,
    topics: list[str],
    group: str,
    idle_s: float,
    max_wait_s: float,
    expect: int | None = None,
    done: Callable[[list[Record]], bool] | None = None,
) -> list[Record]:
    """Consume until nothing new arrived for ``idle_s``, or ``expect`` records, or ``done``."""
    sub = await bus.subscribe(topics, group=group)
    out: list[Record] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_wait_s
    last_new = loop.time()
    try:
        while loop.time() < deadline:
            batch = await sub.getmany(timeout_s=0.2, max_records=2000)
            if batch:
                out.extend(batch)
                last_new = loop.time()
                if expect is not None and len(out) >= expect:
                    break
                if done is not None and done(out):
                    break
            elif out and loop.time() - last_new > idle_s:
                break
        await sub.commit()
    finally:
        await sub.close()
    return out
