"""The Kafka runtime for stateful processors: each ``Processor`` becomes a faust agent.

1. One faust app per worker process; its id (``<namespace>earlywarn-<service>``) is the
   consumer group, so N workers started with the same id share the partitions.
2. Each processor gets a faust ``Table`` named after it, backed by a compacted changelog
   topic. The table is partitioned like the input topic (the record key is the table
   key), so after a rebalance or a restart the worker that owns a partition recovers that
   partition's state from the changelog before it processes the partition again.
3. Values are raw bytes in and out (``value_serializer="raw"``): the processor parses and
   validates them itself, so a malformed record is rejected, not a crash in a codec.
4. Processing is at-least-once: faust commits offsets after processing, so a worker
   killed between a state write and the commit sees the record again. Processors are
   idempotent under that (see ``Processor.process``).
5. Global topics (``Processor.global_topics``): what a faust ``GlobalTable`` does, without
   its changelog format and its recovery loop with several workers (see the warning in
   faust's ``GlobalTable`` docstring): an app task per processor reads every partition
   from the beginning with a group-less consumer (``kafka_processor.GlobalReader``), up to
   the end offsets before the agent handles its first event, then keeps following the
   topics and hands records to ``on_global`` on the same event loop as the agent. Race:
   an advisory produced just before an observation may reach ``on_global`` after it.

faust is imported only here: domain code stays runtime-agnostic.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import faust
from faust.types import EventT

from services.common.bus.base import Emit, Record
from services.common.bus.kafka_processor import GlobalReader
from services.common.bus.processor import Processor
from services.common.logging import get_logger

log = get_logger(__name__)


class _TableState:
    """Adapts a faust table to ``StateStore``."""

    def __init__(self, table: Any) -> None:
        self._table = table

    def get(self, key: str) -> Any:
        return self._table.get(key)

    def __setitem__(self, key: str, value: Any) -> None:
        self._table[key] = value

    def __delitem__(self, key: str) -> None:
        self._table.pop(key, None)


def build_app(
    *,
    service: str,
    bootstrap: str,
    processors: list[Processor],
    partitions: int,
    data_dir: Path,
    namespace: str = "",
) -> faust.App:
    app = faust.App(
        f"{namespace}earlywarn-{service}",
        broker=f"kafka://{bootstrap}",
        store="memory://",
        topic_partitions=partitions,
        topic_replication_factor=1,
        topic_allow_declare=True,
        value_serializer="raw",
        key_serializer="raw",
        web_enabled=False,
        datadir=str(data_dir),
        table_standby_replicas=0,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_commit_every=100,
        broker_commit_interval=0.5,
        # stream_wait_empty stays True (faust's default): with False, events buffered but
        # not yet processed when partitions are revoked were committed and skipped after
        # the rebalance (seen in tests/kafka: 4 gauges lost 4 reports each on fail-over).
        stream_wait_empty=True,
        # a killed worker's partitions move to the survivors after this long
        broker_session_timeout=10.0,
        broker_heartbeat_interval=1.0,
        broker_rebalance_timeout=20.0,
    )
    for processor in processors:
        _register(app, processor, partitions, namespace, bootstrap)
    return app


def _global_input(
    app: faust.App, processor: Processor, partitions: int, namespace: str, bootstrap: str
) -> asyncio.Event:
    """An app task feeding ``processor.on_global``; the event is set once caught up."""
    ready = asyncio.Event()
    reader = GlobalReader(bootstrap, processor.global_topics, namespace, processor, create_partitions=partitions)

    async def follow_global_topics() -> None:
        try:
            await reader.start()
            ready.set()
            while True:
                await reader.poll(500)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("global topics reader failed", processor=processor.name)
            raise
        finally:
            await reader.stop()

    follow_global_topics.__name__ = follow_global_topics.__qualname__ = f"globals_{processor.name.replace('-', '_')}"
    app.task(follow_global_topics)
    return ready


def _register(app: faust.App, processor: Processor, partitions: int, namespace: str, bootstrap: str) -> None:
    table = app.Table(
        f"{processor.name}-state",
        default=None,
        partitions=partitions,
    )
    source = app.topic(
        *[f"{namespace}{t}" for t in processor.topics],
        partitions=partitions,
        key_serializer="raw",
        value_serializer="raw",
    )
    sinks = {
        t: app.topic(f"{namespace}{t}", partitions=partitions, key_serializer="raw", value_serializer="raw")
        for t in processor.outputs
    }
    state = _TableState(table)
    globals_ready = _global_input(app, processor, partitions, namespace, bootstrap) if processor.global_topics else None

    async def agent(stream: Any) -> None:
        if globals_ready is not None:
            await globals_ready.wait()  # every global record published before start is applied
        event: EventT[Any]
        async for event in stream.events():
            message = event.message
            raw_key = message.key
            key = raw_key.decode("utf-8") if isinstance(raw_key, bytes) else raw_key
            value = event.value if isinstance(event.value, bytes) else bytes(event.value or b"")
            record = Record(
                topic=message.topic.removeprefix(namespace),
                partition=message.partition,
                offset=message.offset,
                key=key,
                value=value,
                timestamp_ms=int(message.timestamp * 1000),
            )
            emits: list[Emit] = processor.process(record, state)
            for emit in emits:
                await sinks[emit.topic].send(
                    key=emit.key.encode("utf-8") if emit.key is not None else None,
                    value=emit.value,
                )

    agent.__name__ = agent.__qualname__ = f"agent_{processor.name.replace('-', '_')}"
    app.agent(source, name=f"{processor.name}-agent")(agent)
