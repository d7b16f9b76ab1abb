"""The dispatch service on both runtimes, its HTTP callback endpoint, and its entry point.

What runs in one dispatch worker::

    warnings ──► DispatchIntake ──► dispatch.work ──► consumer loop ──► Dispatcher ──► channels (HTTP)
                 (processor.py)          ▲                 │  tick loop       │
                                         │                 ▼                  ├─► deliveries, receipts,
    providers ──► callback app ──────────┘          LedgerStore (Kafka)       │   coverage, obs.rejected
                 POST /callbacks/<channel>/<provider>, POST /ack, GET /status

Runtimes
--------
- ``run_dispatch(bus, stop, settings, towns, …)``: any ``Bus`` — the memory runtime of
  ``earlywarn run``. One member owns every partition; the ledger lives in the process
  (pass a ``MemoryLedgerStore`` to survive a restart of the service inside the process).
- ``run_dispatch_kafka(bootstrap, namespace, stop, settings, towns, …)``: one worker process
  of a consumer group. The intake runs on the native engine (``run_processors``); the worker
  consumes ``dispatch.work`` with a rebalance listener, and keeps each warning's ledger in
  the compacted topic ``<namespace>earlywarn-dispatch-ledger`` (same partition numbers as
  ``dispatch.work``): restored on assignment before any record of the partition is handled,
  flushed before offsets are committed and on revocation. See ``docs/dispatch.md``.
- ``python -m services.dispatch.service --broker kafka://… --namespace …`` runs the latter
  until SIGTERM/SIGINT.

Callbacks (``create_callback_app``)
-----------------------------------
Providers POST delivery reports to ``/callbacks/<channel>/<provider>``; the channel's
``parse_receipts`` reads them, and they are published on ``dispatch.work`` keyed by warning
id, so the worker that owns the warning applies them — whichever worker (or a stand-alone
ingress, ``callback_ingress_app``) received the HTTP call. Answers:

=====================================================  ======  =================================
request                                                status  trace
=====================================================  ======  =================================
not JSON                                               400     ``malformed_json``
JSON but not ``{"receipts": [...]}``-shaped / no       400     ``schema``
usable receipt in a non-empty list                     (422)
unknown channel or provider                            404     ``unknown_feed``
every receipt about a message this worker never sent   404     ``schema``, "[unknown_message] …"
otherwise                                              202     unusable/unknown entries counted
=====================================================  ======  =================================

Every refusal is logged, counted (``earlywarn_dispatch_callbacks_rejected_total``) and
written to ``obs.rejected``; nothing raises into the server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import signal
import socket
import sys
import tomllib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvicorn
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from schemas import topics as tn
from schemas.delivery import DeliveryReceipt
from schemas.rejected import RejectReason
from services.common.bus.base import Bus, Emit, Record
from services.common.bus.kafka import KafkaBus
from services.common.bus.processor import run_on_bus
from services.common.clock import Clock
from services.common.logging import configure_logging, get_logger
from services.common.metrics import Metrics
from services.common.ops import serve_ops
from services.dispatch.channels.base import Channel, warning_id_of
from services.dispatch.channels.registry import ChannelRegistry
from services.dispatch.orchestrator import (
    ChannelPlan,
    Dispatcher,
    DispatchMetrics,
    DispatchSettings,
    DispatchStats,
    LedgerStore,
    build_channels,
    tune_gc,
)
from services.dispatch.processor import (
    DISPATCH_WORK,
    UNKNOWN_MESSAGE,
    UNKNOWN_MESSAGE_TAG,
    CallbackRow,
    DispatchIntake,
    encode_callbacks,
    receipt_row,
    reject_emit,
)
from services.dispatch.targeting import COUNTY_NAMES_ZH, TownshipInfo, TownshipLookup

log = get_logger(__name__)

TOPICS = (tn.WARNINGS, DISPATCH_WORK, tn.DELIVERIES, tn.RECEIPTS, tn.COVERAGE, tn.OBS_REJECTED)
WORKER_GROUP = "dispatch"
LEDGER_TOPIC = "earlywarn-dispatch-ledger"
"""Compacted; physical name ``<namespace>earlywarn-dispatch-ledger`` (like the engine's changelogs)."""

Publish = Callable[[Sequence[Emit]], Awaitable[None]]
Known = Callable[[str], bool | None]
"""message id → True (ours), False (never sent by this service), None (cannot tell here)."""


# --------------------------------------------------------------------------- callbacks


class AckRequest(BaseModel):
    """``POST /ack``: an official confirms they received a message (stops escalation)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    message_id: str = Field(min_length=3, max_length=160)
    target_id: str = Field(min_length=1, max_length=128)
    channel: str = Field(default="sms", max_length=32)
    at: datetime | None = None


class CallbackIntake:
    """Provider callbacks → ``dispatch.callbacks`` records on ``dispatch.work``."""

    def __init__(
        self,
        parsers: Mapping[str, Mapping[str, Channel]],
        publish: Publish,
        known: Known = lambda _mid: None,
        metrics: DispatchMetrics | None = None,
    ) -> None:
        self.parsers = parsers
        self.publish = publish
        self.known = known
        self.metrics = metrics or DispatchMetrics(Metrics())
        self.accepted = 0
        self.refused = 0

    async def _refuse(
        self,
        status: int,
        reason: RejectReason,
        detail: str,
        raw: bytes,
        source: str,
        extra: dict[str, Any] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        self.refused += 1
        self.metrics.callbacks_rejected.labels(reason).inc()
        log.warning("callback refused", source=source, status=status, reason=reason, detail=detail[:300])
        await self.publish([reject_emit(source=source, reason=reason, detail=detail, raw=raw, key=source)])
        return status, {"error": detail, **(extra or {})}

    async def receipts(self, channel: str, provider: str | None, body: bytes) -> tuple[int, dict[str, Any]]:
        source = f"callback:{channel}/{provider or '-'}"
        providers = self.parsers.get(channel)
        if not providers or (provider is not None and provider not in providers):
            return await self._refuse(404, "unknown_feed", f"no channel/provider {channel}/{provider}", body, source)
        parser = providers[provider] if provider is not None else next(iter(providers.values()))
        try:
            payload: Any = json.loads(body)
        except ValueError as exc:
            return await self._refuse(400, "malformed_json", f"not JSON: {exc}", body, source)
        items = payload.get("receipts") if isinstance(payload, dict) else None
        if not isinstance(items, list):
            return await self._refuse(400, "schema", "expected an object with a 'receipts' list", body, source)
        try:
            parsed = parser.parse_receipts(payload)
        except Exception as exc:  # parse_receipts must not raise; if it does, it is a refusal
            return await self._refuse(400, "schema", f"unparseable receipts: {exc!r}", body, source)
        unusable = len(items) - len(parsed)
        if items and not parsed:
            return await self._refuse(422, "schema", f"none of {len(items)} receipt(s) is usable", body, source)
        by_warning: dict[str, list[CallbackRow]] = {}
        unknown: list[DeliveryReceipt] = []
        for receipt in parsed:
            if self.known(receipt.message_id) is False:
                unknown.append(receipt)
                continue
            by_warning.setdefault(receipt.warning_id, []).append(receipt_row(receipt))
        problems = []
        if unusable:
            self.metrics.callbacks_rejected.labels("schema").inc(unusable)
            problems.append(f"{unusable} unusable receipt(s)")
        if unknown:
            self.metrics.callbacks_rejected.labels("unknown_message").inc(len(unknown))
            first = unknown[0]
            detail = (
                f"{UNKNOWN_MESSAGE_TAG} {len(unknown)} receipt(s) for unknown message(s), "
                f"e.g. {first.message_id} / {first.target_id}"
            )
            if not by_warning:
                return await self._refuse(404, UNKNOWN_MESSAGE, detail, body, source)
            problems.append(detail)
        emits = [Emit(DISPATCH_WORK, wid, encode_callbacks(channel, rows)) for wid, rows in by_warning.items()]
        if problems:  # the rest is accepted; what was dropped still leaves a trace
            detail = "accepted the rest; dropped " + "; ".join(problems)
            log.warning("callback entries dropped", source=source, detail=detail[:300])
            emits.append(reject_emit(source=source, reason="schema", detail=detail, raw=body, key=source))
        await self.publish(emits)
        accepted = sum(len(rows) for rows in by_warning.values())
        self.accepted += accepted
        return 202, {"accepted": accepted, "unusable": unusable, "unknown": len(unknown)}

    async def acknowledge(self, body: bytes) -> tuple[int, dict[str, Any]]:
        source = "callback:ack"
        try:
            ack = AckRequest.model_validate_json(body)
        except ValidationError as exc:
            return await self._refuse(400, "schema", f"bad acknowledgement: {exc.errors()[0]['msg']}", body, source)
        if self.known(ack.message_id) is False:
            detail = f"{UNKNOWN_MESSAGE_TAG} acknowledgement for unknown message {ack.message_id}"
            return await self._refuse(404, UNKNOWN_MESSAGE, detail, body, source)
        at = (ack.at or datetime.now(UTC)).astimezone(UTC)
        row: CallbackRow = (ack.message_id, ack.target_id, "acknowledged", at.isoformat(), "ack", "")
        await self.publish([Emit(DISPATCH_WORK, warning_id_of(ack.message_id), encode_callbacks(ack.channel, [row]))])
        return 202, {"accepted": 1}


def create_callback_app(intake: CallbackIntake, status: Callable[[], dict[str, Any]] | None = None) -> FastAPI:
    """The provider-facing endpoint (see the module docstring)."""
    app = FastAPI(title="earlywarn dispatch callbacks", docs_url=None, redoc_url=None)

    @app.post("/callbacks/{channel}/{provider}")
    async def callbacks(channel: str, provider: str, request: Request) -> JSONResponse:
        code, body = await intake.receipts(channel, provider, await request.body())
        return JSONResponse(body, status_code=code)

    @app.post("/callbacks/{channel}")
    async def callbacks_any(channel: str, request: Request) -> JSONResponse:
        code, body = await intake.receipts(channel, None, await request.body())
        return JSONResponse(body, status_code=code)

    @app.post("/ack")
    async def acknowledge(request: Request) -> JSONResponse:
        code, body = await intake.acknowledge(await request.body())
        return JSONResponse(body, status_code=code)

    @app.get("/status")
    async def get_status() -> JSONResponse:
        return JSONResponse(status() if status is not None else {})

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response('{"status":"ok"}', media_type="application/json")

    return app


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside our event loop; the worker, not uvicorn, owns the signal handlers."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class ServedApp:
    url: str
    server: uvicorn.Server
    task: asyncio.Task[None]

    async def stop(self) -> None:
        self.server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.task, timeout=10)


async def serve_in_loop(app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> ServedApp:
    """Serve ``app`` on this event loop; returns once it accepts connections."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    server = _EmbeddedServer(
        uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="off")
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("callback server stopped while starting")
        await asyncio.sleep(0.005)
    bound = sock.getsockname()[1]
    url_host = f"[{host}]" if ":" in host else host
    return ServedApp(f"http://{url_host}:{bound}", server, task)


