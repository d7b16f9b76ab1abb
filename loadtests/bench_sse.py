"""Live-stream fan-out: 100 SSE clients (a hundred browsers' worth) during a 10× replay.

Run::

    python -m loadtests.bench_sse                                   # burst: 300 warnings, 10x
    python -m loadtests.bench_sse --scenario convective-afternoon --hours 1 --speed 10 [--dispatch]

Two sources of warnings, the same check:

- **burst** (default): ``--warnings`` warnings, each Alert → Update → Update → Cancel,
  spread over ticks of 1 s of scenario time with ``--per-tick`` messages per tick and
  published at ``--speed`` × real time (10×: 20 messages every 100 ms) in one
  ``publish_many`` per tick. Far denser than any real replay: the stress case.
- **scenario** (``--scenario NAME``): the real thing, as ``earlywarn run`` does it — the
  simulator, ingest and every rules processor (``services.embedded.EmbeddedSession``;
  ``--dispatch`` adds dispatch and its gateway simulators) replay the first ``--hours`` of
  the scenario at ``--speed`` × real time (1 minute of scenario every 6 s at 10×), with
  the console built on the run's bus and virtual clock exactly as ``console_attachment``
  builds it. The expected messages are the run's own (``RunResult.messages``).

Setup: the console (uvicorn + consumers + ``MemoryBus``) runs in its own thread and event
loop; ``--clients`` httpx streaming clients share one asyncio loop in the main thread and
open ``GET /api/stream?last_event_id=<snapshot id>`` before the first warning.

Checks: every client receives every warning message (lost 0), each (message,
approval) once (duplicates 0), event ids consecutive (no gap, no reorder), each warning's
versions in order, and the same sequence of messages on every client. Latency per
(client, message) is the message's publication on ``warnings`` → the client has parsed
its event (``perf_counter``: one clock for both threads); it includes the console's
consume/fold/encode, the loopback socket and the clients' own parsing (one Python
thread for all of them, sharing the GIL with the server — and, in scenario mode, with the
simulator and rules): read it as an upper bound for a browser on a real network.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from loadtests.machine import banner
from schemas import topics as tn
from schemas.common import Level
from schemas.warning import WarningMessage
from services.common.bus.base import Bus, Emit
from services.common.bus.memory import MemoryBus
from services.common.clock import VirtualClock
from services.common.logging import configure_logging
from services.console.app import create_app
from services.console.geo import GeoRegistry, registry_townships
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


def record_publications(bus: Bus, published: dict[str, float]) -> None:
    """Note ``perf_counter()`` when each warning message is on ``warnings`` (processors
    publish through ``publish_many``)."""
    original = bus.publish_many

    async def publish_many(emits: Sequence[Emit]) -> None:
        await original(emits)
        now = time.perf_counter()
        for emit in emits:
            if emit.topic == tn.WARNINGS:
                published.setdefault(json.loads(emit.value)["message_id"], now)

    setattr(bus, "publish_many", publish_many)  # noqa: B010  (an instance override, on purpose)


class Server:
    """The console in a thread with its own loop (so the clients' loop is separate).

    Burst mode: a bare ``MemoryBus``. Scenario mode: an ``EmbeddedSession`` (simulator,
    ingest, rules, optionally dispatch) with the console attached to its bus and clock.
    """

    def __init__(self, workdir: Path, args: argparse.Namespace) -> None:
        self.workdir = workdir
        self.args = args
        self.ready = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.bus: Bus | None = None
        self.session: Any = None
        self.scenario: Any = None
        self.base_url = ""
        self.townships: list[str] = []
        self.published: dict[str, float] = {}
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self._stop: asyncio.Event | None = None

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported by start()
            self.error = exc
            self.ready.set()

    def _app(self, bus: Bus, registry: GeoRegistry, clock: VirtualClock | None) -> FastAPI:
        settings = ConsoleSettings(
            users_file=write_users(self.workdir / "users.toml", {"bench": "viewer"}),
            audit_file=self.workdir / "audit.jsonl",
            session_secret=SecretStr("bench-secret-0123456789abcdef"),
            stream_buffer_events=self.args.buffer,
            watch_observations=self.args.scenario is not None,  # a real run: station health too
        )
        return create_app(bus, registry, settings, metrics_registry=CollectorRegistry(), clock=clock)

    async def _serve(self, app: FastAPI, stop: asyncio.Event) -> None:
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
        await stop.wait()
        server.should_exit = True
        await serving

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        if self.args.scenario is None:
            registry = load_geo_registry()
            self.townships = [t.code for t in registry_townships(registry)]
            bus = MemoryBus(retention_records=1_000_000)
            await bus.ensure_topics(tn.ALL_TOPICS, 4)
            self.bus = bus
            await self._serve(self._app(bus, registry, None), self._stop)
            return
        from services.common.geo.registry import default_registry
        from services.common.metrics import Metrics
        from services.common.settings import load_settings
        from services.embedded import EmbeddedSession, dispatch_attachment
        from services.ingest.simulate.scenario import find_scenario, load_scenario
        from services.scenario_run import Attachment, RuleSet, scenario_processors, trim

        real = default_registry()
        self.scenario = trim(load_scenario(find_scenario(self.args.scenario, None)), self.args.hours)
        rule_set = RuleSet(allowed_lateness_s=load_settings().rules.allowed_lateness_s)
        session = EmbeddedSession(real, lambda: scenario_processors(real, Metrics(), rule_set))
        self.session, self.bus = session, session.bus
        record_publications(session.bus, self.published)

        async def console(bus: Bus, clock: VirtualClock, stop: asyncio.Event) -> object:
            await self._serve(self._app(bus, real, clock), stop)
            return None

        attachments: list[Attachment] = [console]
        if self.args.dispatch:
            attachments.append(dispatch_attachment(real))
        await session.start(attachments)
        await self._stop.wait()
        await session.close()

    def start(self) -> None:
        self.thread.start()
        self.ready.wait(60)
        if self.error is not None:
            raise self.error
        if not self.ready.is_set():
            raise TimeoutError("the console did not start")

    def stop(self) -> None:
        assert self.loop is not None
        assert self._stop is not None
        self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(30)


@dataclass
class ClientLog:
    ids: list[int] = field(default_factory=list)
    received: dict[str, float] = field(default_factory=dict)
    """message id → perf_counter when first parsed (a held message and its approval share an id)."""
    states: set[tuple[str, str]] = field(default_factory=set)
    sequence: list[str] = field(default_factory=list)
    versions: dict[str, list[int]] = field(default_factory=dict)
    resets: int = 0
    duplicates: int = 0
    connected: bool = False
    error: str = ""


async def client(http: httpx.AsyncClient, last_id: int, log: ClientLog, stop: asyncio.Event) -> None:
    try:
        async with http.stream("GET", "/api/stream", params={"last_event_id": last_id}) as response:
            response.raise_for_status()
            log.connected = True
            buffer = b""
            async for chunk in response.aiter_raw():
                buffer += chunk.replace(b"\r\n", b"\n") if b"\r" in chunk else chunk
                while b"\n\n" in buffer:
                    frame, buffer = buffer.split(b"\n\n", 1)
                    parse_frame(frame, log)
                if stop.is_set():
                    return
    except httpx.HTTPError as exc:
        log.error = repr(exc)


def parse_frame(frame: bytes, log: ClientLog) -> None:
    event_id, event, data = None, "", b""
    for line in frame.split(b"\n"):
        if line.startswith(b"id: "):
            event_id = int(line[4:])
        elif line.startswith(b"event: "):
            event = line[7:].decode()
        elif line.startswith(b"data: "):
            data = line[6:]
    if event_id is None:
        return
    log.ids.append(event_id)
    if event == "reset":
        log.resets += 1
        return
    if event != "warning":
        return
    payload: Any = json.loads(data)
    message = payload.get("message")
    if message is None:  # an expiry or a rejection: the warning changed, no new message
        return
    mid = message["message_id"]
    state = (mid, message["approval"])
    if state in log.states:
        log.duplicates += 1
        return
    log.states.add(state)
    log.sequence.append(f"{mid}/{message['approval']}")
    log.received.setdefault(mid, time.perf_counter())
    log.versions.setdefault(payload["warning"]["warning_id"], []).append(message["version"])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-sse-"))
    server = Server(workdir, args)
    server.start()
    assert server.bus is not None
    assert server.loop is not None
    limits = httpx.Limits(max_connections=args.clients + 10, max_keepalive_connections=args.clients + 10)
    async with httpx.AsyncClient(base_url=server.base_url, limits=limits, timeout=httpx.Timeout(600.0)) as http:
        token = (await http.get("/api/csrf")).json()["csrf"]
        login = await http.post(
            "/api/login", json={"username": "bench", "password": DEFAULT_PASSWORD}, headers={"X-CSRF-Token": token}
        )
        login.raise_for_status()
        last_id = (await http.get("/api/snapshot")).json()["last_event_id"]
        logs = [ClientLog() for _ in range(args.clients)]
        stop = asyncio.Event()
        tasks = [asyncio.create_task(client(http, last_id, log, stop)) for log in logs]
        deadline = time.monotonic() + 30
        while not all(log.connected for log in logs):
            if time.monotonic() > deadline:
                raise TimeoutError("not every client connected")
            await asyncio.sleep(0.01)

        begin = time.perf_counter()
        if args.scenario is None:
            messages = burst(args.warnings, server.townships, datetime.now(UTC))
            expected = {m.message_id for m in messages}
            source = (
                f"burst:    {len(messages)} warning messages ({args.warnings} warnings x Alert/Update/Update/Cancel), "
                f"{args.per_tick}/tick at {args.speed:g}x"
            )

            async def publisher() -> None:
                assert server.bus is not None
                tick_s = 1.0 / args.speed
                start = time.perf_counter()
                for index in range(0, len(messages), args.per_tick):
                    batch = messages[index : index + args.per_tick]
                    now = time.perf_counter()
                    for message in batch:
                        server.published[message.message_id] = now
                    await server.bus.publish_many([warning_emit(m) for m in batch])
                    next_at = start + (index // args.per_tick + 1) * tick_s
                    await asyncio.sleep(max(0.0, next_at - time.perf_counter()))

            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(publisher(), server.loop))
        else:
            scenario = server.scenario
            result = await asyncio.wrap_future(
                asyncio.run_coroutine_threadsafe(server.session.replay(scenario, args.speed), server.loop)
            )
            expected = {m.message_id for m in result.messages}
            source = (
                f"replay:   {scenario.name}, first {args.hours:g} h ({result.ticks} ticks) at {args.speed:g}x"
                f"{' with dispatch' if args.dispatch else ''}: {len(expected)} warning messages, "
                f"{result.counts.accepted:,} observations admitted"
            )
        burst_end = time.perf_counter()
        deadline = time.monotonic() + args.timeout
        while not all(expected <= log.received.keys() for log in logs):
            if time.monotonic() > deadline:
                print(
                    f"timeout: {sum(expected <= log.received.keys() for log in logs)}/{args.clients} clients complete"
                )
                break
            await asyncio.sleep(0.05)
        delivered_end = time.perf_counter()
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    server.stop()

    published = server.published
    latencies = [at - published[mid] for log in logs for mid, at in log.received.items() if mid in published]
    lost = sum(len(expected - log.received.keys()) for log in logs)
    duplicates = sum(log.duplicates for log in logs)
    gaps = sum(1 for log in logs for a, b in zip(log.ids, log.ids[1:], strict=False) if b != a + 1)
    misordered = sum(1 for log in logs for versions in log.versions.values() if versions != sorted(versions))
    orders = {hashlib.sha256("\n".join(log.sequence).encode()).hexdigest() for log in logs}
    errors = [log.error for log in logs if log.error]
    events_per_client = statistics.mean(len(log.ids) for log in logs)
    span = delivered_end - begin
    print(banner("console live stream: SSE fan-out during a replay"))
    rate = len(expected) / (burst_end - begin) if burst_end > begin else 0.0
    print(f"{source} -> {rate:.1f} msg/s over {burst_end - begin:.2f} s")
    print(f"clients:  {args.clients} SSE streams (httpx, one asyncio loop), ring buffer {args.buffer} events")
    print(
        f"stream:   {events_per_client:.0f} events per client (warnings, township colours, queue, health, ...), "
        f"{events_per_client * args.clients / span:,.0f} events/s delivered in total over {span:.2f} s"
    )
    if latencies:
        print(
            f"latency:  on warnings -> parsed by client  p50 {1000 * pct(latencies, 0.5):.1f} ms  "
            f"p99 {1000 * pct(latencies, 0.99):.1f} ms  max {1000 * max(latencies):.1f} ms  "
            f"({len(latencies)} deliveries)"
        )
    print(
        f"checks:   lost {lost}, duplicates {duplicates}, id gaps {gaps}, out-of-order versions {misordered}, "
        f"resets {sum(log.resets for log in logs)}, distinct message orders across clients {len(orders)}, "
        f"client errors {len(errors)}"
    )
    ok = bool(expected) and lost == 0 and gaps == 0 and misordered == 0 and duplicates == 0 and len(orders) == 1
    ok = ok and not errors
    print("result:   " + ("every client received every warning event, in order" if ok else "FAILED"))
    if errors:
        print(f"first client error: {errors[0]}")
    if not ok:
        raise SystemExit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--speed", type=float, default=10.0, help="x real time")
    parser.add_argument("--warnings", type=int, default=300, help="burst: each makes 4 messages")
    parser.add_argument("--per-tick", type=int, default=20, help="burst: messages per 1 s of scenario time")
    parser.add_argument("--scenario", default=None, help="replay this scenario through the pipeline instead")
    parser.add_argument("--hours", type=float, default=1.0, help="scenario: replay its first H hours")
    parser.add_argument("--dispatch", action="store_true", help="scenario: dispatch and gateway simulators too")
    parser.add_argument("--buffer", type=int, default=20_000, help="ring buffer (events)")
    parser.add_argument("--timeout", type=float, default=120.0, help="s to wait for delivery after the source ends")
    args = parser.parse_args()
    if args.speed <= 0:
        parser.error("--speed must be positive")
    configure_logging("warning", "console")  # the pipeline's info lines would bury the result
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
