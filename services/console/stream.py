"""The live stream: numbered events in a bounded ring buffer, served as server-sent events.

::

    read model ──► EventHub.publish(events) ──► ring buffer [id first … id last] (maxlen N)
                                                   │
                      GET /api/stream ─────────────┘  each client: since(last seen id)

1. ``publish`` gives every event the next id (``base + 1, base + 2, …``: strictly
   increasing, no gaps) and appends it; the oldest fall off past ``capacity``. ``base`` is
   the boot time in ms × 1000, so ids also increase across a console restart.
   The buffer is a list trimmed in bulk, so it holds between ``capacity`` and 1.25 ×
   ``capacity`` events; each event's SSE frame is encoded once, at publication.
2. A client resumes with ``Last-Event-ID`` (the browser's ``EventSource`` sends it on
   reconnect) or ``?last_event_id=`` (first connect after ``GET /api/snapshot``, which
   returns the id the snapshot is consistent with). Events after that id are replayed
   from the buffer in order, then live ones follow.
3. If the id is older than the buffer (the client was away too long) or not from this
   process, the client gets a ``reset`` event first — "your view is stale: fetch the
   snapshot again" — and continues from the newest event. Nothing is skipped silently.
4. Waiting clients share one ``asyncio.Event`` per generation: a publish wakes them all at
   once (one wake-up per batch, not per event), and each reads the buffer slice it needs.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Any

from services.console.readmodel import StreamEvent


@dataclass(frozen=True, slots=True)
class NumberedEvent:
    id: int
    type: str
    data: str
    """JSON text, encoded once for every client."""
    published_at: float
    """``time.monotonic()`` at publication (latency measurement)."""

    @property
    def frame(self) -> bytes:
        return sse_frame(self).encode("utf-8")


class EventHub:
    def __init__(self, capacity: int = 10_000, base_id: int | None = None) -> None:
        if capacity < 1:
            msg = "capacity must be positive"
            raise ValueError(msg)
        self.capacity = capacity
        self.base_id = int(time.time() * 1000) * 1000 if base_id is None else base_id
        # A list trimmed in bulk (amortised O(1)), not a deque: clients slice it by id.
        self._events: list[NumberedEvent] = []
        self._frames: list[bytes] = []
        self._slack = max(1, capacity // 4)
        self._last_id = self.base_id
        self._changed = asyncio.Event()
        self._closed = False

    @property
    def last_id(self) -> int:
        return self._last_id

    @property
    def closed(self) -> bool:
        return self._closed

    def publish(self, events: Sequence[StreamEvent]) -> list[NumberedEvent]:
        if not events:
            return []
        now = time.monotonic()
        out: list[NumberedEvent] = []
        for event in events:
            self._last_id += 1
            numbered = NumberedEvent(
                self._last_id, event.type, json.dumps(event.data, ensure_ascii=False, separators=(",", ":")), now
            )
            out.append(numbered)
        self._events.extend(out)
        self._frames.extend(e.frame for e in out)
        if len(self._events) > self.capacity + self._slack:
            del self._events[: len(self._events) - self.capacity]
            del self._frames[: len(self._frames) - self.capacity]
        self._wake()
        return out

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def close(self) -> None:
        self._closed = True
        self._wake()

    def _start(self, last_id: int) -> int | None:
        """Index of the first event after ``last_id``; ``None`` when events were missed."""
        first = self._events[0].id if self._events else self._last_id + 1
        if last_id > self._last_id or last_id < first - 1:
            return None
        return last_id - first + 1

    def since(self, last_id: int) -> tuple[list[NumberedEvent], bool]:
        """Events after ``last_id``; ``True`` when the client missed events (reset needed)."""
        start = self._start(last_id)
        if start is None:
            return [], True
        return self._events[start:], False

    async def batches(
        self, last_id: int | None, heartbeat_s: float = 15.0, max_batch: int = 1000
    ) -> AsyncGenerator[tuple[list[NumberedEvent], bytes], None]:
        """Yield ``(events, their SSE frames joined)`` after ``last_id`` (``None``: from now).

        One item per wake-up (up to ``max_batch`` events): a client is sent one write per
        batch, not one per event. An empty item is a heartbeat.
        """
        cursor = self._last_id if last_id is None else last_id
        while not self._closed:
            waiter = self._changed
            start = self._start(cursor)
            if start is None:
                # the cursor moves before the yield: events published while the client
                # handles the reset are still sent after it
                cursor = self._last_id
                reset = NumberedEvent(cursor, "reset", json.dumps({"last_event_id": cursor}), time.monotonic())
                yield [reset], reset.frame
                continue
            if start < len(self._events):
                end = min(len(self._events), start + max_batch)
                events = self._events[start:end]
                cursor = events[-1].id
                yield events, b"".join(self._frames[start:end])
                continue
            try:
                await asyncio.wait_for(waiter.wait(), heartbeat_s)
            except TimeoutError:
                yield [], b""

    async def subscribe(
        self, last_id: int | None, heartbeat_s: float = 15.0, max_batch: int = 1000
    ) -> AsyncGenerator[NumberedEvent | None, None]:
        """Event by event (``None`` as a heartbeat): ``batches`` flattened."""
        async for events, _frames in self.batches(last_id, heartbeat_s, max_batch):
            if not events:
                yield None
            for event in events:
                yield event


def parse_last_event_id(header: str | None, query: str | None) -> int | None:
    for raw in (header, query):
        if raw:
            try:
                return int(raw.strip())
            except ValueError:
                continue
    return None


def sse_frame(event: NumberedEvent | None) -> str:
    """The wire form of one event (``None``: a comment line that keeps proxies open)."""
    if event is None:
        return ": ping\n\n"
    return f"id: {event.id}\nevent: {event.type}\ndata: {event.data}\n\n"


def stream_stats(hub: EventHub) -> dict[str, Any]:
    return {"last_event_id": hub.last_id, "capacity": hub.capacity, "base_id": hub.base_id}