def parsers_for(settings: DispatchSettings, registry: ChannelRegistry | None = None) -> dict[str, dict[str, Channel]]:
    """Channel instances that only parse receipts (a stand-alone ingress never sends)."""
    return build_channels(settings, registry=registry)


def callback_ingress_app(bootstrap: str, namespace: str, settings: DispatchSettings, partitions: int = 4) -> FastAPI:
    """A stand-alone callback endpoint on Kafka (what a load balancer in front of the
    workers amounts to): providers can report to it whichever worker is alive."""
    bus = KafkaBus(bootstrap, namespace=namespace)
    intake = CallbackIntake(parsers_for(settings), bus.publish_many)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await bus.start()
        await bus.ensure_topics([DISPATCH_WORK, tn.OBS_REJECTED], partitions)
        try:
            yield
        finally:
            await bus.stop()

    app = create_callback_app(intake, lambda: {"accepted": intake.accepted, "refused": intake.refused})
    app.router.lifespan_context = lifespan
    return app


# --------------------------------------------------------------------------- memory runtime


async def _tick_loop(dispatcher: Dispatcher, lock: asyncio.Lock, stop: asyncio.Event, interval_s: float) -> None:
    """Time-driven work until ``stop``; a failing tick is logged and the next one runs."""
    while not stop.is_set():
        await asyncio.sleep(interval_s)
        try:
            async with lock:
                await dispatcher.tick_and_flush()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("dispatch tick failed", error=repr(exc))


