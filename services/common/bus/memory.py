"""The embedded ``memory://`` runtime: an in-process partitioned log.

It keeps Kafka's semantics that the services rely on, so code that works here works on
Kafka:

1. A topic has N partitions; a keyed record goes to ``murmur2(key) % N`` (Kafka's rule).
2. Each partition is an append-only log with increasing offsets; the oldest records are
   trimmed past ``retention_records`` or ``retention_bytes`` of values (Kafka's
   ``retention.bytes``; the log start offset moves up).
3. A consumer group spreads the partitions over its members (sorted round-robin) and
   rebalances when a member joins or leaves; a new member resumes at the group's
   committed offset, so uncommitted records are delivered again (at-least-once).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from services.common.bus.base import Bus, Emit, Record, Subscription, partition_for


@dataclass
class _Partition:
    log: deque[Record] = field(default_factory=deque)
    start_offset: int = 0
    next_offset: int = 0
    value_bytes: int = 0


@dataclass
class _Topic:
    partitions: list[_Partition]


class _Group:
    def __init__(self, name: str) -> None:
        self.name = name
        self.members: list[MemorySubscription] = []
        self.committed: dict[tuple[str, int], int] = {}


class MemoryBus(Bus):
    def __init__(
        self,
        namespace: str = "",
        default_partitions: int = 4,
        retention_records: int = 200_000,
        retention_bytes: int | None = None,
    ) -> None:
        super().__init__(namespace)
        self.default_partitions = default_partitions
        self.retention_records = retention_records
        self.retention_bytes = retention_bytes
        self._topics: dict[str, _Topic] = {}
        self._groups: dict[str, _Group] = {}
        self._waiters: set[asyncio.Event] = set()

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        for group in list(self._groups.values()):
            for member in list(group.members):
                await member.close()

    def _topic(self, name: str, partitions: int | None = None) -> _Topic:
        topic = self._topics.get(name)
        if topic is None:
            count = partitions or self.default_partitions
            topic = _Topic([_Partition() for _ in range(count)])
            self._topics[name] = topic
        return topic

    async def ensure_topics(self, topics: Sequence[str], partitions: int) -> None:
        for name in topics:
            self._topic(self.physical(name), partitions)

    async def publish_many(self, emits: Sequence[Emit]) -> None:
        if not emits:
            return
        now_ms = int(time.time() * 1000)
        for emit in emits:
            name = self.physical(emit.topic)
            topic = self._topic(name)
            count = len(topic.partitions)
            index = partition_for(emit.key, count) if emit.key is not None else (now_ms % count)
            part = topic.partitions[index]
            part.log.append(Record(name, index, part.next_offset, emit.key, emit.value, now_ms))
            part.next_offset += 1
            part.value_bytes += len(emit.value)
            limit_bytes = self.retention_bytes
            while len(part.log) > 1 and (
                len(part.log) > self.retention_records or (limit_bytes is not None and part.value_bytes > limit_bytes)
            ):
                part.value_bytes -= len(part.log.popleft().value)
                part.start_offset += 1
        for waiter in self._waiters:
            waiter.set()
        # Yield so that consumers interleave with a fast producer, as on a real broker.
        await asyncio.sleep(0)

    async def subscribe(self, topics: Sequence[str], group: str) -> Subscription:
        grp = self._groups.setdefault(group, _Group(group))
        sub = MemorySubscription(self, grp, [self.physical(t) for t in topics])
        grp.members.append(sub)
        self._rebalance(grp)
        return sub

    def _rebalance(self, group: _Group) -> None:
        wanted = sorted({t for m in group.members for t in m.topics})
        slots = [(t, p) for t in wanted for p in range(len(self._topic(t).partitions))]
        for member in group.members:
            member.assigned = {}
        live = sorted(group.members, key=lambda m: m.member_id)
        for i, slot in enumerate(slots):
            candidates = [m for m in live if slot[0] in m.topics]
            if candidates:
                owner = candidates[i % len(candidates)]
                owner.assigned[slot] = group.committed.get(slot, 0)

    def lag(self, group: str, topics: Sequence[str]) -> int:
        """Records not yet committed by ``group`` on ``topics`` (for barriers and tests)."""
        grp = self._groups.get(group)
        total = 0
        for name in topics:
            topic = self._topic(self.physical(name))
            for index, part in enumerate(topic.partitions):
                committed = grp.committed.get((self.physical(name), index), 0) if grp else 0
                total += part.next_offset - max(committed, part.start_offset)
        return total


_member_seq = 0


class MemorySubscription(Subscription):
    def __init__(self, bus: MemoryBus, group: _Group, topics: list[str]) -> None:
        global _member_seq
        _member_seq += 1
        self.member_id = _member_seq
        self.bus = bus
        self.group = group
        self.topics = topics
        self.assigned: dict[tuple[str, int], int] = {}
        self._event = asyncio.Event()
        bus._waiters.add(self._event)
        self._closed = False

    def _drain(self, max_records: int) -> list[Record]:
        out: list[Record] = []
        for slot, position in self.assigned.items():
            if len(out) >= max_records:
                break
            part = self.bus._topic(slot[0]).partitions[slot[1]]
            start = max(position, part.start_offset)
            begin = start - part.start_offset
            end = min(len(part.log), begin + (max_records - len(out)))
            for i in range(begin, end):
                record = part.log[i]
                out.append(Record(self.bus.logical(record.topic), *_tail(record)))
            self.assigned[slot] = start + (end - begin)
        return out

    async def getmany(self, timeout_s: float = 0.5, max_records: int = 500) -> list[Record]:
        if self._closed:
            return []
        records = self._drain(max_records)
        if records:
            return records
        self._event.clear()
        try:
            await asyncio.wait_for(self._event.wait(), timeout_s)
        except TimeoutError:
            return []
        return self._drain(max_records)

    async def commit(self) -> None:
        for slot, position in self.assigned.items():
            self.group.committed[slot] = position

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.bus._waiters.discard(self._event)
        if self in self.group.members:
            self.group.members.remove(self)
            self.bus._rebalance(self.group)


def _tail(record: Record) -> tuple[int, int, str | None, bytes, int]:
    return record.partition, record.offset, record.key, record.value, record.timestamp_ms
