"""The memory runtime keeps the Kafka semantics the services rely on."""

from __future__ import annotations

import asyncio

from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from services.common.bus.base import Emit, partition_for
from services.common.bus.memory import MemoryBus


@given(key=st.text(min_size=1, max_size=40), partitions=st.integers(min_value=1, max_value=64))
def test_partitioner_matches_kafka_default(key: str, partitions: int) -> None:
    expected = DefaultPartitioner()(key.encode("utf-8"), list(range(partitions)), list(range(partitions)))
    assert partition_for(key, partitions) == expected


async def test_same_key_same_partition_in_order() -> None:
    bus = MemoryBus(default_partitions=4)
    await bus.publish_many([Emit("t", f"k{i % 3}", str(i).encode()) for i in range(30)])
    sub = await bus.subscribe(["t"], group="g")
    records = await sub.getmany(timeout_s=0.1, max_records=100)
    assert len(records) == 30
    by_key: dict[str | None, list[int]] = {}
    for r in records:
        assert r.partition == partition_for(r.key or "", 4)
        by_key.setdefault(r.key, []).append(int(r.value))
    for values in by_key.values():
        assert values == sorted(values)


async def test_uncommitted_records_are_redelivered_to_the_next_member() -> None:
    bus = MemoryBus(default_partitions=2)
    await bus.publish_many([Emit("t", f"k{i}", b"x") for i in range(10)])
    first = await bus.subscribe(["t"], group="g")
    got = await first.getmany(timeout_s=0.1)
    assert len(got) == 10
    await first.close()  # dies without committing
    second = await bus.subscribe(["t"], group="g")
    again = await second.getmany(timeout_s=0.1)
    assert sorted((r.partition, r.offset) for r in again) == sorted((r.partition, r.offset) for r in got)
    await second.commit()
    await second.close()
    third = await bus.subscribe(["t"], group="g")
    assert await third.getmany(timeout_s=0.05) == []


async def test_group_members_split_partitions_and_survivor_takes_over() -> None:
    bus = MemoryBus(default_partitions=4)
    a = await bus.subscribe(["t"], group="g")
    b = await bus.subscribe(["t"], group="g")
    await bus.publish_many([Emit("t", f"k{i}", b"x") for i in range(40)])
    got_a = await a.getmany(timeout_s=0.1, max_records=100)
    got_b = await b.getmany(timeout_s=0.1, max_records=100)
    assert {r.partition for r in got_a}.isdisjoint({r.partition for r in got_b})
    assert len(got_a) + len(got_b) == 40
    await a.commit()
    await b.close()  # b dies: its uncommitted records go to a
    rest = await a.getmany(timeout_s=0.1, max_records=100)
    assert sorted((r.partition, r.offset) for r in rest) == sorted((r.partition, r.offset) for r in got_b)


async def test_consumer_wakes_on_publish() -> None:
    bus = MemoryBus()
    sub = await bus.subscribe(["t"], group="g")
    waiter = asyncio.create_task(sub.getmany(timeout_s=2.0))
    await asyncio.sleep(0.01)
    await bus.publish("t", "k", b"v")
    records = await asyncio.wait_for(waiter, 1.0)
    assert [r.value for r in records] == [b"v"]


async def test_namespaces_isolate_pipelines() -> None:
    bus_a, bus_b = MemoryBus(namespace="a."), MemoryBus(namespace="b.")
    await bus_a.publish("t", "k", b"1")
    sub = await bus_a.subscribe(["t"], group="g")
    (record,) = await sub.getmany(timeout_s=0.1)
    assert record.topic == "t"
    other = await bus_b.subscribe(["t"], group="g")
    assert await other.getmany(timeout_s=0.05) == []


async def test_retention_bytes_trims_the_oldest_records_and_moves_the_log_start() -> None:
    bus = MemoryBus(default_partitions=1, retention_bytes=1000)
    await bus.publish_many([Emit("t", "k", bytes(100)) for _ in range(25)])
    sub = await bus.subscribe(["t"], group="g")
    records = await sub.getmany(timeout_s=0.1, max_records=100)
    # ten 100-byte values fit in 1000 bytes: offsets 15..24 remain, a reader starts there
    assert [r.offset for r in records] == list(range(15, 25))
    assert bus.lag("g", ["t"]) == 10
    await sub.commit()
    assert bus.lag("g", ["t"]) == 0
    # one value larger than the limit is still kept (a log never empties itself)
    await bus.publish_many([Emit("t", "k", bytes(5000))])
    assert [r.offset for r in await sub.getmany(timeout_s=0.1)] == [25]