class DispatchService:
    """The dispatch worker on any ``Bus`` as the only member of its group (memory runtime)."""

    def __init__(
        self,
        bus: Bus,
        settings: DispatchSettings,
        towns: TownshipLookup,
        *,
        partitions: int = 4,
        metrics: Metrics | None = None,
        clock: Clock | None = None,
        store: LedgerStore | None = None,
        registry: ChannelRegistry | None = None,
        channels: Mapping[str, Mapping[str, Channel]] | None = None,
    ) -> None:
        self.bus = bus
        self.settings = settings
        self.towns = towns
        self.partitions = partitions
        self.metrics = metrics or Metrics()
        self.dispatcher = Dispatcher(
            settings,
            towns,
            publish=bus.publish_many,
            store=store,
            metrics=self.metrics,
            clock=clock,
            registry=registry,
            channels=channels,
        )
        # until the ledger is restored nothing can be called unknown (a 404 is never retried)
        self.intake = CallbackIntake({}, bus.publish_many, metrics=self.dispatcher.metrics)
        self.callback: ServedApp | None = None
        self.lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def callback_url(self) -> str:
        assert self.callback is not None, "start() first"
        return self.callback.url

    @property
    def stats(self) -> DispatchStats:
        return self.dispatcher.stats

    async def start(self) -> None:
        tune_gc(self.settings)
        await self.bus.ensure_topics(TOPICS, self.partitions)
        cb = self.settings.callback
        self.callback = await serve_in_loop(create_callback_app(self.intake, self.dispatcher.status), cb.host, cb.port)
        await self.dispatcher.start(callback_base=cb.public_url or self.callback.url)
        self.intake.parsers = self.dispatcher.channels
        await self.dispatcher.restore(range(self.partitions))
        self.intake.known = self.dispatcher.knows
        subscription = await self.bus.subscribe([DISPATCH_WORK], group=WORKER_GROUP)
        intake = DispatchIntake(self.towns, self.metrics)
        self._tasks = [
            asyncio.create_task(run_on_bus(self.bus, intake, self._stop), name="dispatch-intake"),
            asyncio.create_task(self._consume(subscription), name="dispatch-worker"),
            asyncio.create_task(self._ticks(), name="dispatch-ticks"),
        ]
        log.info("dispatch started", callback=self.callback.url, channels=sorted(self.dispatcher.channels))

    async def _consume(self, subscription: Any) -> None:
        try:
            while not self._stop.is_set():
                records = await subscription.getmany(timeout_s=0.05, max_records=500)
                if not records:
                    continue
                async with self.lock:
                    for record in records:
                        self.dispatcher.handle(record)
                    await self.dispatcher.outbox.flush()
                    await self.dispatcher.flush_state()
                    await subscription.commit()
        finally:
            await subscription.close()

    async def _ticks(self) -> None:
        await _tick_loop(self.dispatcher, self.lock, self._stop, self.settings.tick_interval_s)

    async def wait_idle(self, timeout_s: float = 30.0, *, settle_s: float = 0.3) -> None:
        """Wait until nothing is running or queued for ``settle_s`` (tests, benchmarks)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        quiet_since: float | None = None
        while loop.time() < deadline:
            lag = getattr(self.bus, "lag", None)
            pending = lag(WORKER_GROUP, [DISPATCH_WORK]) + lag("dispatch-intake", [tn.WARNINGS]) if lag else 0
            if self.dispatcher.idle() and not pending:
                quiet_since = quiet_since or loop.time()
                if loop.time() - quiet_since >= settle_s:
                    return
            else:
                quiet_since = None
            await asyncio.sleep(0.02)
        raise TimeoutError("dispatch did not become idle in time")

    async def close(self) -> None:
        # the endpoint goes first: a provider then gets "connection refused" and retries
        # later, instead of a 404 from a dispatcher that no longer holds the ledger
        self.intake.known = lambda _mid: None
        if self.callback is not None:
            await self.callback.stop()
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        async with self.lock:
            await self.dispatcher.close()


async def run_dispatch(
    bus: Bus,
    stop: asyncio.Event,
    settings: DispatchSettings,
    towns: TownshipLookup,
    *,
    partitions: int = 4,
    metrics: Metrics | None = None,
    clock: Clock | None = None,
    store: LedgerStore | None = None,
    ready: Callable[[DispatchService], None] | None = None,
) -> DispatchStats:
    """Run dispatch on ``bus`` (the memory runtime of ``earlywarn run``) until ``stop``.

    Gateways are started by the caller and named in ``settings.channels`` (see
    ``settings_for_gateways``); the callback endpoint is served on ``settings.callback``
    and its URL handed to the providers. ``clock`` is the event clock used for expiry
    (a replay passes its virtual clock). Returns the final counters.
    """
    service = DispatchService(bus, settings, towns, partitions=partitions, metrics=metrics, clock=clock, store=store)
    await service.start()
    if ready is not None:
        ready(service)
    try:
        await stop.wait()
    finally:
        await service.close()
    return service.stats


# --------------------------------------------------------------------------- Kafka runtime


class KafkaLedgerStore:
    """``LedgerStore`` on a compacted topic, one partition per ``dispatch.work`` partition."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.partitions = partitions
        self._producer: AIOKafkaProducer | None = None
        self.records_written = 0

    async def start(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            if self.topic not in set(await admin.list_topics()):
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics(
                        [
                            NewTopic(
                                self.topic,
                                num_partitions=self.partitions,
                                replication_factor=1,
                                topic_configs={"cleanup.policy": "compact", "max.message.bytes": str(8 * 1024 * 1024)},
                            )
                        ]
                    )
        finally:
            await admin.close()
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=1,
            max_request_size=8 * 1024 * 1024,
        )
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def write(self, partition: int, records: Sequence[tuple[str, bytes | None]]) -> None:
        if self._producer is None:
            raise RuntimeError("KafkaLedgerStore.start() first")
        futures = [
            await self._producer.send(self.topic, value=value, key=key.encode(), partition=partition)
            for key, value in records
        ]
        if futures:
            await asyncio.gather(*futures)
        self.records_written += len(records)

    async def load(self, partition: int) -> dict[str, bytes]:
        reader = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False, group_id=None)
        await reader.start()
        try:
            tp = TopicPartition(self.topic, partition)
            reader.assign([tp])
            await reader.seek_to_beginning(tp)
            end = (await reader.end_offsets([tp]))[tp]
            out: dict[str, bytes] = {}
            position = await reader.position(tp)
            while position < end:
                batch = await reader.getmany(tp, timeout_ms=500)
                for message in batch.get(tp, []):
                    key = message.key.decode()
                    if message.value is None:
                        out.pop(key, None)
                    else:
                        out[key] = message.value
                position = await reader.position(tp)
            return out
        finally:
            await reader.stop()


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka ships no type hints
    def __init__(self, worker: KafkaDispatchWorker) -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        await self.worker.revoke({tp.partition for tp in revoked})

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        await self.worker.assign({tp.partition for tp in assigned})


