"""The native engine under heavy batches and failing processors (real broker).

- A batch whose records each take 0.1 s (a radar scan on a busy core) runs 15 s, longer than
  the consumer's 10-s session: the engine gives the event loop a turn between records, so
  the heartbeats go out, the group never rebalances and every offset is committed.
- A processor that raises stops the whole worker: the other runners flush, commit and
  return, and the failure is raised (a worker that hangs half-alive is never restarted).
"""

from __future__ import annotations

import asyncio
import time
from typing import ClassVar

import pytest

from services.common.bus.base import Emit, Record
from services.common.bus.kafka import KafkaBus
from services.common.bus.kafka_processor import KafkaProcessorRunner, run_processors
from services.common.bus.processor import Processor, StateStore
from tests.helpers import read_until_idle

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

RECORDS = 150


class Slow(Processor):
    """Each record blocks the event loop for ``seconds`` (CPU-bound work), then is echoed."""

    name: ClassVar[str] = "slow"
    topics: ClassVar[tuple[str, ...]] = ("heavy.in",)
    outputs: ClassVar[tuple[str, ...]] = ("heavy.out",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def process(self, record: Record, state: StateStore) -> list[Emit]:
        time.sleep(self.seconds)  # blocking on purpose: what a long computation does
        state[record.key or ""] = (state.get(record.key or "") or 0) + 1
        return [Emit("heavy.out", record.key, record.value)]


class Failing(Processor):
    name: ClassVar[str] = "failing"
    topics: ClassVar[tuple[str, ...]] = ("failing.in",)
    outputs: ClassVar[tuple[str, ...]] = ()

    def process(self, record: Record, state: StateStore) -> list[Emit]:
        raise RuntimeError(f"cannot handle {record.key}")


async def publish(bootstrap: str, namespace: str, topic: str, count: int, partitions: int) -> None:
    bus = KafkaBus(bootstrap, namespace=namespace)
    await bus.start()
    try:
        await bus.ensure_topics([topic], partitions)
        await bus.publish_many([Emit(topic, f"k{i:04d}", str(i).encode()) for i in range(count)])
    finally:
        await bus.stop()


async def test_a_long_batch_keeps_the_group_and_commits(kafka_bootstrap: str, namespace: str) -> None:
    await publish(kafka_bootstrap, namespace, "heavy.in", RECORDS, partitions=1)
    runner = KafkaProcessorRunner(kafka_bootstrap, Slow(0.1), partitions=1, namespace=namespace)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    deadline = time.monotonic() + 90
    while runner.processed < RECORDS and time.monotonic() < deadline and not task.done():  # noqa: ASYNC110
        await asyncio.sleep(0.2)
    stop.set()
    await asyncio.wait_for(task, timeout=60)
    assert runner.processed == RECORDS
    assert runner.commit_failures == 0, "the group rebalanced under a long batch"
    bus = KafkaBus(kafka_bootstrap, namespace=namespace)
    await bus.start()
    try:
        out = await read_until_idle(bus, ["heavy.out"], "check", idle_s=1.0, max_wait_s=30, expect=RECORDS)
    finally:
        await bus.stop()
    assert sorted(r.key or "" for r in out) == [f"k{i:04d}" for i in range(RECORDS)]  # each once


async def test_a_failing_processor_stops_the_worker(kafka_bootstrap: str, namespace: str) -> None:
    await publish(kafka_bootstrap, namespace, "failing.in", 3, partitions=2)
    stop = asyncio.Event()
    with pytest.raises(RuntimeError, match="cannot handle"):
        await asyncio.wait_for(run_processors(kafka_bootstrap, [Failing(), Slow(0.0)], 2, namespace, stop), timeout=150)
    assert stop.is_set(), "the other runners were told to stop"
