"""The live stream over real HTTP: order, Last-Event-ID resume, reset after a gap."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from schemas.common import Level
from schemas.warning import WarningMessage
from services.console.testing import make_warning, publish_all
from tests.integration.console.conftest import RunningConsole, Sse, read_sse

T0 = datetime.now(UTC).replace(microsecond=0)  # live warnings: the console prunes long-ended ones


def chains(n_warnings: int, versions: int) -> list[WarningMessage]:
    """n warnings × versions messages, interleaved: w0.v1, w1.v1, …, w0.v2, …"""
    out: list[WarningMessage] = []
    levels: list[Level] = ["blue", "yellow", "orange", "red"]
    for v in range(1, versions + 1):
        for w in range(n_warnings):
            town = ["330302006", "330302023", "330304103", "330304104", "330383000"][w % 5]
            out.append(
                make_warning(
                    f"rainstorm-{town}-{w}",
                    version=v,
                    level=levels[(v + w) % 4],
                    townships=(town,),
                    sent_at=T0 + timedelta(minutes=v),
                    previous_sent=[T0 + timedelta(minutes=i) for i in range(1, v)],
                )
            )
    return out


def warnings_of(events: list[Sse]) -> list[Sse]:
    return [e for e in events if e.event == "warning" and e.data.get("message")]


async def test_events_arrive_in_order_with_consecutive_ids(running: RunningConsole) -> None:
    client, _ = await running.signed_in("zhao.viewer")
    start = (await client.get("/api/snapshot")).json()["last_event_id"]
    messages = chains(6, 4)

    events = await read_sse(
        client,
        lambda evs: len(warnings_of(evs)) == len(messages),
        params={"last_event_id": start},
        on_open=lambda: publish_all(running.bus, messages),
    )
    ids = [e.id for e in events if e.id is not None]
    assert ids == list(range(start + 1, start + 1 + len(ids))), "ids are consecutive and increasing"
    per_warning: dict[str, list[int]] = defaultdict(list)
    for e in warnings_of(events):
        per_warning[e.data["warning"]["warning_id"]].append(e.data["message"]["version"])
    assert sorted(per_warning) == sorted({m.warning_id for m in messages})
    assert all(v == [1, 2, 3, 4] for v in per_warning.values()), per_warning


async def test_resume_with_last_event_id_loses_nothing(running: RunningConsole) -> None:
    client, _ = await running.signed_in("zhao.viewer")
    start = (await client.get("/api/snapshot")).json()["last_event_id"]
    first_batch, second_batch = chains(5, 2), chains(5, 4)[10:]
    await publish_all(running.bus, first_batch)
    seen = await read_sse(client, lambda evs: len(warnings_of(evs)) == 10, params={"last_event_id": start})
    last = seen[-1].id
    assert last is not None

    await publish_all(running.bus, second_batch)  # published while disconnected
    await asyncio.sleep(0.3)
    resumed = await read_sse(
        client, lambda evs: len(warnings_of(evs)) == len(second_batch), headers={"Last-Event-ID": str(last)}
    )
    assert resumed[0].id == last + 1
    buffered, missed = running.console.hub.since(last)
    assert not missed
    assert [e.id for e in resumed] == [e.id for e in buffered][: len(resumed)]
    assert {e.data["message"]["message_id"] for e in warnings_of(resumed)} == {m.message_id for m in second_batch}


async def test_an_id_older_than_the_buffer_gets_a_reset(start_console: object) -> None:
    running: RunningConsole = await start_console(stream_buffer_events=20)  # type: ignore[operator]
    client, _ = await running.signed_in("zhao.viewer")
    start = (await client.get("/api/snapshot")).json()["last_event_id"]
    await publish_all(running.bus, chains(10, 3))
    await asyncio.sleep(0.5)
    events = await read_sse(client, lambda evs: len(evs) >= 1, headers={"Last-Event-ID": str(start)})
    assert events[0].event == "reset"
    assert events[0].data["last_event_id"] == running.console.hub.last_id


async def test_the_stream_needs_a_session(running: RunningConsole) -> None:
    response = await running.client().get("/api/stream")
    assert response.status_code == 401