class KafkaDispatchWorker:
    """One member of the ``<namespace>earlywarn-dispatch`` group (see the module docstring)."""

    def __init__(
        self,
        bootstrap: str,
        namespace: str,
        settings: DispatchSettings,
        towns: TownshipLookup,
        *,
        partitions: int = 4,
        metrics: Metrics | None = None,
        clock: Clock | None = None,
        registry: ChannelRegistry | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.namespace = namespace
        self.settings = settings
        self.towns = towns
        self.partitions = partitions
        self.metrics = metrics or Metrics()
        self.bus = KafkaBus(bootstrap, namespace=namespace)
        self.store = KafkaLedgerStore(bootstrap, f"{namespace}{LEDGER_TOPIC}", partitions)
        self.dispatcher = Dispatcher(
            settings,
            towns,
            publish=self.bus.publish_many,
            store=self.store,
            metrics=self.metrics,
            clock=clock,
            registry=registry,
        )
        self.intake = CallbackIntake({}, self.bus.publish_many, known=self._known, metrics=self.dispatcher.metrics)
        self.assigned: set[int] = set()
        self.lock = asyncio.Lock()
        self._consumer: AIOKafkaConsumer | None = None
        self._positions: dict[TopicPartition, int] = {}
        self.callback: ServedApp | None = None

    def _known(self, message_id: str) -> bool | None:
        return True if self.dispatcher.knows(message_id) else None

    def status(self) -> dict[str, Any]:
        return {**self.dispatcher.status(), "assigned": sorted(self.assigned)}

    async def revoke(self, partitions: set[int]) -> None:
        async with self.lock:
            await self.dispatcher.release(partitions)
            await self._commit({tp: off for tp, off in self._positions.items() if tp.partition in partitions})
            self.assigned -= partitions
            log.info("partitions revoked", partitions=sorted(partitions))

    async def assign(self, partitions: set[int]) -> None:
        async with self.lock:
            fresh = partitions - self.assigned
            restored = await self.dispatcher.restore(sorted(fresh))
            self.assigned |= partitions
            log.info("partitions assigned", partitions=sorted(partitions), restored_warnings=restored)

    async def _commit(self, positions: dict[TopicPartition, int]) -> None:
        if self._consumer is None or not positions:
            return
        with contextlib.suppress(Exception):  # a commit after losing the group is retried by the next owner
            await self._consumer.commit(positions)
        for tp in positions:
            self._positions.pop(tp, None)

    async def run(self, stop: asyncio.Event) -> None:
        from services.common.bus.kafka_processor import run_processors

        tune_gc(self.settings)
        await self.bus.start()
        await self.bus.ensure_topics(TOPICS, self.partitions)
        await self.store.start()
        cb = self.settings.callback
        self.callback = await serve_in_loop(create_callback_app(self.intake, self.status), cb.host, cb.port)
        await self.dispatcher.start(callback_base=cb.public_url or self.callback.url)
        self.intake.parsers = self.dispatcher.channels
        consumer = self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=f"{self.namespace}earlywarn-{WORKER_GROUP}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=500,
            session_timeout_ms=10_000,
            heartbeat_interval_ms=1_000,
            rebalance_timeout_ms=30_000,
        )
        consumer.subscribe([f"{self.namespace}{DISPATCH_WORK}"], listener=_Rebalance(self))
        await consumer.start()
        log.info("dispatch worker started", callback=self.callback.url, namespace=self.namespace)
        intake = DispatchIntake(self.towns, self.metrics)
        tasks = [
            asyncio.create_task(run_processors(self.bootstrap, [intake], self.partitions, self.namespace, stop)),
            asyncio.create_task(self._ticks(stop)),
        ]
        try:
            await self._consume(stop)
        finally:
            stop.set()
            await self.callback.stop()
            await asyncio.gather(*tasks, return_exceptions=True)
            async with self.lock:
                await self.dispatcher.close()
                await self._commit(dict(self._positions))
            await consumer.stop()
            await self.store.stop()
            await self.bus.stop()

    async def _consume(self, stop: asyncio.Event) -> None:
        assert self._consumer is not None
        prefix = self.namespace
        while not stop.is_set():
            batches = await self._consumer.getmany(timeout_ms=100, max_records=500)
            if not batches:
                continue
            async with self.lock:
                for tp, messages in batches.items():
                    if tp.partition not in self.assigned:
                        continue
                    for m in messages:
                        self.dispatcher.handle(
                            Record(
                                tp.topic.removeprefix(prefix),
                                tp.partition,
                                m.offset,
                                m.key.decode() if m.key is not None else None,
                                m.value or b"",
                                m.timestamp,
                            )
                        )
                    if messages:
                        self._positions[tp] = messages[-1].offset + 1
                await self.dispatcher.outbox.flush()
                await self.dispatcher.flush_state()
                await self._commit(dict(self._positions))

    async def _ticks(self, stop: asyncio.Event) -> None:
        await _tick_loop(self.dispatcher, self.lock, stop, self.settings.tick_interval_s)


