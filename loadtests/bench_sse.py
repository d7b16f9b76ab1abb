"""Live-stream fan-out: 100 SSE clients during a 10× replay-like burst of warnings.

Run: ``python -m loadtests.bench_sse [--clients 100 --warnings 300 --speed 10]``.

Setup, all in one process:

1. The console (uvicorn + consumers + ``MemoryBus``) runs in its own thread and event loop.
2. ``--clients`` httpx streaming clients (one asyncio loop in the main thread) open
   ``GET /api/stream?last_event_id=<snapshot id>`` — resuming from one id, so a client that
   connects a little late still gets every event from the buffer.
3. The burst: ``--warnings`` warnings, each Alert → Update → Update → Cancel, spread over
   ticks of 1 s of scenario time with ``--per-tick`` messages per tick (a busy replay),
   published at ``--speed`` × real time (10×: one tick every 100 ms) in one
   ``publish_many`` per tick, like the replay driver.
4. Every client must receive every warning message exactly once, event ids consecutive
   (no gap, no reorder) and each warning's versions in order. Latency per (client,
   message) is publication → the client has parsed the event (``perf_counter``: one clock
   for both threads), so it includes the console's consume/fold/encode, the loopback
   socket, and the clients' own parsing (one Python thread for all of them, sharing the
   GIL with the server): read it as an upper bound for a browser on a real network.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from loadtests.machine import banner
from schemas import topics as tn
from schemas.common import Level
from schemas.warning import WarningMessage
from services.common.bus.memory import MemoryBus
from services.console.app import create_app
from services.console.geo import registry_townships
from services.console.settings import ConsoleSettings
from services.console.testing import DEFAULT_PASSWORD, load_geo_registry, make_warning, warning_emit, write_users

LEVELS: list[Level] = ["blue", "yellow", "orange", "red"]


def burst(warnings: int, townships: list[str], start: datetime) -> list[WarningMessage]:
    """Alert → Update ↑ → Update ↑ → Cancel per warning, interleaved as a storm would be."""
    out: list[tuple[float, WarningMessage]] = []
    for w in range(warnings):
        town = townships[w % len(townships)]
        wid = f"rainstorm-{town}-{w}"
        begin = w * 0.7
        sent = [start + timedelta(seconds=begin + step * 20) for step in range(4)]
        base = w % 2
        for version in range(1, 5):
            out.append(
                (
                    begin + (version - 1) * 20,
                    make_warning(
                        wid,
                        version=version,
                        msg_type="Cancel" if version == 4 else None,
                        level=LEVELS[min(base + version - 1, 3)] if version < 4 else LEVELS[min(base + 2, 3)],
                        townships=(town,),
                        sent_at=sent[version - 1],
                        previous_sent=sent[: version - 1],
                    ),
                )
            )
    out.sort(key=lambda pair: pair[0])
    return [message for _, message in out]


class Server:
    """The console in a thread with its own loop (so the clients' loop is separate)."""

    def __init__(self, workdir: Path, buffer_events: int) -> None:
        self.workdir = workdir
        self.buffer_events = buffer_events
        self.ready = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.bus: MemoryBus | None = None
        self.base_url = ""
        self.townships: list[str] = []
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._stop: asyncio.Event | None = None

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self.bus = MemoryBus(retention_records=1_000_000)
        await self.bus.ensure_topics(tn.ALL_TOPICS, 4)
        registry = load_geo_registry()
        self.townships = [t.code for t in registry_townships(registry)]
        settings = ConsoleSettings(
            users_file=write_users(self.workdir / "users.toml", {"bench": "viewer"}),
            audit_file=self.workdir / "audit.jsonl",
            session_secret=SecretStr("bench-secret-0123456789abcdef"),
            stream_buffer_events=self.buffer_events,
            watch_observations=False,
        )
        app = create_app(self.bus, registry, settings, metrics_registry=CollectorRegistry())
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        server = uvicorn.Server(
            uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1, backlog=512, limit_concurrency=1000)
        )
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        deadline = time.monotonic() + 15
        while not server.started:
            if time.monotonic() > deadline:
                raise TimeoutError("uvicorn did not start")
            await asyncio.sleep(0.01)
        self.ready.set()
        await self._stop.wait()
        server.should_exit = True
        await serving

    def start(self) -> None:
        self.thread.start()
        self.ready.wait(30)

    def stop(self) -> None:
        assert self.loop is not None
        assert self._stop is not None
        self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(15)


@dataclass
class ClientLog:
    ids: list[int] = field(default_factory=list)
    received: dict[str, float] = field(default_factory=dict)
    """message id → perf_counter when parsed."""
    versions: dict[str, list[int]] = field(default_factory=dict)
    resets: int = 0
    duplicates: int = 0
    connected: bool = False


