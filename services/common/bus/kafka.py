"""The ``kafka://`` runtime for plain producers and consumers (aiokafka).

Stateful stream processors run on faust (``services.common.bus.faust_runtime``); this
module serves ingest (produce), dispatch and the console (consume), benchmarks and tests.
Producers use ``acks=all`` with idempotence, so a retried send is not written twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from services.common.bus.base import Bus, Emit, Record, Subscription


class KafkaBus(Bus):
    def __init__(self, bootstrap: str, namespace: str = "", linger_ms: int = 5) -> None:
        super().__init__(namespace)
        self.bootstrap = bootstrap
        self.linger_ms = linger_ms
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=self.linger_ms,
            max_batch_size=256 * 1024,
            compression_type=None,
        )
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def ensure_topics(self, topics: Sequence[str], partitions: int) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            new = [
                NewTopic(self.physical(t), num_partitions=partitions, replication_factor=1)
                for t in topics
                if self.physical(t) not in existing
            ]
            if new:
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics(new)
        finally:
            await admin.close()

    async def publish_many(self, emits: Sequence[Emit]) -> None:
        if self._producer is None:
            msg = "KafkaBus.start() must be awaited before publishing"
            raise RuntimeError(msg)
        futures = [
            await self._producer.send(
                self.physical(e.topic),
                value=e.value,
                key=e.key.encode("utf-8") if e.key is not None else None,
            )
            for e in emits
        ]
        if futures:
            await asyncio.gather(*futures)

    async def subscribe(self, topics: Sequence[str], group: str) -> Subscription:
        consumer = AIOKafkaConsumer(
            *[self.physical(t) for t in topics],
            bootstrap_servers=self.bootstrap,
            group_id=f"{self.namespace}{group}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=2000,
            session_timeout_ms=10_000,
            heartbeat_interval_ms=1_000,
        )
        await consumer.start()
        return KafkaSubscription(self, consumer)


class KafkaSubscription(Subscription):
    def __init__(self, bus: KafkaBus, consumer: AIOKafkaConsumer) -> None:
        self.bus = bus
        self.consumer = consumer

    async def getmany(self, timeout_s: float = 0.5, max_records: int = 500) -> list[Record]:
        batches = await self.consumer.getmany(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        out: list[Record] = []
        for tp, messages in batches.items():
            logical = self.bus.logical(tp.topic)
            for m in messages:
                key = m.key.decode("utf-8") if m.key is not None else None
                out.append(Record(logical, tp.partition, m.offset, key, m.value or b"", m.timestamp))
        return out

    async def commit(self) -> None:
        await self.consumer.commit()

    async def close(self) -> None:
        await self.consumer.stop()

    def assignment(self) -> set[TopicPartition]:
        return set(self.consumer.assignment())
