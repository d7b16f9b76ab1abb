"""The native Kafka engine for stateful processors: aiokafka plus a changelog per processor.

Same contract as faust's tables, with every step in our hands:

1. A processor is a consumer group (``<namespace>earlywarn-<processor.name>``) over its
   input topics; N workers share the partitions.
2. Its state lives in per-partition dicts, backed by a compacted changelog topic
   ``<namespace>earlywarn-<processor.name>-changelog`` with the same partition count: the
   state entry for a key written while handling a record of partition p goes to changelog
   partition p (inputs are keyed, so a key always lives in one partition). Entries are
   strict JSON written and read with orjson (a rain gauge's 12-h window is ~13 kB; the
   standard library's encoder took ~4× as long, its decoder ~19×, decision 25).
3. On assignment, each newly assigned partition's state is rebuilt by reading its changelog
   partition from the beginning to the end offset, before any input of it is processed.
4. Per batch: process every record, then send the emits as one producer batch per (topic,
   partition) — Kafka's key→partition rule applied here, no per-message await — and wait
   until all are acknowledged (acks=all, idempotent producer). Every ``commit_interval_s``
   (and whenever the runner has caught up, on revocation and on stop): send the changelog
   entry of each key written since the last commit, wait for it, and only then commit the
   input offsets. A key written by many records in between costs one entry.
   A batch gives the event loop a turn every ``YIELD_EVERY_S`` of processing, so heavy
   records (radar scans) cannot starve the heartbeats into a rebalance; a commit refused
   because the group rebalanced anyway is logged and counted (``commit_failures``), and
   the records are processed again by their partition's next owner.
5. A worker killed anywhere in (4) leaves its input uncommitted: the next owner replays it
   against state that is at least as new as the last commit, which the processors'
   idempotence makes harmless (see ``Processor.process``).
6. Global topics (``Processor.global_topics``, e.g. storm advisories): a second consumer
   *without* a group, every partition assigned, from the earliest offset (the topic is its
   own changelog, like a faust GlobalTable). Before the group consumer starts, it reads
   up to the end offsets taken at start, so a (re)started worker knows every advisory
   published before it came up. Then, under the batch lock and after each input batch is
   fetched, whatever it has fetched meanwhile goes to ``on_global`` before the batch is
   processed. Race: an advisory produced just before an observation may still be in
   flight when that observation's batch is fetched; it is then applied to the next batch
   (the observation was judged with the previous advisory, as if it had arrived later).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import CommitFailedError, KafkaTimeoutError, TopicAlreadyExistsError

from services.common.bus.base import Record, partition_for
from services.common.bus.processor import Processor
from services.common.logging import get_logger

log = get_logger(__name__)


def _encode(value: Any) -> bytes:
    encoded: bytes = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    return encoded


COMMIT_INTERVAL_S = 1.0
"""How often a runner writes its changelog and commits (and always when it has caught up):
a key written many times in that interval costs one changelog entry, as in Kafka Streams'
commit interval. The emits of each batch go out at once."""
STOP_GRACE_S = 30.0
"""How long the other runners of a worker get to flush and commit after one has failed."""
SEND_ATTEMPTS = 5
"""Times a producer batch that found the send queue full is offered again (each waits up to
the producer's request timeout) before the runner fails."""
YIELD_EVERY_S = 0.2
"""Longest stretch a batch is processed without giving the event loop (the consumers'
heartbeats, every 1 s, session timeout 10 s) a turn."""


class _TrackingState:
    """A partition's state dict that remembers which keys were written."""

    def __init__(self, data: dict[str, Any], dirty: set[str]) -> None:
        self.data = data
        self.dirty = dirty

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def __setitem__(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.dirty.add(key)

    def __delitem__(self, key: str) -> None:
        self.data.pop(key, None)
        self.dirty.add(key)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka ships no type hints
    def __init__(self, runner: KafkaProcessorRunner) -> None:
        self.runner = runner

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        # The lock waits for a batch in flight: its state, emits and offsets go out whole.
        async with self.runner.lock:
            await self.runner.flush_and_commit()
            for tp in revoked:
                self.runner.drop_partition(tp.partition)

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        async with self.runner.lock:
            await self.runner.restore({tp.partition for tp in assigned})


class GlobalReader:
    """Every partition of some topics, from the beginning, outside any consumer group."""

    def __init__(
        self,
        bootstrap: str,
        topics: Sequence[str],
        namespace: str,
        processor: Processor,
        create_partitions: int | None = None,
    ) -> None:
        """``create_partitions``: create a missing topic with this many partitions (else wait for it)."""
        self.bootstrap = bootstrap
        self.create_partitions = create_partitions
        self.topics = [f"{namespace}{t}" for t in topics]
        self.namespace = namespace
        self.processor = processor
        self.read = 0
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        """Assign every partition, seek to the beginning and read up to the end offsets."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest"
        )
        await consumer.start()
        self._consumer = consumer
        tps = [
            TopicPartition(topic, p) for topic, count in (await self._partition_counts()).items() for p in range(count)
        ]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        behind = {tp for tp in tps if ends[tp] > 0}
        while behind:
            batches = await consumer.getmany(*behind, timeout_ms=500)
            self._apply(batches)
            for tp in list(behind):
                if await consumer.position(tp) >= ends[tp]:
                    behind.discard(tp)
        log.info("global topics read", processor=self.processor.name, topics=self.topics, records=self.read)

    async def _partition_counts(self) -> dict[str, int]:
        """Partitions of each global topic (metadata may lag a topic just created: retried)."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            if self.create_partitions is not None:
                missing = set(self.topics) - set(await admin.list_topics())
                if missing:
                    with contextlib.suppress(TopicAlreadyExistsError):
                        await admin.create_topics(
                            [NewTopic(t, num_partitions=self.create_partitions, replication_factor=1) for t in missing]
                        )
            for attempt in range(1, 21):
                described = await admin.describe_topics(self.topics)
                counts = {t["topic"]: len(t["partitions"]) for t in described if t.get("error_code", 0) == 0}
                if all(counts.get(t) for t in self.topics):
                    return counts
                await asyncio.sleep(0.1 * attempt)
        finally:
            await admin.close()
        msg = f"global topics {self.topics}: no partition metadata"
        raise RuntimeError(msg)

    async def drain(self) -> None:
        """Apply whatever has been fetched since the last call (no waiting)."""
        while await self.poll(0):
            pass

    async def poll(self, timeout_ms: int) -> int:
        """Wait up to ``timeout_ms`` for records and apply them; how many there were."""
        assert self._consumer is not None
        batches = await self._consumer.getmany(timeout_ms=timeout_ms)
        before = self.read
        self._apply(batches)
        return self.read - before

    def _apply(self, batches: dict[TopicPartition, list[Any]]) -> None:
        for tp, messages in batches.items():
            topic = tp.topic.removeprefix(self.namespace)
            for m in messages:
                key = m.key.decode("utf-8") if m.key is not None else None
                record = Record(topic, tp.partition, m.offset, key, m.value or b"", m.timestamp)
                self.processor.on_global(record)
                self.read += 1

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None


class KafkaProcessorRunner:
    def __init__(
        self,
        bootstrap: str,
        processor: Processor,
        partitions: int,
        namespace: str = "",
        max_records: int = 1000,
        commit_interval_s: float = COMMIT_INTERVAL_S,
    ) -> None:
        self.bootstrap = bootstrap
        self.commit_interval_s = commit_interval_s
        self.processor = processor
        self.partitions = partitions
        self.namespace = namespace
        self.max_records = max_records
        self.group = f"{namespace}earlywarn-{processor.name}"
        self.changelog = f"{self.group}-changelog"
        self.state: dict[int, dict[str, Any]] = {}
        self._pending: dict[TopicPartition, int] = {}
        self._dirty: dict[int, set[str]] = {}
        """partition → state keys written since their changelog entries were last sent"""
        self._last_commit = time.monotonic()
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._global: GlobalReader | None = None
        self.processed = 0
        self.commit_failures = 0
        self.lock = asyncio.Lock()

    async def _ensure_topics(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            wanted = [
                NewTopic(f"{self.namespace}{t}", num_partitions=self.partitions, replication_factor=1)
                for t in (*self.processor.topics, *self.processor.outputs, *self.processor.global_topics)
            ]
            wanted.append(
                NewTopic(
                    self.changelog,
                    num_partitions=self.partitions,
                    replication_factor=1,
                    topic_configs={"cleanup.policy": "compact"},
                )
            )
            new = [t for t in wanted if t.name not in existing]
            if new:
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics(new)
        finally:
            await admin.close()

    async def restore(self, partitions: set[int]) -> None:
        """Rebuild the state of newly assigned partitions from the changelog (with retries)."""
        fresh = sorted(p for p in partitions if p not in self.state)
        if not fresh:
            return
        for attempt in range(1, 11):
            try:
                await self._restore(fresh)
                return
            except Exception as exc:  # metadata races right after topic creation
                log.warning(
                    "state restore failed, retrying", processor=self.processor.name, attempt=attempt, error=str(exc)
                )
                await asyncio.sleep(0.5 * attempt)
        msg = f"could not restore state of {self.processor.name} partitions {fresh}"
        raise RuntimeError(msg)

    async def _restore(self, fresh: list[int]) -> None:
        reader = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False, group_id=None)
        await reader.start()
        try:
            tps = [TopicPartition(self.changelog, p) for p in fresh]
            reader.assign(tps)
            await reader.seek_to_beginning(*tps)
            ends = await reader.end_offsets(tps)
            restored = {p: dict[str, Any]() for p in fresh}
            remaining = {tp for tp in tps if ends[tp] > 0}
            while remaining:
                batch = await reader.getmany(*remaining, timeout_ms=500)
                for tp, messages in batch.items():
                    for m in messages:
                        key = m.key.decode("utf-8")
                        if m.value is None:
                            restored[tp.partition].pop(key, None)
                        else:
                            restored[tp.partition][key] = orjson.loads(m.value)
                    if messages and messages[-1].offset + 1 >= ends[tp]:
                        remaining.discard(tp)
            self.state.update(restored)
            log.info(
                "state restored",
                processor=self.processor.name,
                partitions=fresh,
                keys=sum(len(v) for v in restored.values()),
            )
        finally:
            await reader.stop()

    def drop_partition(self, partition: int) -> None:
        self.state.pop(partition, None)
        self._dirty.pop(partition, None)

    async def flush_and_commit(self) -> None:
        """Send the changelog entries of every key written since the last commit (its state
        now), wait for everything sent to be acknowledged, then commit the input offsets."""
        self._last_commit = time.monotonic()
        if self._consumer is None or not self._pending:
            return
        if self._producer is not None:
            outgoing: dict[tuple[str, int], list[tuple[bytes | None, bytes | None]]] = {}
            for partition, keys in self._dirty.items():
                data = self.state.get(partition, {})
                outgoing[(self.changelog, partition)] = [
                    (key.encode("utf-8"), None if (value := data.get(key)) is None else _encode(value)) for key in keys
                ]
            self._dirty.clear()
            await self._send_all(outgoing)
            await self._producer.flush()
        try:
            await self._consumer.commit(dict(self._pending))
        except CommitFailedError as error:
            # The group rebalanced under this batch: its emits and state are out, its offsets
            # are not; the partitions' next owner processes those records again (idempotent).
            self.commit_failures += 1
            log.warning("offsets not committed: the group rebalanced", processor=self.processor.name, error=str(error))
        self._pending.clear()

    async def _handle(self, batches: dict[TopicPartition, list[Any]]) -> None:
        """Process a fetched batch and send its emits as per-partition batches; the keys it
        wrote are marked for the next ``flush_and_commit``."""
        assert self._producer is not None
        outgoing: dict[tuple[str, int], list[tuple[bytes | None, bytes | None]]] = defaultdict(list)
        since_yield = time.monotonic()
        for tp, messages in batches.items():
            store = _TrackingState(self.state[tp.partition], self._dirty.setdefault(tp.partition, set()))
            for m in messages:
                if time.monotonic() - since_yield > YIELD_EVERY_S:
                    # a batch of heavy records (radar scans) must not starve the consumers'
                    # heartbeats on this event loop: missed ones cost a rebalance
                    await asyncio.sleep(0)
                    since_yield = time.monotonic()
                record = Record(
                    topic=tp.topic.removeprefix(self.namespace),
                    partition=tp.partition,
                    offset=m.offset,
                    key=m.key.decode("utf-8") if m.key is not None else None,
                    value=m.value or b"",
                    timestamp_ms=m.timestamp,
                )
                for emit in self.processor.process(record, store):
                    emit_key = emit.key.encode("utf-8") if emit.key is not None else None
                    partition = partition_for(emit.key, self.partitions) if emit.key is not None else tp.partition
                    outgoing[(f"{self.namespace}{emit.topic}", partition)].append((emit_key, emit.value))
            self._pending[tp] = messages[-1].offset + 1
            self.processed += len(messages)
        await self._send_all(outgoing)

    async def _send_all(self, outgoing: dict[tuple[str, int], list[tuple[bytes | None, bytes | None]]]) -> None:
        """Send as one producer batch per (topic, partition); wait until all are acknowledged."""
        assert self._producer is not None
        futures = []
        for (topic, partition), items in outgoing.items():
            batch = self._producer.create_batch()
            for key, value in items:
                if batch.append(key=key, value=value, timestamp=None) is None:
                    futures.append(await self._send(batch, topic, partition))
                    batch = self._producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None)
            futures.append(await self._send(batch, topic, partition))
        if futures:
            await asyncio.gather(*futures)

    async def _send(self, batch: Any, topic: str, partition: int) -> asyncio.Future[Any]:
        """Queue one producer batch; a full queue (the sender starved of CPU or the broker
        slow) is waited out ``SEND_ATTEMPTS`` times before the worker gives up."""
        assert self._producer is not None
        for attempt in range(1, SEND_ATTEMPTS):
            try:
                queued: asyncio.Future[Any] = await self._producer.send_batch(batch, topic, partition=partition)
            except KafkaTimeoutError:
                log.warning("producer queue full: waiting", processor=self.processor.name, topic=topic, attempt=attempt)
            else:
                return queued
        last: asyncio.Future[Any] = await self._producer.send_batch(batch, topic, partition=partition)
        return last

    async def run(self, stop: asyncio.Event) -> None:
        await self._ensure_topics()
        if self.processor.global_topics:
            self._global = GlobalReader(self.bootstrap, self.processor.global_topics, self.namespace, self.processor)
            try:
                await self._global.start()
            except BaseException:
                await self._global.stop()
                raise
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True, linger_ms=2
        )
        await self._producer.start()
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self.max_records,
            session_timeout_ms=10_000,
            heartbeat_interval_ms=1_000,
            rebalance_timeout_ms=30_000,
        )
        self._consumer.subscribe(
            topics=[f"{self.namespace}{t}" for t in self.processor.topics], listener=_Rebalance(self)
        )
        await self._consumer.start()
        try:
            while not stop.is_set():
                batches = await self._consumer.getmany(timeout_ms=100, max_records=self.max_records)
                if batches:
                    async with self.lock:
                        assigned = self._consumer.assignment()
                        owned = {tp: msgs for tp, msgs in batches.items() if tp in assigned}
                        # a partition whose restore failed in the rebalance callback (e.g. the
                        # changelog not yet in metadata) is restored now, never skipped
                        await self.restore({tp.partition for tp in owned if tp.partition not in self.state})
                        if self._global is not None:
                            await self._global.drain()
                        await self._handle(owned)
                        if time.monotonic() - self._last_commit >= self.commit_interval_s:
                            await self.flush_and_commit()
                elif self._pending:  # caught up: what was done is persisted now, not later
                    async with self.lock:
                        await self.flush_and_commit()
        finally:
            try:
                async with self.lock:
                    await self.flush_and_commit()
            finally:
                await self._consumer.stop()
                await self._producer.stop()
                if self._global is not None:
                    await self._global.stop()


async def run_processors(
    bootstrap: str, processors: Sequence[Processor], partitions: int, namespace: str, stop: asyncio.Event
) -> None:
    """Run several processors in one worker process until ``stop`` is set.

    When one runner fails, the others are told to stop (each flushes and commits what it
    has done), given ``STOP_GRACE_S`` to do so, cancelled if still running, and the failure
    is raised: the process exits with an error a supervisor sees, never hangs half-alive.
    """
    runners = [KafkaProcessorRunner(bootstrap, p, partitions, namespace) for p in processors]
    tasks = [asyncio.create_task(r.run(stop), name=r.processor.name) for r in runners]
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    failed = next((t for t in done if not t.cancelled() and t.exception() is not None), None)
    if failed is None:
        return
    error = failed.exception()
    assert error is not None
    stop.set()  # first: nothing below, not even a failing log stream, may keep the others running
    with contextlib.suppress(Exception):
        log.error("processor failed: stopping the worker", processor=failed.get_name(), exc_info=error)
    if pending:
        _, stuck = await asyncio.wait(pending, timeout=STOP_GRACE_S)
        for task in stuck:
            task.cancel()
        if stuck:
            await asyncio.wait(stuck, timeout=5.0)
    raise error
