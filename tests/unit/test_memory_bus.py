"""The memory runtime keeps the Kafka semantics the services rely on."""

from __future__ import annotations

import asyncio
from typing import ClassVar

from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from services.common.bus.base import Emit, Record, partition_for
from services.common.bus.memory import MemoryBus
from services.common.bus.processor import Processor, StateStore, run_on_bus


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


# ── global topics: every instance of a processor reads all of them (run_on_bus) ─────────


class _GlobalsSeen(Processor):
    """Emits, per input record, the global values it had seen by then (and where it ran)."""

    name: ClassVar[str] = "globals-seen"
    topics: ClassVar[tuple[str, ...]] = ("in",)
    outputs: ClassVar[tuple[str, ...]] = ("out",)
    global_topics: ClassVar[tuple[str, ...]] = ("ref",)

    def __init__(self, label: str) -> None:
        self.label = label
        self.seen: list[str] = []

    def on_global(self, record: Record) -> None:
        self.seen.append(record.value.decode())

    def process(self, record: Record, state: StateStore) -> list[Emit]:
        body = f"{self.label}|{record.partition}|{','.join(sorted(self.seen))}"
        return [Emit("out", record.key, body.encode())]


async def _outputs(bus: MemoryBus, count: int) -> list[str]:
    sub = await bus.subscribe(["out"], group=f"reader-{count}")
    got: list[str] = []
    for _ in range(200):
        got += [r.value.decode() for r in await sub.getmany(timeout_s=0.02, max_records=1000)]
        if len(got) >= count:
            break
    await sub.close()
    return got


async def test_global_topic_reaches_every_instance_whatever_partitions_it_owns() -> None:
    """Two instances share the input's 4 partitions; both know both globals (2 partitions)."""
    bus = MemoryBus(default_partitions=4)
    await bus.ensure_topics(["ref"], 2)
    await bus.publish_many([Emit("ref", "storm-a", b"a1"), Emit("ref", "storm-b", b"b1")])
    assert {partition_for("storm-a", 2), partition_for("storm-b", 2)} == {0, 1}  # both partitions used
    stop = asyncio.Event()
    first, second = _GlobalsSeen("first"), _GlobalsSeen("second")
    tasks = [asyncio.create_task(run_on_bus(bus, p, stop)) for p in (first, second)]
    await asyncio.sleep(0.05)
    await bus.publish_many([Emit("in", f"station-{i}", b"obs") for i in range(40)])
    out = await _outputs(bus, 40)
    stop.set()
    await asyncio.gather(*tasks)
    assert len(out) == 40
    by_instance: dict[str, set[str]] = {}
    for line in out:
        label, partition, seen = line.split("|")
        assert seen == "a1,b1"
        by_instance.setdefault(label, set()).add(partition)
    assert set(by_instance) == {"first", "second"}  # the group split the input ...
    assert not by_instance["first"] & by_instance["second"]  # ... and each saw every global


async def test_global_published_before_an_input_record_is_applied_first_and_reread_on_restart() -> None:
    bus = MemoryBus(default_partitions=2)
    stop = asyncio.Event()
    running = _GlobalsSeen("running")
    task = asyncio.create_task(run_on_bus(bus, running, stop))
    await asyncio.sleep(0.02)
    await bus.publish_many([Emit("ref", "storm-a", b"a1"), Emit("in", "station-1", b"obs")])
    out = await _outputs(bus, 1)
    await bus.publish_many([Emit("ref", "storm-a", b"a2"), Emit("in", "station-1", b"obs")])
    out += (await _outputs(bus, 2))[1:]
    stop.set()
    await task
    assert [line.split("|")[2] for line in out] == ["a1", "a1,a2"]
    # a restarted instance (fresh memory) reads the global topic from the beginning again
    stop = asyncio.Event()
    restarted = _GlobalsSeen("restarted")
    task = asyncio.create_task(run_on_bus(bus, restarted, stop))
    await bus.publish_many([Emit("in", "station-2", b"obs")])
    for _ in range(100):
        if bus.lag("globals-seen", ["in"]) == 0:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await task
    assert restarted.seen == ["a1", "a2"]


async def test_processor_without_global_topics_opens_no_extra_group() -> None:
    bus = MemoryBus(default_partitions=2)
    stop = asyncio.Event()

    class Plain(_GlobalsSeen):
        name: ClassVar[str] = "plain"
        global_topics: ClassVar[tuple[str, ...]] = ()

    task = asyncio.create_task(run_on_bus(bus, Plain("plain"), stop))
    await asyncio.sleep(0.02)
    stop.set()
    await task
    assert sorted(bus._groups) == ["plain"]  # white-box: no global reader group