async def client(
    http: httpx.AsyncClient, last_id: int, expected: int, log: ClientLog, done: asyncio.Event, stop: asyncio.Event
) -> None:
    async with http.stream("GET", "/api/stream", params={"last_event_id": last_id}) as response:
        response.raise_for_status()
        log.connected = True
        buffer = b""
        async for chunk in response.aiter_raw():
            buffer += chunk.replace(b"\r\n", b"\n") if b"\r" in chunk else chunk
            while b"\n\n" in buffer:
                frame, buffer = buffer.split(b"\n\n", 1)
                event_id, event, data = None, "", b""
                for line in frame.split(b"\n"):
                    if line.startswith(b"id: "):
                        event_id = int(line[4:])
                    elif line.startswith(b"event: "):
                        event = line[7:].decode()
                    elif line.startswith(b"data: "):
                        data = line[6:]
                if event_id is None:
                    continue
                log.ids.append(event_id)
                if event == "reset":
                    log.resets += 1
                elif event == "warning":
                    payload: Any = json.loads(data)
                    message = payload.get("message")
                    if message is None:
                        continue
                    mid = message["message_id"]
                    if mid in log.received:
                        log.duplicates += 1
                    log.received[mid] = time.perf_counter()
                    log.versions.setdefault(payload["warning"]["warning_id"], []).append(message["version"])
                    if len(log.received) >= expected:
                        done.set()
                        return
            if stop.is_set():
                return


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-sse-"))
    server = Server(workdir, buffer_events=args.buffer)
    server.start()
    assert server.bus is not None
    assert server.loop is not None
    messages = burst(args.warnings, server.townships, datetime.now(UTC))
    limits = httpx.Limits(max_connections=args.clients + 10, max_keepalive_connections=args.clients + 10)
    async with httpx.AsyncClient(base_url=server.base_url, limits=limits, timeout=httpx.Timeout(120.0)) as http:
        token = (await http.get("/api/csrf")).json()["csrf"]
        login = await http.post(
            "/api/login", json={"username": "bench", "password": DEFAULT_PASSWORD}, headers={"X-CSRF-Token": token}
        )
        login.raise_for_status()
        last_id = (await http.get("/api/snapshot")).json()["last_event_id"]
        logs = [ClientLog() for _ in range(args.clients)]
        dones = [asyncio.Event() for _ in range(args.clients)]
        stop = asyncio.Event()
        tasks = [
            asyncio.create_task(client(http, last_id, len(messages), logs[i], dones[i], stop))
            for i in range(args.clients)
        ]
        deadline = time.monotonic() + 30
        while not all(log.connected for log in logs):
            if time.monotonic() > deadline:
                raise TimeoutError("not every client connected")
            await asyncio.sleep(0.01)

        published: dict[str, float] = {}

        async def publisher() -> tuple[float, float]:
            assert server.bus is not None
            tick_s = 1.0 / args.speed
            begin = time.perf_counter()
            for index in range(0, len(messages), args.per_tick):
                batch = messages[index : index + args.per_tick]
                now = time.perf_counter()
                for message in batch:
                    published[message.message_id] = now
                await server.bus.publish_many([warning_emit(m) for m in batch])
                next_at = begin + (index // args.per_tick + 1) * tick_s
                await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            return begin, time.perf_counter()

        burst_begin, burst_end = await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(publisher(), server.loop))
        try:
            await asyncio.wait_for(asyncio.gather(*(d.wait() for d in dones)), args.timeout)
        except TimeoutError:
            print(f"timeout: {sum(d.is_set() for d in dones)}/{args.clients} clients complete")
        delivered_end = time.perf_counter()
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    server.stop()

    latencies = [at - published[mid] for log in logs for mid, at in log.received.items() if mid in published]
    expected = set(published)
    lost = sum(len(expected - set(log.received)) for log in logs)
    gaps = sum(1 for log in logs for a, b in zip(log.ids, log.ids[1:], strict=False) if b != a + 1)
    misordered = sum(1 for log in logs for versions in log.versions.values() if versions != sorted(versions))
    events_per_client = statistics.mean(len(log.ids) for log in logs)
    span = delivered_end - burst_begin
    print(banner("console live stream: SSE fan-out during a replay burst"))
    print(
        f"burst:    {len(messages)} warning messages ({args.warnings} warnings x Alert/Update/Update/Cancel), "
        f"{args.per_tick}/tick at {args.speed:g}x -> {len(messages) / (burst_end - burst_begin):.0f} msg/s "
        f"over {burst_end - burst_begin:.2f} s"
    )
    print(f"clients:  {args.clients} SSE streams (httpx, one asyncio loop), ring buffer {args.buffer} events")
    print(
        f"stream:   {events_per_client:.0f} events per client (warning + township changes), "
        f"{events_per_client * args.clients / span:,.0f} events/s delivered in total over {span:.2f} s"
    )
    print(
        f"latency:  publish -> parsed by client  p50 {1000 * pct(latencies, 0.5):.1f} ms  "
        f"p99 {1000 * pct(latencies, 0.99):.1f} ms  max {1000 * max(latencies):.1f} ms  "
        f"({len(latencies)} deliveries)"
    )
    print(
        f"checks:   lost {lost}, duplicates {sum(log.duplicates for log in logs)}, id gaps {gaps}, "
        f"out-of-order versions {misordered}, resets {sum(log.resets for log in logs)}"
    )
    ok = lost == 0 and gaps == 0 and misordered == 0 and sum(log.duplicates for log in logs) == 0
    print("result:   " + ("every client received every event, in order" if ok else "FAILED"))
    if not ok:
        raise SystemExit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--warnings", type=int, default=300, help="each makes 4 messages")
    parser.add_argument("--per-tick", type=int, default=20, help="messages per 1 s of scenario time")
    parser.add_argument("--speed", type=float, default=10.0, help="x real time")
    parser.add_argument("--buffer", type=int, default=20_000, help="ring buffer (events)")
    parser.add_argument("--timeout", type=float, default=120.0)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