async def run_dispatch_kafka(
    bootstrap: str,
    namespace: str,
    stop: asyncio.Event,
    settings: DispatchSettings,
    towns: TownshipLookup,
    *,
    partitions: int = 4,
    metrics: Metrics | None = None,
    clock: Clock | None = None,
    metrics_port: int = 0,
) -> None:
    """Run one Kafka dispatch worker until ``stop`` (scale out: start more, same namespace)."""
    metrics = metrics or Metrics()
    worker = KafkaDispatchWorker(
        bootstrap, namespace, settings, towns, partitions=partitions, metrics=metrics, clock=clock
    )
    await asyncio.gather(
        worker.run(stop),
        serve_ops(metrics, lambda: not stop.is_set(), "dispatch", metrics_port, stop),
    )


# --------------------------------------------------------------------------- towns & settings


COUNTY_TOWNSHIPS: dict[str, int] = {
    "330302": 14,
    "330303": 10,
    "330304": 13,
    "330305": 6,
    "330324": 22,
    "330326": 16,
    "330327": 16,
    "330328": 17,
    "330329": 19,
    "330381": 23,
    "330382": 29,
    "330383": 1,
}
"""Synthetic township counts per county: 186 in all (the real count; not the real units)."""


def synthetic_towns(total_population: int = 9_700_000, seed: int = 0) -> dict[str, TownshipInfo]:
    """A deterministic stand-in for the geography registry: 186 townships in the 12 real
    counties, names ``<county>N号镇``, populations summing to ``total_population``."""
    weights: list[tuple[str, str, str, float]] = []
    for county, count in COUNTY_TOWNSHIPS.items():
        county_name = COUNTY_NAMES_ZH[county]
        for k in range(count):
            code = f"{county}000" if count == 1 else f"{county}{k + 1:03d}"
            name = county_name if count == 1 else f"{county_name[:2]}{k + 1}号镇"
            digest = hashlib.blake2b(f"{seed}:pop:{code}".encode(), digest_size=8).digest()
            weights.append((code, name, county, 0.3 + int.from_bytes(digest, "big") / 2**64 * 1.7))
    scale = total_population / sum(w for *_, w in weights)
    return {
        code: TownshipInfo(code, name, county, COUNTY_NAMES_ZH[county], max(1, round(w * scale)))
        for code, name, county, w in weights
    }


