"""Stateful stream processors, written once and run on either runtime.

A processor is plain Python: ``process(record, state) -> list[Emit]``. ``state`` is a
key/value store scoped to the processor; by convention a processor only reads and writes
the entry under the record's own key, which is what lets the Kafka runtime keep it in a
changelog-backed faust table partitioned like the input topic.

State values must be JSON-compatible (dicts, lists, str, numbers, bool, None) since the
Kafka runtime serialises them into the changelog.

Runners:

- ``run_on_bus`` (memory runtime, or any ``Bus``): consume a batch, process each record,
  publish the batch of emits, then commit. A crash between publish and commit
  re-delivers the batch: at-least-once, made harmless by idempotent processors.
- ``services.common.bus.faust_runtime``: the same processor as a faust agent with a table.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

from services.common.bus.base import Bus, Emit, Record


class StateStore(Protocol):
    def get(self, key: str) -> Any: ...

    def __setitem__(self, key: str, value: Any) -> None: ...

    def __delitem__(self, key: str) -> None: ...


class DictState(dict[str, Any]):
    """The memory runtime's state store."""


class Processor(ABC):
    """A stateful step between topics.

    ``name`` is the consumer group and the state table's name; ``topics`` are read;
    ``outputs`` are the topics it may write (declared so runtimes can create them).
    """

    name: ClassVar[str]
    topics: ClassVar[tuple[str, ...]]
    outputs: ClassVar[tuple[str, ...]]

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
    """Drive ``processor`` from ``bus`` until ``stop`` is set (then leave the group)."""
    store: StateStore = state if state is not None else DictState()
    subscription = await bus.subscribe(processor.topics, group=processor.name)
    try:
        while not stop.is_set():
            records = await subscription.getmany(timeout_s=0.05, max_records=max_records)
            if not records:
                continue
            emits: list[Emit] = []
            for record in records:
                emits.extend(processor.process(record, store))
            await bus.publish_many(emits)
            await subscription.commit()
            if on_batch is not None:
                on_batch(len(records))
    finally:
        await subscription.close()
