"""The event hub: consecutive ids, bounded ring buffer, resume and reset."""

from __future__ import annotations

import asyncio

import pytest

from services.console.readmodel import StreamEvent
from services.console.stream import EventHub, NumberedEvent, parse_last_event_id, sse_frame


def publish(hub: EventHub, n: int) -> list[NumberedEvent]:
    return hub.publish([StreamEvent("warning", {"n": i}) for i in range(n)])


def test_ids_are_consecutive_and_increasing() -> None:
    hub = EventHub(capacity=100, base_id=1000)
    events = publish(hub, 5) + publish(hub, 3)
    assert [e.id for e in events] == list(range(1001, 1009))
    assert hub.last_id == 1008


def test_since_returns_what_followed() -> None:
    hub = EventHub(capacity=100, base_id=0)
    publish(hub, 10)
    events, missed = hub.since(7)
    assert ([e.id for e in events], missed) == ([8, 9, 10], False)
    assert hub.since(10) == ([], False)


@pytest.mark.parametrize(
    ("last_id", "missed"),
    [
        pytest.param(4, False, id="just-inside"),
        pytest.param(3, True, id="fell-off-the-buffer"),
        pytest.param(99, True, id="from-another-process"),
    ],
)
def test_a_gap_asks_for_a_reset(last_id: int, missed: bool) -> None:
    hub = EventHub(capacity=6, base_id=0)
    publish(hub, 10)  # buffer holds 5..10
    assert hub.since(last_id)[1] is missed


async def test_subscribe_replays_then_follows_live() -> None:
    hub = EventHub(capacity=100, base_id=0)
    publish(hub, 3)
    received: list[int] = []

    async def reader() -> None:
        async for event in hub.subscribe(1, heartbeat_s=5):
            assert event is not None
            received.append(event.id)
            if len(received) == 4:
                return

    task = asyncio.create_task(reader())
    await asyncio.sleep(0.01)
    publish(hub, 2)
    await asyncio.wait_for(task, 2)
    assert received == [2, 3, 4, 5]


async def test_subscribe_sends_reset_then_continues() -> None:
    hub = EventHub(capacity=3, base_id=0)
    publish(hub, 10)
    stream = hub.subscribe(2, heartbeat_s=5)
    first = await anext(stream)
    assert first is not None
    assert (first.type, first.id) == ("reset", 10)
    publish(hub, 1)
    nxt = await anext(stream)
    assert nxt is not None
    assert nxt.id == 11
    await stream.aclose()


async def test_heartbeats_and_close() -> None:
    hub = EventHub(capacity=10, base_id=0)
    stream = hub.subscribe(None, heartbeat_s=0.01)
    assert await anext(stream) is None
    hub.close()
    with pytest.raises(StopAsyncIteration):
        await anext(stream)


def test_last_event_id_header_wins_over_query() -> None:
    assert parse_last_event_id("12", "5") == 12
    assert parse_last_event_id(None, "5") == 5
    assert parse_last_event_id("junk", "7") == 7
    assert parse_last_event_id(None, None) is None


def test_sse_frame() -> None:
    event = NumberedEvent(5, "warning", '{"a":1}', 0.0)
    assert sse_frame(event) == 'id: 5\nevent: warning\ndata: {"a":1}\n\n'
    assert sse_frame(None) == ": ping\n\n"