def load_towns(path: str | Path | None = None) -> TownshipLookup:
    """Townships from a JSON file (a list of ``TownshipInfo`` fields), else the geography
    registry (``services.common.geo.registry.default_registry``) when it exists, else
    ``synthetic_towns()``."""
    if path is not None:
        rows = json.loads(Path(path).read_text(encoding="utf-8"))
        return {row["code"]: TownshipInfo(**row) for row in rows}
    try:
        from importlib import import_module

        from services.dispatch.targeting import RegistryLookup

        registry = import_module("services.common.geo.registry").default_registry()
        return RegistryLookup(registry)
    except (ImportError, AttributeError):
        return synthetic_towns()


def load_dispatch_settings(path: str | Path) -> DispatchSettings:
    """``DispatchSettings`` from ``.json`` or ``.toml``; errors name the file and the key."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
        raw: Any = tomllib.loads(text) if file.suffix == ".toml" else json.loads(text)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{file}: cannot read dispatch settings: {exc}") from exc
    try:
        return DispatchSettings.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"{file}: key {key!r}: {first['msg']}") from exc


def settings_for_gateways(
    *,
    sms_url: str | None = None,
    sms_secondary_url: str | None = None,
    broadcast_url: str | None = None,
    push_url: str | None = None,
    sms_tps: float = 200.0,
    base: DispatchSettings | None = None,
) -> DispatchSettings:
    """Settings for the local gateway simulators (what ``earlywarn run`` starts): SMS with
    an optional secondary provider, broadcast falling back to the township's zone SMS, app."""
    channels: dict[str, ChannelPlan] = {}
    if sms_url:
        providers: list[dict[str, Any]] = [{"provider": "sms-primary", "base_url": sms_url, "tps": sms_tps}]
        if sms_secondary_url:
            providers.append({"provider": "sms-secondary", "base_url": sms_secondary_url, "tps": sms_tps})
        channels["sms"] = ChannelPlan(providers=tuple(providers), batch_size=1000)
    if broadcast_url:
        channels["broadcast"] = ChannelPlan(
            providers=({"provider": "ebm", "base_url": broadcast_url},),
            fallback_channels=("sms",) if sms_url else (),
            batch_size=5000,
        )
    if push_url:
        channels["app"] = ChannelPlan(providers=({"provider": "push", "base_url": push_url},), batch_size=500)
    base = base or DispatchSettings()
    return base.model_copy(update={"channels": {**base.channels, **channels}})


