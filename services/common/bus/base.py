"""The bus contract every runtime implements, and the record types that cross it.

Topic names given to a bus are *logical* (``obs.rain``); a bus built with a
``namespace`` maps them to ``<namespace><topic>`` on the wire, so several pipelines
(tests, shadow rule sets) can share one broker without seeing each other.

Delivery is at-least-once on every runtime: a consumer that dies before ``commit`` sees
its records again. Every effect downstream is therefore idempotent (deterministic ids,
keyed state that ignores repeats).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka.partitioner import murmur2


@dataclass(frozen=True, slots=True)
class Record:
    """A record as a consumer sees it."""

    topic: str
    partition: int
    offset: int
    key: str | None
    value: bytes
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class Emit:
    """A record a processor wants published."""

    topic: str
    key: str | None
    value: bytes


def partition_for(key: str, partitions: int) -> int:
    """Kafka's default partitioner (murmur2 of the key bytes), so both runtimes agree."""
    return int(murmur2(key.encode("utf-8")) & 0x7FFFFFFF) % partitions


class Subscription(ABC):
    """A member of a consumer group reading some topics."""

    @abstractmethod
    async def getmany(self, timeout_s: float = 0.5, max_records: int = 500) -> list[Record]:
        """Next records from the assigned partitions, in offset order per partition.

        Returns an empty list after ``timeout_s`` with nothing new.
        """

    @abstractmethod
    async def commit(self) -> None:
        """Commit the position after every record returned so far."""

    @abstractmethod
    async def close(self) -> None:
        """Leave the group; its partitions go to the remaining members."""


class Bus(ABC):
    """Publish and subscribe, independent of the runtime."""

    def __init__(self, namespace: str = "") -> None:
        self.namespace = namespace

    def physical(self, topic: str) -> str:
        return f"{self.namespace}{topic}"

    def logical(self, topic: str) -> str:
        return topic.removeprefix(self.namespace)

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def stop(self) -> None: ...

    @abstractmethod
    async def ensure_topics(self, topics: Sequence[str], partitions: int) -> None:
        """Create the topics if they do not exist (partition count only on creation)."""

    @abstractmethod
    async def publish_many(self, emits: Sequence[Emit]) -> None:
        """Publish a batch; returns once every record is durably accepted."""

    async def publish(self, topic: str, key: str | None, value: bytes) -> None:
        await self.publish_many([Emit(topic, key, value)])

    @abstractmethod
    async def subscribe(self, topics: Sequence[str], group: str) -> Subscription:
        """Join consumer group ``group``; new groups start at the earliest offset."""
