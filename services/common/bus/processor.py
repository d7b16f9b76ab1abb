"""Stateful stream processors, written once and run on either runtime.

A processor is plain Python: ``process(record, state) -> list[Emit]``. ``state`` is a
key/value store scoped to the processor; by convention a processor only reads and writes
the entry under the record's own key, which is what lets the Kafka runtime keep it in a
changelog-backed faust table partitioned like the input topic.

State values must be JSON-compatible (dicts, lists, str, numbers, bool, None) since the
Kafka runtime serialises them into the changelog.

Global inputs (``global_topics``, ``on_global``): a few topics are reference data every
instance needs whatever partitions it owns (storm advisories). Like a faust GlobalTable
whose changelog is the topic itself, every instance reads *all* partitions of them from
the beginning, outside the consumer group, and keeps what it needs in the processor
instance (not in ``state``: the topic is the durable copy)::

    start:        read every global topic up to its end  ──►  on_global(record) …
    each batch:   fetch input batch → drain what global records are available → process

A restarted instance therefore re-reads them before its first input record. Ordering
across topics is best effort: a global record published *before* an input record is seen
first on the memory runtime (one process, one log); on Kafka it is seen first unless it
is still in flight when the input batch is fetched (see the runtimes' docs).

Runners:

- ``run_on_bus`` (memory runtime, or any ``Bus``): consume a batch, process each record,
  publish the batch of emits, then commit. A crash between publish and commit
  re-delivers the batch: at-least-once, made harmless by idempotent processors.
- ``services.common.bus.kafka_processor``: the native Kafka engine (aiokafka + changelog).
- ``services.common.bus.faust_runtime``: the same processor as a faust agent with a table.
"""

from __future__ import annotations

import asyncio
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

from services.common.bus.base import Bus, Emit, Record, Subscription


class StateStore(Protocol):
    def get(self, key: str) -> Any: ...

    def __setitem__(self, key: str, value: Any) -> None: ...

    def __delitem__(self, key: str) -> None: ...


class DictState(dict[str, Any]):
    """The memory runtime's state store."""


class Processor(ABC):
    """A stateful step between topics.

    ``name`` is the consumer group and the state table's name; ``topics`` are read;
    ``outputs`` are the topics it may write (declared so runtimes can create them);
    ``global_topics`` are read whole by every instance and handed to ``on_global``.
    """

    name: ClassVar[str]
    topics: ClassVar[tuple[str, ...]]
    outputs: ClassVar[tuple[str, ...]]
    global_topics: ClassVar[tuple[str, ...]] = ()

    def on_global(self, record: Record) -> None:  # noqa: B027  # optional hook, no-op by default
        """Take one record of a ``global_topics`` topic (every partition, from the beginning).

        Runs before any input record fetched after it, on the same task as ``process``
        (no locking needed). Records of one partition arrive in offset order; partitions
        interleave arbitrarily, and after a restart every record comes again: keep what
        they say order-free and idempotent (e.g. keyed by id and issue time). Must not
        raise for bad input: log and count it (there is no emit: every instance sees the
        record, and each would report it).
        """

    @abstractmethod
    def process(self, record: Record, state: StateStore) -> list[Emit]:
        """Handle one record. Must not raise for bad input: emit a rejection instead.

        Runs once per delivery; the same record may be delivered again after a crash,
        so the effect of a repeat must be nil (or an identical emit).
        """


async def run_on_bus(
    bus: Bus,
    processor: Processor,
    stop: asyncio.Event,
    state: StateStore | None = None,
    on_batch: Callable[[int], None] | None = None,
    max_records: int = 500,
) -> None:
    """Drive ``processor`` from ``bus`` until ``stop`` is set (then leave the group).

    Global topics are read through a consumer group of this instance's own (a fresh name,
    never committed: from the earliest offset every time), so it owns all their partitions.
    On the memory bus "drained" is exact: everything published before the input batch was
    fetched. On a ``KafkaBus`` it is what the consumer has fetched (production uses
    ``kafka_processor``, which reads up to the end offsets at start).
    """
    store: StateStore = state if state is not None else DictState()
    global_reader: Subscription | None = None
    subscription: Subscription | None = None
    try:
        if processor.global_topics:
            group = f"{processor.name}-global-{uuid.uuid4().hex[:12]}"
            global_reader = await bus.subscribe(processor.global_topics, group=group)
            await _drain_globals(global_reader, processor)
        subscription = await bus.subscribe(processor.topics, group=processor.name)
        while not stop.is_set():
            records = await subscription.getmany(timeout_s=0.05, max_records=max_records)
            if not records:
                continue
            if global_reader is not None:
                await _drain_globals(global_reader, processor)
            emits: list[Emit] = []
            for record in records:
                emits.extend(processor.process(record, store))
            await bus.publish_many(emits)
            await subscription.commit()
            if on_batch is not None:
                on_batch(len(records))
    finally:
        if subscription is not None:
            await subscription.close()
        if global_reader is not None:
            await global_reader.close()


async def _drain_globals(reader: Subscription, processor: Processor) -> None:
    """Hand every global record available now to ``processor.on_global``."""
    while records := await reader.getmany(timeout_s=0, max_records=1000):
        for record in records:
            processor.on_global(record)