# --------------------------------------------------------------------------- entry point


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m services.dispatch.service", description="Run one dispatch worker on Kafka."
    )
    p.add_argument("--broker", default="kafka://127.0.0.1:19092", help="kafka://host:port")
    p.add_argument("--namespace", default="", help="topic/group prefix")
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--config", type=Path, help="DispatchSettings as .json or .toml")
    p.add_argument("--towns", type=Path, help="townships as JSON (default: geo registry or synthetic)")
    p.add_argument("--sms-url")
    p.add_argument("--sms-secondary-url")
    p.add_argument("--broadcast-url")
    p.add_argument("--push-url")
    p.add_argument("--callback-host", default=None)
    p.add_argument("--callback-port", type=int, default=None)
    p.add_argument("--callback-public-url", default=None, help="URL providers are told to call")
    p.add_argument("--metrics-port", type=int, default=0)
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_logging(args.log_level, "json")
    if not args.broker.startswith("kafka://"):
        print("--broker must be kafka://host:port (memory:// runs inside `earlywarn run`)", file=sys.stderr)
        return 2
    settings = load_dispatch_settings(args.config) if args.config else DispatchSettings()
    settings = settings_for_gateways(
        sms_url=args.sms_url,
        sms_secondary_url=args.sms_secondary_url,
        broadcast_url=args.broadcast_url,
        push_url=args.push_url,
        base=settings,
    )
    callback = settings.callback.model_copy(
        update={
            k: v
            for k, v in {
                "host": args.callback_host,
                "port": args.callback_port,
                "public_url": args.callback_public_url,
            }.items()
            if v is not None
        }
    )
    settings = settings.model_copy(update={"callback": callback})
    towns = load_towns(args.towns)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_dispatch_kafka(
            args.broker.removeprefix("kafka://").rstrip("/"),
            args.namespace,
            stop,
            settings,
            towns,
            partitions=args.partitions,
            metrics_port=args.metrics_port,
        )

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
