"""Wiring the services together on the memory runtime (one process), and the pieces the
Kafka processes share: publishing through the gate and collecting warnings.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from schemas import topics
from schemas.observations import ObservationBase
from schemas.rejected import RejectedRecord
from schemas.warning import WarningMessage
from services.common.bus.base import Bus, Emit
from services.common.bus.memory import MemoryBus
from services.common.bus.processor import Processor, run_on_bus
from services.common.metrics import Metrics
from services.dispatch.log_channel import WarningDeduplicator
from services.ingest.gate import IngestGate


@dataclass
class IngestCounts:
    received: int = 0
    accepted: int = 0
    rejected: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    accepted_by_kind: dict[str, int] = field(default_factory=dict)


def admit_batch(
    gate: IngestGate,
    batch: Iterable[ObservationBase | bytes] | Iterable[ObservationBase] | Iterable[bytes],
    source: str,
    counts: IngestCounts,
    metrics: Metrics | None = None,
) -> list[Emit]:
    """Pass each item through the gate; return what to publish (observations and rejections)."""
    emits: list[Emit] = []
    for item in batch:
        counts.received += 1
        result = gate.admit(item, source) if isinstance(item, bytes) else gate.admit_model(item, source)
        if isinstance(result, RejectedRecord):
            counts.rejected += 1
            counts.by_reason[result.reason] = counts.by_reason.get(result.reason, 0) + 1
            if metrics:
                metrics.observations_rejected.labels(result.reason).inc()
            emits.append(Emit(topics.OBS_REJECTED, source, result.model_dump_json().encode()))
        else:
            counts.accepted += 1
            kind: str = result.kind
            counts.accepted_by_kind[kind] = counts.accepted_by_kind.get(kind, 0) + 1
            if metrics:
                metrics.observations_accepted.labels(kind).inc()
            emits.append(Emit(topics.OBS_TOPIC_BY_KIND[kind], result.station_id, result.model_dump_json().encode()))
    return emits


async def publish_observations(
    bus: Bus,
    gate: IngestGate,
    batch: Iterable[ObservationBase | bytes] | Iterable[ObservationBase] | Iterable[bytes],
    source: str,
    counts: IngestCounts,
    metrics: Metrics | None = None,
) -> None:
    """Pass each item through the gate and publish it (or its rejection) in one batch."""
    await bus.publish_many(admit_batch(gate, batch, source, counts, metrics))


async def collect_warnings(
    bus: Bus,
    group: str,
    stop: asyncio.Event,
    on_warning: Callable[[WarningMessage], None],
    dedup: WarningDeduplicator | None = None,
) -> None:
    """Consume ``warnings`` and call ``on_warning`` once per message id."""
    seen = dedup or WarningDeduplicator()
    sub = await bus.subscribe([topics.WARNINGS], group=group)
    try:
        while not stop.is_set():
            for record in await sub.getmany(timeout_s=0.05, max_records=1000):
                msg = WarningMessage.model_validate_json(record.value)
                if seen.first_time(msg.state_key):
                    on_warning(msg)
            await sub.commit()
    finally:
        await sub.close()


async def drain(bus: MemoryBus, groups_topics: list[tuple[str, tuple[str, ...]]], timeout_s: float = 30.0) -> None:
    """Wait until every group has committed everything on its topics (memory runtime)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        if all(bus.lag(group, list(tops)) == 0 for group, tops in groups_topics):
            # one more pass: a processor may have just published downstream
            await asyncio.sleep(0.01)
            if all(bus.lag(group, list(tops)) == 0 for group, tops in groups_topics):
                return
        await asyncio.sleep(0.005)
    msg = "pipeline did not drain in time"
    raise TimeoutError(msg)


class MemoryPipeline:
    """All stages in one process on a ``MemoryBus``."""

    def __init__(self, processors: list[Processor], partitions: int = 4) -> None:
        self.bus = MemoryBus(default_partitions=partitions)
        self.processors = processors
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self, on_warning: Callable[[WarningMessage], None]) -> None:
        await self.bus.ensure_topics(topics.ALL_TOPICS, self.bus.default_partitions)
        for proc in self.processors:
            self.tasks.append(asyncio.create_task(run_on_bus(self.bus, proc, self.stop), name=proc.name))
        self.tasks.append(
            asyncio.create_task(collect_warnings(self.bus, "dispatch-log", self.stop, on_warning), name="dispatch")
        )

    async def drain(self) -> None:
        groups = [(p.name, p.topics) for p in self.processors] + [("dispatch-log", (topics.WARNINGS,))]
        await drain(self.bus, groups)

    async def close(self) -> None:
        self.stop.set()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.bus.stop()
