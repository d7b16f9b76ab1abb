"""The dispatcher: warnings in, channel hand-offs and a ledger account of every target out.

One ``Dispatcher`` per worker process owns the ledgers of the warnings whose
``dispatch.work`` partitions it holds. It is runtime-agnostic: records come in through
``handle`` (the runtime's consumer loop calls it), effects go out through an injected
``publish`` and an optional ``LedgerStore``; ``services.dispatch.service`` wires it to the
memory runtime and to Kafka.

A warning message, step by step
-------------------------------
1. **Dedup** on ``state_key`` (message id + approval). A held message (``disseminate`` is
   False) is remembered and nothing is sent; its ``approved``/``released`` version has a
   new state key and goes on. A message already disseminated under another approval state
   is not sent again.
2. **Expired** on arrival (``expires_at`` ≤ the event clock): nothing is sent.
3. **Update/Cancel** stop the earlier messages of the warning (``Ledger.on_warning_message``
   semantics: pending entries become ``skipped``, retries stop; a running fan-out sees it
   before its next batch). A Cancel is itself sent only if an earlier message was.
4. **Render once** (``render_message``) and **check** each channel's limits; a channel whose
   limits the text breaks is not used for this message: an error log, a metric and an
   ``obs.rejected`` record (``oversized``) — never a crash.
5. **Fan out** per channel, lazily from ``Targeting`` (a million app tokens are generated
   as they are sent): take a send slot (``max_inflight``), pick the first provider whose
   breaker allows a request, ``track`` the batch (``pending``; published on ``deliveries``),
   make that durable (store flush), ``send``, fold the results into the ledger and publish
   every state change on ``receipts``.
6. **Ticks** (``tick_interval_s``): retries that are due (exponential backoff + full
   jitter, breaker-aware provider switch — the ledger decides), channel fall-back jobs,
   escalation of officials who did not acknowledge in time (to ``Targeting.superior_of``),
   receipt time-outs (``submitted`` with no report → final ``failed``), expiry, coverage
   reports, retirement of finished entries, sealing and compaction, state flushes.
7. **Receipts** from providers arrive as ``dispatch.callbacks`` records and go through
   ``Ledger.apply_callback`` (duplicates and stale reports are no-ops, counted).

Durability (``LedgerStore``; see ``docs/dispatch.md``)
-----------------------------------------------------
Per warning, a *meta* record (messages, dedup keys, fan-out cursors) and *slice* records
(the ledger entries of one ``(message, channel)``, split by ``crc32(target) % slices``; each
slice also carries the counters of its compacted entries, so a slice is self-contained).
A flush writes the dirty slices first and the meta record last, to the warning's own
partition, so a crash mid-flush leaves a consistent prefix. ``pending`` is made durable
before the hand-off; after a restore every ``pending`` entry may have reached the provider
and is sent again — counted in ``resent_after_restore`` (an upper bound on duplicates at a
gateway). Without a store (memory runtime) the same code runs with the flushes as no-ops.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import gc
import heapq
import inspect
import itertools
import json
import random
import time
import zlib
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from prometheus_client import Counter, Gauge
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from schemas import topics as tn
from schemas.common import LEVEL_RANK, Level
from schemas.delivery import DeliveryJob, DeliveryReceipt
from schemas.rejected import RejectReason
from schemas.warning import WarningMessage
from services.common.bus.base import Emit, Record
from services.common.clock import Clock, SystemClock
from services.common.logging import get_logger
from services.common.metrics import Metrics
from services.dispatch.channels.base import (
    Channel,
    PermanentChannelError,
    TargetResult,
    TransientChannelError,
)
from services.dispatch.channels.registry import ChannelRegistry, default_registry
from services.dispatch.ledger import (
    _ENTRY_FIELDS,
    BreakerPolicy,
    Decision,
    Entry,
    Escalation,
    Ledger,
    LedgerPolicy,
    RetryPolicy,
    Route,
)
from services.dispatch.processor import (
    DISPATCH_WORK,
    UNKNOWN_MESSAGE,
    UNKNOWN_MESSAGE_TAG,
    CallbackRow,
    CallbackWork,
    OutputEncoder,
    WarningWork,
    WorkDecodeError,
    decode_work,
    encode_callbacks,
    json_time,
    reject_emit,
)
from services.dispatch.render import RenderedMessage, RenderSettings, render_message
from services.dispatch.targeting import AudienceData, AudienceName, Targeting, TownshipLookup

log = get_logger(__name__)

# --------------------------------------------------------------------------- settings


class ChannelPlan(BaseModel):
    """How one channel is used: its providers (primary first) and how hard to push them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    providers: tuple[dict[str, Any], ...] = Field(
        min_length=1,
        description="provider configs, each validated by the channel's config model; primary first",
    )
    fallback_channels: tuple[str, ...] = Field(default=(), description="where a target goes when every provider failed")
    batch_size: int = Field(default=500, ge=1, le=20_000, description="jobs per send() call")
    max_inflight: int = Field(default=4, ge=1, le=256, description="send() calls in flight per fan-out")
    receipt_timeout_s: float | None = Field(
        default=900.0, gt=0, description="'submitted' with no delivery report this long → final 'failed'"
    )


class EscalationSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    ack_timeout_s: float | None = Field(
        default=None, gt=0, description="officials must acknowledge within this; None = no escalation"
    )
    levels: tuple[Level, ...] = ("orange", "red")
    channel: str = "sms"


class CallbackSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535, description="0 = an ephemeral port")
    public_url: str | None = Field(
        default=None, description="base URL providers are told to call (a load balancer); default: the served URL"
    )


class DispatchSettings(BaseModel):
    """Everything the dispatcher needs besides the township lookup (frozen, validated)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    channels: dict[str, ChannelPlan] = Field(default_factory=dict)
    level_channels: dict[Level, tuple[str, ...]] = Field(
        default_factory=dict, description="level → channels; a level not listed uses every configured channel"
    )
    audience: AudienceData = AudienceData()
    audience_routes: dict[str, tuple[AudienceName, ...]] | None = Field(
        default=None, description="channel → audiences (targeting.DEFAULT_ROUTES when None)"
    )
    render: RenderSettings = RenderSettings()
    retry: RetryPolicy = RetryPolicy()
    breaker: BreakerPolicy = BreakerPolicy()
    escalation: EscalationSettings = EscalationSettings()
    callback: CallbackSettings = CallbackSettings()
    tick_interval_s: float = Field(default=0.05, gt=0, le=5)
    flush_interval_s: float = Field(default=0.25, gt=0, le=60, description="ledger state → store")
    coverage_interval_s: float = Field(default=1.0, gt=0, le=600)
    seal_check_interval_s: float = Field(default=1.0, gt=0, le=600)
    forget_after_s: float = Field(default=86_400.0, ge=0, description="after expiry, a warning's ledger is dropped")
    slice_targets: int = Field(default=1000, ge=10, le=100_000, description="ledger entries per stored slice")
    retire_after_s: float | None = Field(
        default=2.0,
        gt=0,
        le=600,
        description="delivered/acknowledged entries leave the live ledger this long after they finished "
        "(a later duplicate report counts as 'late'); None: only when the message is sealed",
    )
    seed: int = Field(default=0, description="backoff jitter")
    gc_thresholds: tuple[int, int, int] | None = Field(
        default=(50_000, 20, 100),
        description="gc.set_threshold for the worker process (None: leave it); see tune_gc",
    )


class DispatchConfigError(ValueError):
    """A channel or provider configuration problem; the message names channel, provider, key."""


# --------------------------------------------------------------------------- metrics


class DispatchMetrics:
    """Dispatch counters on the service's registry (labels are bounded sets)."""

    def __init__(self, metrics: Metrics) -> None:
        r = metrics.registry
        self.base = metrics
        self.warnings = Counter(
            "earlywarn_dispatch_warnings_total", "Warning messages seen by dispatch", ["outcome"], registry=r
        )
        self.handoffs = Counter(
            "earlywarn_dispatch_handoffs_total", "Targets handed to a provider", ["channel", "provider"], registry=r
        )
        self.decisions = Counter(
            "earlywarn_dispatch_decisions_total", "Ledger decisions after a failure", ["action"], registry=r
        )
        self.callbacks = Counter(
            "earlywarn_dispatch_callback_receipts_total", "Provider receipts by ledger outcome", ["outcome"], registry=r
        )
        self.callbacks_rejected = Counter(
            "earlywarn_dispatch_callbacks_rejected_total", "Callback requests/receipts refused", ["reason"], registry=r
        )
        self.limit_violations = Counter(
            "earlywarn_dispatch_limit_violations_total",
            "Messages a channel could not carry",
            ["channel", "limit"],
            registry=r,
        )
        self.escalations = Counter("earlywarn_dispatch_escalations_total", "Officials escalated", registry=r)
        self.resent = Counter(
            "earlywarn_dispatch_resent_after_restore_total",
            "Targets sent again after a restore (may have reached the provider before the crash)",
            registry=r,
        )
        self.unreached = Gauge(
            "earlywarn_dispatch_unreached_townships",
            "Townships of active warnings not reached on any channel yet",
            ["level"],
            registry=r,
        )
        self.live_entries = Gauge("earlywarn_dispatch_live_entries", "Ledger entries held in memory", registry=r)
        self.breaker_open = Gauge(
            "earlywarn_dispatch_breaker_open", "1 while a provider's circuit breaker is open", ["provider"], registry=r
        )


@dataclass
class DispatchStats:
    """Plain counters (for tests, benchmarks and ``/status``)."""

    warnings_admitted: int = 0
    duplicate_warnings: int = 0
    held: int = 0
    expired_on_arrival: int = 0
    not_sent: int = 0
    bad_records: int = 0
    jobs_tracked: int = 0
    handoffs: int = 0
    send_batches: int = 0
    receipts_published: int = 0
    callbacks_applied: int = 0
    callbacks_duplicate: int = 0
    callbacks_stale: int = 0
    callbacks_unknown: int = 0
    callbacks_late: int = 0
    retries: int = 0
    provider_switches: int = 0
    channel_fallbacks: int = 0
    give_ups: int = 0
    escalations: int = 0
    escalations_exhausted: int = 0
    receipt_timeouts: int = 0
    limit_violations: int = 0
    skipped: int = 0
    resent_after_restore: int = 0
    restored_warnings: int = 0
    sealed_messages: int = 0
    compacted_entries: int = 0
    retired_entries: int = 0
    memory_releases: int = 0
    live_entries_max: int = 0
    handoff_latencies_s: deque[float] = field(default_factory=lambda: deque(maxlen=100_000))

    def as_dict(self) -> dict[str, int]:
        return {k: v for k, v in self.__dict__.items() if isinstance(v, int)}


# --------------------------------------------------------------------------- outbox / store


Publish = Callable[[Sequence[Emit]], Awaitable[None]]


class Outbox:
    """Emits collected by synchronous code, published in order by one publisher at a time.

    ``flush`` returns once everything added before the call is published (a lock makes
    flushes sequential), which is what a consumer loop needs before committing offsets.
    """

    def __init__(self, publish: Publish) -> None:
        self._publish = publish
        self._items: list[Emit] = []
        self._lock = asyncio.Lock()

    def add(self, emits: Iterable[Emit]) -> None:
        self._items.extend(emits)

    def __len__(self) -> int:
        return len(self._items)

    async def flush(self) -> None:
        async with self._lock:
            while self._items:
                batch, self._items = self._items, []
                await self._publish(batch)


class LedgerStore(Protocol):
    """Where ledger state survives a crash: per partition, key → bytes (None deletes)."""

    async def write(self, partition: int, records: Sequence[tuple[str, bytes | None]]) -> None:
        """Durably store ``records`` in order (later records of one call land after earlier ones)."""

    async def load(self, partition: int) -> dict[str, bytes]:
        """The current value of every key of ``partition``."""


class MemoryLedgerStore:
    """A ``LedgerStore`` in a dict (tests; a restart within one process)."""

    def __init__(self) -> None:
        self.data: dict[int, dict[str, bytes]] = {}
        self.writes = 0

    async def write(self, partition: int, records: Sequence[tuple[str, bytes | None]]) -> None:
        part = self.data.setdefault(partition, {})
        for key, value in records:
            if value is None:
                part.pop(key, None)
            else:
                part[key] = value
        self.writes += len(records)

    async def load(self, partition: int) -> dict[str, bytes]:
        return dict(self.data.get(partition, {}))


class _Flusher:
    """Coalesces flush requests: ``flush()`` returns after a flush that *started* after the
    call, so whatever was dirty at call time is durable."""

    def __init__(self, do_flush: Callable[[], Awaitable[None]]) -> None:
        self._do = do_flush
        self._lock = asyncio.Lock()
        self._requested = 0
        self._done = 0

    async def flush(self) -> None:
        self._requested += 1
        mine = self._requested
        async with self._lock:
            if self._done >= mine:
                return
            target = self._requested
            await self._do()
            self._done = target


SEP = "\x1f"


def meta_key(warning_id: str) -> str:
    return f"{warning_id}{SEP}meta"


def slice_key(warning_id: str, message_id: str, channel: str, index: int) -> str:
    return f"{warning_id}{SEP}slice{SEP}{message_id}{SEP}{channel}{SEP}{index}"


# --------------------------------------------------------------------------- per-warning state

SliceId = tuple[str, str, int]  # (message_id, channel, slice index)


@dataclass
class FanOut:
    message_id: str
    channel: str
    slices: int = 1
    cursor: int = 0
    """Targets of the deterministic target stream tracked so far."""
    done: bool = False


@dataclass
class MessagePlan:
    msg: WarningMessage
    issued_ms: int
    expires_wall: float
    first_handoff_s: float | None = None
    sealed: bool = False
    next_seal_check: float = 0.0
    changes: int = 0
    published_changes: int = -1
    complete_published: bool = False


@dataclass
class _Gone:
    """Counters of compacted entries of one slice (what ``Ledger.compact`` keeps in counts)."""

    states: dict[str, int] = field(default_factory=dict)
    towns: dict[str, list[int]] = field(default_factory=dict)
    delivered_population: int = 0


@dataclass
class WarningState:
    warning_id: str
    partition: int
    seen: set[str] = field(default_factory=set)
    messages: dict[str, MessagePlan] = field(default_factory=dict)
    fanouts: dict[tuple[str, str], FanOut] = field(default_factory=dict)
    members: dict[SliceId, dict[str, None]] = field(default_factory=dict)
    """Target ids of the live entries of each slice (an ordered set; store mode only)."""
    gone: dict[SliceId, _Gone] = field(default_factory=dict)
    dirty_slices: set[SliceId] = field(default_factory=set)
    dirty_meta: bool = True
    deleted_slices: set[SliceId] = field(default_factory=set)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


@dataclass
class _Queued:
    warning_id: str
    message_id: str
    channel: str
    provider: str
    jobs: list[DeliveryJob] = field(default_factory=list)


def _wall_dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


_ZERO = timedelta(0)

REPORT_STATES = frozenset({"delivered", "failed", "acknowledged", "submitted"})
"""States a provider report (or an acknowledgement) may carry."""


def _report_time(at_iso: str) -> str | None:
    """A report's ISO timestamp as receipt JSON (``None`` if unusable or naive). The intake
    writes UTC as ``…Z`` (``json_time``), which is taken as it is once it parses."""
    try:
        parsed = datetime.fromisoformat(at_iso)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    if at_iso.endswith("Z") and parsed.utcoffset() == _ZERO:
        return f'"{at_iso}"'
    return json_time(parsed.astimezone(UTC))


# --------------------------------------------------------------------------- channels


def build_channels(
    settings: DispatchSettings,
    *,
    registry: ChannelRegistry | None = None,
    callback_base: str | None = None,
    address_of: Callable[[str], str] | None = None,
) -> dict[str, dict[str, Channel]]:
    """Channel instances per channel and provider name, configs validated (errors name them).

    A config model with a ``callback_url`` field that is left unset gets
    ``{callback_base}/callbacks/<channel>/<provider>``.
    """
    registry = registry or default_registry()
    out: dict[str, dict[str, Channel]] = {}
    for name, plan in settings.channels.items():
        cls = registry.load(name)
        instances: dict[str, Channel] = {}
        for index, raw in enumerate(plan.providers):
            try:
                config = cls.config_model.model_validate(raw)
            except ValidationError as exc:
                first = exc.errors()[0]
                key = ".".join(str(p) for p in first["loc"])
                raise DispatchConfigError(f"channels.{name}.providers[{index}]: key {key!r}: {first['msg']}") from exc
            provider = config.provider or name
            if provider in instances:
                raise DispatchConfigError(f"channels.{name}: provider name {provider!r} used twice")
            if (
                callback_base
                and "callback_url" in type(config).model_fields
                and getattr(config, "callback_url", None) is None
            ):
                config = config.model_copy(
                    update={"callback_url": f"{callback_base.rstrip('/')}/callbacks/{name}/{provider}"}
                )
            kwargs: dict[str, Any] = {}
            if address_of is not None and "address_of" in inspect.signature(cls).parameters:
                kwargs["address_of"] = address_of
            instances[provider] = cls(config, **kwargs)
        out[name] = instances
    for name, plan in settings.channels.items():
        for fallback in plan.fallback_channels:
            if fallback not in settings.channels:
                raise DispatchConfigError(f"channels.{name}.fallback_channels: {fallback!r} is not configured")
    return out


# --------------------------------------------------------------------------- dispatcher


class Dispatcher:
    """See the module docstring. All methods run on one event loop; none blocks it."""

    def __init__(
        self,
        settings: DispatchSettings,
        towns: TownshipLookup,
        *,
        publish: Publish,
        store: LedgerStore | None = None,
        metrics: Metrics | None = None,
        clock: Clock | None = None,
        registry: ChannelRegistry | None = None,
        channels: Mapping[str, Mapping[str, Channel]] | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.towns = towns
        self.store = store
        self.metrics = DispatchMetrics(metrics or Metrics())
        self.clock: Clock = clock or SystemClock()
        self.wall = wall
        self.registry = registry
        self.targeting = Targeting(towns, settings.audience, settings.audience_routes)
        self.outbox = Outbox(publish)
        self.stats = DispatchStats()
        self._given_channels = channels
        self.channels: dict[str, dict[str, Channel]] = {}
        self.ledger = Ledger(
            LedgerPolicy(retry=settings.retry, breaker=settings.breaker),
            random.Random(settings.seed),
            retire_finished=settings.retire_after_s is not None,
        )
        self.warnings: dict[str, WarningState] = {}
        self.rendered: dict[str, RenderedMessage] = {}
        self._queue: dict[tuple[str, str, str, str], _Queued] = {}
        self._retry_slots: dict[str, asyncio.Semaphore] = {}
        self._receipt_deadlines: list[tuple[float, int, str, str, str | tuple[str, ...], tuple[int, ...]]] = []
        """(deadline, seq, message, channel, target ids joined by ``TARGET_SEP``, attempts or ())
        per send batch: one string per batch, not a million live target strings."""
        self._seq = itertools.count()
        self._flusher = _Flusher(self._flush_state)
        self._next_flush = 0.0
        self._next_coverage = 0.0
        self._next_retire = 0.0
        self._freed_since_release = 0
        self._pending_deletes: list[tuple[int, list[tuple[str, bytes | None]]]] = []
        self.encoder = OutputEncoder()
        self._created_json: dict[str, str] = {}
        self._published: dict[tuple[str, str], int] = {}
        """(channel, state) → receipts published since the last tick (metrics in bulk)."""
        self._closing = False
        self._started = False

    # -- lifecycle -----------------------------------------------------------------

    async def start(self, callback_base: str | None = None) -> None:
        """Build and start the channel instances (a provider whose ``start`` fails is not used)."""
        if self._given_channels is not None:
            built = {ch: dict(p) for ch, p in self._given_channels.items()}
        else:
            built = build_channels(
                self.settings, registry=self.registry, callback_base=callback_base, address_of=self.sms_address
            )
        routes: dict[str, Route] = {}
        for name, providers in built.items():
            usable: dict[str, Channel] = {}
            for provider, channel in providers.items():
                try:
                    await channel.start()
                except Exception as exc:
                    log.error("provider unusable, not routed to", channel=name, provider=provider, error=repr(exc))
                    continue
                usable[provider] = channel
            if not usable:
                log.error("channel has no usable provider", channel=name)
                continue
            self.channels[name] = usable
            plan = self.settings.channels.get(name)
            routes[name] = Route(
                providers=tuple(usable), fallback_channels=plan.fallback_channels if plan is not None else ()
            )
            self._retry_slots[name] = asyncio.Semaphore(plan.max_inflight if plan is not None else 4)
        self.ledger.policy = LedgerPolicy(retry=self.settings.retry, breaker=self.settings.breaker, routes=routes)
        self._started = True

    async def close(self) -> None:
        """Stop every task, flush state and outputs, close the channels."""
        self._closing = True
        await self.release(self.owned_partitions())
        for providers in self.channels.values():
            for channel in providers.values():
                with contextlib.suppress(Exception):
                    await channel.close()

    # -- helpers ---------------------------------------------------------------------

    def now(self) -> float:
        return self.wall()

    def sms_address(self, target_id: str) -> str:
        """``esc:<official>:<escalated from>`` targets go to the official's phone."""
        if target_id.startswith("esc:"):
            return self.targeting.sms_address("off:" + target_id[4:].split(":", 1)[0])
        return self.targeting.sms_address(target_id)

    def knows(self, message_id: str) -> bool:
        return message_id in self.ledger.messages or message_id in self.ledger.compacted_messages

    def owned_partitions(self) -> set[int]:
        return {ws.partition for ws in self.warnings.values()}

    def _plan_of(self, message_id: str) -> tuple[WarningState, MessagePlan] | None:
        meta = self.ledger.messages.get(message_id)
        if meta is None:
            return None
        ws = self.warnings.get(meta.warning_id)
        if ws is None:
            return None
        plan = ws.messages.get(message_id)
        return (ws, plan) if plan is not None else None

    def _halted(self, message_id: str) -> str:
        """Why nothing more may be sent for a message ("" when it may)."""
        if self._closing:
            return "closing"
        meta = self.ledger.messages.get(message_id)
        if meta is None:
            return "forgotten"
        if meta.cancelled:
            return meta.cancelled
        if meta.expires_at is not None and self.now() >= meta.expires_at:
            return "expired"
        return ""

    def _spawn(self, ws: WarningState, coro: Awaitable[None], name: str) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        task.set_name(name)
        ws.tasks.add(task)

        def done(t: asyncio.Task[None]) -> None:
            ws.tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("dispatch task failed", task=name, error=repr(t.exception()))

        task.add_done_callback(done)

    def _receipt(self, message_id: str, channel: str, target_id: str, entry: Entry, at_json: str) -> Emit:
        """The ``DeliveryReceipt`` of an entry's current state, on ``receipts`` (key warning id)."""
        meta = self.ledger.messages.get(message_id)
        warning_id = meta.warning_id if meta is not None else message_id.rpartition(".v")[0]
        self.stats.receipts_published += 1
        key = (channel, entry.state)
        self._published[key] = self._published.get(key, 0) + 1
        value = self.encoder.receipt(
            message_id,
            warning_id,
            channel,
            target_id,
            entry.state,
            at_json,
            entry.provider,
            entry.reason,
            entry.attempt,
        )
        return Emit(tn.RECEIPTS, warning_id, value)

    def _job_emit(self, job: DeliveryJob) -> Emit:
        """A tracked job on ``deliveries`` (key warning id)."""
        created = self._created_json.get(job.message_id)
        if created is None:
            created = self._created_json[job.message_id] = json_time(job.created_at)
        value = self.encoder.job(
            job.message_id, job.warning_id, job.channel, job.target_id, job.township_code, job.population, created
        )
        return Emit(tn.DELIVERIES, job.warning_id, value)

    def _job(self, msg: WarningMessage, channel: str, target_id: str, township: str, population: int) -> DeliveryJob:
        return DeliveryJob(
            message_id=msg.message_id,
            warning_id=msg.warning_id,
            channel=channel,
            target_id=target_id,
            township_code=township,
            population=population,
            created_at=msg.sent_at,
        )

    def _targets(self, msg: WarningMessage, channel: str) -> Iterator[tuple[str, str, int]]:
        for audience in self.targeting.routes.get(channel, ()):
            yield from self.targeting.audience_targets(audience, msg.township_codes)

    def _channels_for(self, msg: WarningMessage) -> list[str]:
        wanted = self.settings.level_channels.get(msg.level)
        names = list(wanted) if wanted is not None else list(self.settings.channels)
        return [n for n in names if n in self.channels]

    def _escalates(self, msg: WarningMessage, channel: str) -> bool:
        """Must officials reached by ``msg`` on ``channel`` acknowledge it?"""
        esc = self.settings.escalation
        return (
            esc.ack_timeout_s is not None
            and channel == esc.channel
            and msg.msg_type != "Cancel"
            and msg.level in esc.levels
        )

    def _ack_deadline(self, msg: WarningMessage, channel: str, target_id: str) -> datetime | None:
        timeout = self.settings.escalation.ack_timeout_s
        if timeout is None or not self._escalates(msg, channel) or not target_id.startswith(("off:", "esc:")):
            return None
        return _wall_dt(self.now() + timeout)

    # -- persistence bookkeeping -------------------------------------------------------

    def _slices(self, ws: WarningState, message_id: str, channel: str) -> int:
        fo = ws.fanouts.get((message_id, channel))
        if fo is None:
            fo = ws.fanouts[(message_id, channel)] = FanOut(message_id, channel, slices=1, done=True)
            ws.dirty_meta = True
        return fo.slices

    def _member(self, ws: WarningState, message_id: str, channel: str, target_id: str) -> None:
        if self.store is None:
            return
        sid = (message_id, channel, zlib.crc32(target_id.encode()) % self._slices(ws, message_id, channel))
        ws.members.setdefault(sid, {})[target_id] = None
        ws.dirty_slices.add(sid)

    def _touch(self, ws: WarningState, message_id: str, channel: str, target_id: str) -> None:
        if self.store is None:
            return
        ws.dirty_slices.add(
            (message_id, channel, zlib.crc32(target_id.encode()) % self._slices(ws, message_id, channel))
        )

    def _changed(self, ws: WarningState, message_id: str) -> None:
        plan = ws.messages.get(message_id)
        if plan is not None:
            plan.changes += 1

    # -- records -------------------------------------------------------------------------

    def handle(self, record: Record) -> None:
        """One ``dispatch.work`` record (synchronous: effects are queued, tasks spawned)."""
        try:
            work = decode_work(record.value)
        except WorkDecodeError as exc:
            self.stats.bad_records += 1
            source = f"{record.topic}[{record.partition}]@{record.offset}"
            log.warning("dispatch work record rejected", source=source, error=str(exc))
            self.outbox.add(
                [reject_emit(source=source, reason="schema", detail=str(exc), raw=record.value, key=record.key or "")]
            )
            return
        try:
            if isinstance(work, WarningWork):
                self.admit(work.message, work.issued_ms, record.partition)
            else:
                source = f"{record.topic}[{record.partition}]@{record.offset}"
                self.apply_callbacks(record.key or "", work, record.partition, source)
        except Exception as exc:  # a bug must not stop the worker: leave a trace and go on
            self.stats.bad_records += 1
            source = f"{record.topic}[{record.partition}]@{record.offset}"
            log.exception("dispatch work record failed", source=source)
            self.outbox.add(
                [
                    reject_emit(
                        source=source,
                        reason="schema",
                        detail=f"dispatch failed on this record: {exc!r}",
                        raw=record.value,
                        key=record.key or "",
                    )
                ]
            )

    def admit(self, msg: WarningMessage, issued_ms: int, partition: int) -> None:
        """Steps 1–5 of the module docstring for one warning message."""
        ws = self.warnings.get(msg.warning_id)
        if ws is None:
            ws = self.warnings[msg.warning_id] = WarningState(msg.warning_id, partition)
        bound = log.bind(warning_id=msg.warning_id, message_id=msg.message_id)
        if msg.state_key in ws.seen:
            self.stats.duplicate_warnings += 1
            self.metrics.warnings.labels("duplicate").inc()
            return
        ws.seen.add(msg.state_key)
        ws.dirty_meta = True
        if not msg.disseminate:
            self.stats.held += 1
            self.metrics.warnings.labels("held").inc()
            bound.info("held for approval: nothing sent", approval=msg.approval)
            return
        if msg.message_id in ws.messages:
            self.stats.duplicate_warnings += 1
            self.metrics.warnings.labels("duplicate").inc()
            return
        event_now = self.clock.now()
        if msg.expires_at <= event_now:
            self.stats.expired_on_arrival += 1
            self.metrics.warnings.labels("expired").inc()
            bound.warning("expired on arrival: nothing sent", expires_at=msg.expires_at.isoformat())
            return
        meta = self.ledger.messages.get(msg.message_id)
        if meta is not None and meta.cancelled:
            self.stats.not_sent += 1
            self.metrics.warnings.labels("superseded").inc()
            bound.info("already superseded: not sent", why=meta.cancelled)
            return
        sent_before = [ref.message_id for ref in msg.references if ref.message_id in ws.messages]
        if msg.msg_type != "Alert":
            why = "cancelled" if msg.msg_type == "Cancel" else "superseded"
            for ref in msg.references:
                self._stop_message(ws, ref.message_id, why)
        if msg.msg_type == "Cancel" and not sent_before:
            self.stats.not_sent += 1
            self.metrics.warnings.labels("cancel_of_unsent").inc()
            bound.info("cancel of a warning that was never sent: not sent")
            return
        now = self.now()
        self.ledger.register_message(msg)
        expires_wall = now + (msg.expires_at - event_now).total_seconds()
        self.ledger.messages[msg.message_id].expires_at = expires_wall
        plan = MessagePlan(msg, issued_ms, expires_wall)
        ws.messages[msg.message_id] = plan
        self.stats.warnings_admitted += 1
        self.metrics.warnings.labels("admitted").inc()
        rendered = self._render(msg)
        if rendered is None:
            plan.sealed = True
            return
        for channel in self._channels_for(msg):
            primary = next(iter(self.channels[channel].values()))
            violations = primary.check(rendered)
            if violations:
                self._limit_violation(msg, channel, violations)
                continue
            size = self.targeting.audience_size(msg, channel)
            fo = FanOut(msg.message_id, channel, slices=max(1, -(-size // self.settings.slice_targets)))
            ws.fanouts[(msg.message_id, channel)] = fo
            self._spawn(ws, self._fanout(ws, fo), f"fanout:{msg.message_id}:{channel}")
        bound.info("dispatching", channels=[c for (m, c) in ws.fanouts if m == msg.message_id], level=msg.level)

    def _render(self, msg: WarningMessage) -> RenderedMessage | None:
        hit = self.rendered.get(msg.message_id)
        if hit is not None:
            return hit
        try:
            rendered = render_message(msg, self.towns, self.settings.render)
        except Exception as exc:  # a message we cannot render must not stop the worker
            self.stats.not_sent += 1
            self.metrics.warnings.labels("render_failed").inc()
            log.error("render failed: not sent", message_id=msg.message_id, error=repr(exc))
            self.outbox.add(
                [
                    reject_emit(
                        source=f"dispatch:{msg.message_id}",
                        reason="schema",
                        detail=f"cannot render {msg.message_id}: {exc!r}",
                        raw=msg.model_dump_json(),
                        key=msg.key,
                    )
                ]
            )
            return None
        self.rendered[msg.message_id] = rendered
        return rendered

    def _limit_violation(self, msg: WarningMessage, channel: str, violations: Sequence[Any]) -> None:
        detail = "; ".join(f"{v.limit}: {v.actual:g} > {v.allowed:g}" for v in violations)
        self.stats.limit_violations += 1
        for v in violations:
            self.metrics.limit_violations.labels(channel, v.limit).inc()
        log.error(
            "message exceeds channel limits: channel not used",
            warning_id=msg.warning_id,
            message_id=msg.message_id,
            channel=channel,
            violations=detail,
        )
        self.outbox.add(
            [
                reject_emit(
                    source=f"dispatch:{channel}",
                    reason="oversized",
                    detail=f"{msg.message_id} on {channel}: {detail}",
                    raw=msg.model_dump_json(),
                    key=msg.key,
                )
            ]
        )

    def _stop_message(self, ws: WarningState, message_id: str, why: str) -> None:
        """Nothing more is sent for ``message_id``; its pending entries become ``skipped``."""
        table = self.ledger.entries.get(message_id, {})
        pending = [key for key, entry in table.items() if entry.state == "pending"]
        skipped = self.ledger.cancel_message(message_id, why)
        self.stats.skipped += skipped
        at = json_time(_wall_dt(self.now()))
        emits = []
        for channel, target_id in pending:
            entry = table[(channel, target_id)]
            if entry.state == "skipped":
                emits.append(self._receipt(message_id, channel, target_id, entry, at))
                self._touch(ws, message_id, channel, target_id)
        self.outbox.add(emits)
        self._changed(ws, message_id)
        ws.dirty_meta = True
        for key in [k for k in self._queue if k[1] == message_id]:
            del self._queue[key]

    # -- fan-out ---------------------------------------------------------------------------

    async def _fanout(self, ws: WarningState, fo: FanOut) -> None:
        plan = ws.messages[fo.message_id]
        msg = plan.msg
        rendered = self.rendered.get(msg.message_id) or self._render(msg)
        if rendered is None:
            return
        cfg = self.settings.channels[fo.channel]
        slots = asyncio.Semaphore(cfg.max_inflight)
        targets = itertools.islice(self._targets(msg, fo.channel), fo.cursor, None)
        sends: set[asyncio.Task[None]] = set()
        try:
            while not self._halted(msg.message_id):
                await slots.acquire()
                if self._halted(msg.message_id):
                    slots.release()
                    break
                chunk = list(itertools.islice(targets, cfg.batch_size))
                if not chunk:
                    slots.release()
                    break
                provider = await self._choose_provider(fo.channel, msg.message_id)
                if provider is None:
                    slots.release()
                    break
                jobs = []
                escalates = self._escalates(msg, fo.channel)
                track = self.ledger.track
                for target_id, township, population in chunk:
                    try:
                        job = self._job(msg, fo.channel, target_id, township, population)
                    except ValidationError as exc:  # e.g. a configured subscriber id over 128 chars
                        self._bad_target(msg, fo.channel, target_id, exc)
                        continue
                    deadline = self._ack_deadline(msg, fo.channel, target_id) if escalates else None
                    if track(job, provider=provider, ack_deadline=deadline, fresh=True):
                        jobs.append(job)
                        if self.store is not None:
                            self._member(ws, msg.message_id, fo.channel, target_id)
                fo.cursor += len(chunk)
                ws.dirty_meta = True
                self.stats.jobs_tracked += len(jobs)
                self._changed(ws, msg.message_id)
                self.outbox.add(self._job_emit(j) for j in jobs)
                task = asyncio.ensure_future(
                    self._send(ws, msg.message_id, fo.channel, provider, jobs, rendered, slots.release)
                )
                sends.add(task)
                task.add_done_callback(sends.discard)
                task.add_done_callback(_log_failure)
            if sends:
                await asyncio.gather(*sends, return_exceptions=True)
        except asyncio.CancelledError:
            for task in sends:
                task.cancel()
            await asyncio.gather(*sends, return_exceptions=True)
            raise
        if self._halted(msg.message_id) in ("closing", "forgotten"):
            return  # handed over, not finished: the next owner resumes at the cursor
        fo.done = True
        ws.dirty_meta = True

    def _bad_target(self, msg: WarningMessage, channel: str, target_id: str, exc: ValidationError) -> None:
        self.stats.not_sent += 1
        log.error("target skipped: not a valid delivery", message_id=msg.message_id, channel=channel, error=str(exc))
        self.outbox.add(
            [
                reject_emit(
                    source=f"dispatch:{channel}",
                    reason="schema",
                    detail=f"{msg.message_id}: target {target_id[:200]!r} skipped: {exc.errors()[0]['msg']}",
                    raw=target_id,
                    key=msg.key,
                )
            ]
        )

    async def _choose_provider(self, channel: str, message_id: str) -> str | None:
        """The first provider of the route whose breaker lets a request through; waits while
        every breaker is open (None if the message is halted meanwhile)."""
        providers = list(self.channels[channel])
        while not self._halted(message_id):
            at = _wall_dt(self.now())
            for provider in providers:
                if self.ledger.allow_send(provider, at):
                    return provider
            await asyncio.sleep(min(1.0, self.settings.breaker.open_s / 4))
        return None

    async def _send(
        self,
        ws: WarningState,
        message_id: str,
        channel: str,
        provider: str,
        jobs: list[DeliveryJob],
        rendered: RenderedMessage,
        release: Callable[[], None],
    ) -> None:
        try:
            if not jobs:
                return
            await self._flusher.flush()  # 'pending' is durable before anything leaves
            table = self.ledger.entries.get(message_id, {})
            jobs = [j for j in jobs if (e := table.get((channel, j.target_id))) is not None and e.state == "pending"]
            if not jobs:
                return
            instance = self.channels[channel].get(provider) or next(iter(self.channels[channel].values()))
            found = self._plan_of(message_id)
            if found is not None and found[1].first_handoff_s is None:
                plan = found[1]
                plan.first_handoff_s = self.now()
                if plan.issued_ms:
                    latency = max(0.0, plan.first_handoff_s - plan.issued_ms / 1000)
                    self.stats.handoff_latencies_s.append(latency)
                    self.metrics.base.stage_latency.labels("dispatch_handoff").observe(latency)
            self.stats.handoffs += len(jobs)
            self.stats.send_batches += 1
            self.metrics.handoffs.labels(channel, instance.provider).inc(len(jobs))
            results = await self._call_send(instance, jobs, rendered)
            self._apply_results(ws, message_id, channel, jobs, results, instance)
            await self.outbox.flush()
        finally:
            release()

    async def _call_send(
        self, instance: Channel, jobs: list[DeliveryJob], rendered: RenderedMessage
    ) -> list[TargetResult]:
        provider = instance.provider
        try:
            results = await instance.send(jobs, rendered)
        except TransientChannelError as exc:
            return [
                TargetResult.failed(j.target_id, provider, f"transient: {exc}"[:300], retry_after_s=exc.retry_after_s)
                for j in jobs
            ]
        except PermanentChannelError as exc:
            return [TargetResult.failed(j.target_id, provider, f"channel unusable: {exc}"[:300]) for j in jobs]
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a channel bug: the batch counts as transiently failed
            log.error("channel send raised", provider=provider, error=repr(exc))
            return [TargetResult.failed(j.target_id, provider, f"channel error: {exc!r}"[:300]) for j in jobs]
        if [r.target_id for r in results] != [j.target_id for j in jobs]:
            by_target = {r.target_id: r for r in results}
            log.error("channel broke the one-result-per-job contract", provider=provider)
            results = [
                by_target.get(j.target_id) or TargetResult.failed(j.target_id, provider, "channel returned no result")
                for j in jobs
            ]
        return results

    def _apply_results(
        self,
        ws: WarningState,
        message_id: str,
        channel: str,
        jobs: Sequence[DeliveryJob],
        results: Sequence[TargetResult],
        instance: Channel,
    ) -> None:
        table = self.ledger.entries.get(message_id, {})
        before: dict[str, tuple[str, int]] = {}
        for r in results:
            entry = table.get((channel, r.target_id))
            if entry is not None:
                before[r.target_id] = (entry.state, entry.attempt)
        now = self.now()
        at = _wall_dt(now)
        summary = self.ledger.apply_results(message_id, channel, results, at)
        at_json = json_time(at)
        emits = []
        submitted: list[str] = []
        submitted_attempts: list[int] = []
        for r in results:
            entry = table.get((channel, r.target_id))
            if entry is None or (entry.state, entry.attempt) == before.get(r.target_id):
                continue
            emits.append(self._receipt(message_id, channel, r.target_id, entry, at_json))
            self._touch(ws, message_id, channel, r.target_id)
            if entry.state == "submitted":
                submitted.append(r.target_id)
                submitted_attempts.append(entry.attempt)
        self.outbox.add(emits)
        self._changed(ws, message_id)
        plan = self.settings.channels.get(channel)
        if submitted and plan is not None and plan.receipt_timeout_s is not None and instance.supports_receipts:
            same = all(a == 1 for a in submitted_attempts)
            heapq.heappush(
                self._receipt_deadlines,
                (
                    now + plan.receipt_timeout_s,
                    next(self._seq),
                    message_id,
                    channel,
                    join_targets(submitted),
                    () if same else tuple(submitted_attempts),
                ),
            )
        for decision in summary.decisions:
            self._on_decision(ws, decision)
        provider = instance.provider
        self.metrics.breaker_open.labels(provider).set(1 if self.ledger.breaker(provider).is_open(now) else 0)

    def _on_decision(self, ws: WarningState, d: Decision) -> None:
        self.metrics.decisions.labels(d.action).inc()
        if d.action == "retry":
            self.stats.retries += 1
        elif d.action == "switch_provider":
            self.stats.provider_switches += 1
        elif d.action == "give_up":
            self.stats.give_ups += 1
        elif d.action == "other_channel":
            self.stats.channel_fallbacks += 1
            self._fallback(ws, d)

    def _fallback(self, ws: WarningState, d: Decision) -> None:
        """Reach a failed target's township on another channel (township-level targets only:
        ``zone:<township>`` on SMS, the township's terminals on broadcast, configured
        subscribers on webhook/apprise — never every app token of a township)."""
        entry = self.ledger.entry(d.message_id, d.channel, d.target_id)
        found = self._plan_of(d.message_id)
        if entry is None or found is None or d.fallback_channel not in self.channels:
            return
        msg = found[1].msg
        township = entry.township_code
        targets: list[tuple[str, str, int]] = []
        for audience in self.targeting.routes.get(d.fallback_channel, ()):
            if audience in ("app", "officials_sms"):
                continue
            targets.extend(self.targeting.audience_targets(audience, [township]))
        provider = next(iter(self.channels[d.fallback_channel]))
        for target_id, town, population in targets:
            try:
                job = self._job(msg, d.fallback_channel, target_id, town, population)
            except ValidationError as exc:
                self._bad_target(msg, d.fallback_channel, target_id, exc)
                continue
            if self.ledger.track(job, provider=provider):
                self._member(ws, msg.message_id, d.fallback_channel, target_id)
                self.stats.jobs_tracked += 1
                self.outbox.add([self._job_emit(job)])
                self._enqueue(ws, msg.message_id, d.fallback_channel, provider, job)

    def _enqueue(self, ws: WarningState, message_id: str, channel: str, provider: str, job: DeliveryJob) -> None:
        key = (ws.warning_id, message_id, channel, provider)
        queued = self._queue.get(key)
        if queued is None:
            queued = self._queue[key] = _Queued(ws.warning_id, message_id, channel, provider)
        queued.jobs.append(job)

    # -- callbacks ------------------------------------------------------------------------

    def apply_callbacks(self, warning_id: str, work: CallbackWork, partition: int, source: str = "") -> None:
        """Provider receipts (and acknowledgements) for one warning.

        Rows that cannot be applied — malformed (unknown state, unusable time) or about a
        delivery this worker does not know (the ingress that took the callback could not
        tell) — are counted, logged once per record and leave one ``obs.rejected`` record
        naming how many and the first of each kind; the other rows are applied."""
        ws = self.warnings.get(warning_id)
        now = self.now()
        at_now = _wall_dt(now)
        channel = work.channel
        emits: list[Emit] = []
        outcomes: dict[str, int] = {}
        changed: set[str] = set()
        dropped: dict[str, list[CallbackRow]] = {}
        for row in work.rows:
            message_id, target_id, state, at_iso, provider, reason = row
            at_json = _report_time(at_iso)
            if state not in REPORT_STATES or at_json is None:
                outcomes["malformed"] = outcomes.get("malformed", 0) + 1
                dropped.setdefault("malformed", []).append(row)
                continue
            outcome, decision = self.ledger.apply_report(
                message_id,
                channel,
                target_id,
                state,  # type: ignore[arg-type]  # checked against REPORT_STATES just above
                at_now,
                provider[:64],
                reason[:300],
            )
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            if outcome == "applied":
                self.stats.callbacks_applied += 1
                entry = self.ledger.entry(message_id, channel, target_id)
                if entry is not None and ws is not None:
                    emits.append(self._receipt(message_id, channel, target_id, entry, at_json))
                    self._touch(ws, message_id, channel, target_id)
                    changed.add(message_id)
                    if decision is not None:
                        self._on_decision(ws, decision)
            elif outcome == "duplicate":
                self.stats.callbacks_duplicate += 1
            elif outcome == "stale":
                self.stats.callbacks_stale += 1
            elif outcome == "late":
                self.stats.callbacks_late += 1
            else:
                self.stats.callbacks_unknown += 1
                kind = "unknown_target" if self.knows(message_id) else "unknown_message"
                dropped.setdefault(kind, []).append(row)
        if ws is not None:
            for message_id in changed:
                self._changed(ws, message_id)
        for name, n in outcomes.items():
            self.metrics.callbacks.labels(name).inc(n)
        if dropped:
            emits.append(
                self._dropped_receipts(warning_id, channel, dropped, source or f"{DISPATCH_WORK}[{partition}]")
            )
        self.outbox.add(emits)

    def _dropped_receipts(
        self, warning_id: str, channel: str, dropped: Mapping[str, list[CallbackRow]], source: str
    ) -> Emit:
        """One trace for the rows of a callbacks record that could not be applied."""
        what = {
            "malformed": "malformed receipt row(s) (state not one of "
            f"{'/'.join(sorted(REPORT_STATES))}, or no usable time with a zone)",
            "unknown_message": f"{UNKNOWN_MESSAGE_TAG} receipt(s) for message(s) this worker never sent",
            "unknown_target": "receipt(s) for target(s) the message was never sent to",
        }
        parts = []
        for kind, rows in dropped.items():
            first = rows[0]
            parts.append(f"{len(rows)} {what[kind]}, e.g. {first[0][:160]} / {first[1][:128]} / {first[2][:20]!r}")
        detail = f"{channel} receipts for {warning_id}: dropped " + "; ".join(parts)
        log.warning("receipts dropped", warning_id=warning_id, channel=channel, source=source, detail=detail[:500])
        raw = encode_callbacks(channel, [row for rows in dropped.values() for row in rows[:50]])
        reason: RejectReason = UNKNOWN_MESSAGE if set(dropped) == {"unknown_message"} else "schema"
        return reject_emit(source=source[:128], reason=reason, detail=detail[:2000], raw=raw, key=warning_id)

    # -- ticks ------------------------------------------------------------------------------

    def tick(self) -> None:
        """Time-driven work (step 6 of the module docstring); spawns the sends it needs."""
        now = self.now()
        at = _wall_dt(now)
        self._retries_due(at)
        self._escalate(at)
        self._receipt_timeouts(now)
        self._expire(now)
        self._drain_queue()
        if self.settings.retire_after_s is not None and now >= self._next_retire:
            self._next_retire = now + self.settings.retire_after_s
            self._retire()
        self._seal_and_compact(now)
        if now >= self._next_coverage:
            self._next_coverage = now + self.settings.coverage_interval_s
            self._publish_coverage(at)
            self._forget_old(now)
        live = self.ledger.live_entries()
        self.stats.live_entries_max = max(self.stats.live_entries_max, live)
        self.metrics.live_entries.set(live)
        published, self._published = self._published, {}
        for (channel, state), n in published.items():
            self.metrics.base.deliveries.labels(channel, state).inc(n)

    async def tick_and_flush(self) -> None:
        """``tick`` plus the periodic state flush and the output flush."""
        self.tick()
        now = self.now()
        if now >= self._next_flush:
            self._next_flush = now + self.settings.flush_interval_s
            await self._flusher.flush()
        await self.outbox.flush()

    def _retries_due(self, at: datetime) -> None:
        at_json = json_time(at)
        emits = []
        for due in self.ledger.due(at, limit=20_000):
            found = self._plan_of(due.message_id)
            if found is None:
                continue
            ws, plan = found
            attempt = self.ledger.begin_attempt(due.message_id, due.channel, due.target_id, at)
            entry = self.ledger.entry(due.message_id, due.channel, due.target_id)
            if attempt is None or entry is None:
                continue
            emits.append(self._receipt(due.message_id, due.channel, due.target_id, entry, at_json))
            self._touch(ws, due.message_id, due.channel, due.target_id)
            self._changed(ws, due.message_id)
            job = self._job(plan.msg, due.channel, due.target_id, entry.township_code, entry.population)
            self._enqueue(ws, due.message_id, due.channel, entry.provider, job)
        self.outbox.add(emits)

    def _escalate(self, at: datetime) -> None:
        for esc in self.ledger.escalations_due(at):
            self._escalate_one(esc)

    def _escalate_one(self, esc: Escalation) -> None:
        found = self._plan_of(esc.message_id)
        if found is None or self._halted(esc.message_id):
            return
        ws, plan = found
        official_id = esc.target_id.split(":", 2)[1] if ":" in esc.target_id else ""
        try:
            boss = self.targeting.superior_of(official_id)
        except (ValueError, IndexError):
            return
        if boss is None:
            self.stats.escalations_exhausted += 1
            log.warning("escalation chain exhausted", message_id=esc.message_id, target_id=esc.target_id)
            return
        channel = esc.channel
        if channel not in self.channels:
            return
        target_id = f"esc:{boss.official_id}:{official_id}"
        entry = self.ledger.entry(esc.message_id, esc.channel, esc.target_id)
        township = entry.township_code if entry is not None else plan.msg.township_codes[0]
        job = self._job(plan.msg, channel, target_id, township, 1)
        provider = next(iter(self.channels[channel]))
        if self.ledger.track(job, provider=provider, ack_deadline=self._ack_deadline(plan.msg, channel, target_id)):
            self._member(ws, esc.message_id, channel, target_id)
            self.stats.escalations += 1
            self.stats.jobs_tracked += 1
            self.metrics.escalations.inc()
            log.info(
                "escalated: no acknowledgement in time",
                message_id=esc.message_id,
                official=official_id,
                superior=boss.official_id,
            )
            self.outbox.add([self._job_emit(job)])
            self._enqueue(ws, esc.message_id, channel, provider, job)

    def _receipt_timeouts(self, now: float) -> None:
        heap = self._receipt_deadlines
        at = _wall_dt(now)
        emits = []
        while heap and heap[0][0] <= now:
            _, _, message_id, channel, targets, attempts = heapq.heappop(heap)
            found = self._plan_of(message_id)
            if found is None:
                continue
            ws = found[0]
            plan = self.settings.channels.get(channel)
            timeout = plan.receipt_timeout_s if plan is not None and plan.receipt_timeout_s is not None else 0.0
            for i, target_id in enumerate(split_targets(targets)):
                entry = self.ledger.entry(message_id, channel, target_id)
                attempt = attempts[i] if attempts else 1
                if entry is None or entry.state != "submitted" or entry.attempt != attempt:
                    continue
                receipt = DeliveryReceipt(
                    message_id=message_id,
                    warning_id=ws.warning_id,
                    channel=channel,
                    target_id=target_id,
                    state="failed",
                    at=at,
                    provider=entry.provider[:64],
                    reason=f"no delivery report within {timeout:g} s",
                    attempt=entry.attempt,
                )
                if self.ledger.apply(receipt) == "applied":
                    entry.final = True
                    self.stats.receipt_timeouts += 1
                    emits.append(self._receipt(message_id, channel, target_id, entry, json_time(at)))
                    self._touch(ws, message_id, channel, target_id)
                    self._changed(ws, message_id)
        self.outbox.add(emits)

    def _expire(self, now: float) -> None:
        for ws in list(self.warnings.values()):
            for mid, plan in ws.messages.items():
                meta = self.ledger.messages.get(mid)
                if plan.sealed or meta is None or meta.cancelled or now < plan.expires_wall:
                    continue
                self._stop_message(ws, mid, "expired")

    def _drain_queue(self) -> None:
        if not self._queue:
            return
        queued, self._queue = list(self._queue.values()), {}
        for q in queued:
            found = self._plan_of(q.message_id)
            if found is None or self._halted(q.message_id) or q.channel not in self.channels:
                continue
            ws = found[0]
            rendered = self._render(found[1].msg)
            if rendered is None:
                continue
            size = self.settings.channels[q.channel].batch_size
            for i in range(0, len(q.jobs), size):
                self._spawn(
                    ws,
                    self._send_queued(ws, q.message_id, q.channel, q.provider, q.jobs[i : i + size], rendered),
                    f"resend:{q.message_id}:{q.channel}",
                )

    async def _send_queued(
        self,
        ws: WarningState,
        message_id: str,
        channel: str,
        provider: str,
        jobs: list[DeliveryJob],
        rendered: RenderedMessage,
    ) -> None:
        slots = self._retry_slots[channel]
        await slots.acquire()
        await self._send(ws, message_id, channel, provider, jobs, rendered, slots.release)

    # -- sealing, compaction, coverage, forgetting ---------------------------------------------

    def _seal_and_compact(self, now: float) -> None:
        for ws in list(self.warnings.values()):
            for mid, plan in ws.messages.items():
                if plan.sealed or now < plan.next_seal_check:
                    continue
                if any(not fo.done for (m, _), fo in ws.fanouts.items() if m == mid):
                    continue
                if any(k[1] == mid for k in self._queue):
                    continue
                counts = self.ledger.counts.get(mid, {})
                if any(states.get("pending", 0) or states.get("submitted", 0) for states in counts.values()):
                    continue
                plan.next_seal_check = now + self.settings.seal_check_interval_s
                table = self.ledger.entries.get(mid, {})
                if any(
                    (e.state == "failed" and not e.final)
                    or (e.ack_deadline is not None and not e.escalated and e.state != "acknowledged")
                    for e in table.values()
                ):
                    continue
                self._seal(ws, mid, plan)

    def _seal(self, ws: WarningState, message_id: str, plan: MessagePlan) -> None:
        """The message's account is final: seal it, compact its finished entries."""
        self.ledger.seal(message_id)
        plan.sealed = True
        ws.dirty_meta = True
        self.stats.sealed_messages += 1
        self.rendered.pop(message_id, None)
        table = self.ledger.entries.get(message_id, {})
        if self.store is not None:
            for sid, members in list(ws.members.items()):
                if sid[0] != message_id:
                    continue
                gone = ws.gone.setdefault(sid, _Gone())
                keep: dict[str, None] = {}
                for target_id in members:
                    entry = table.get((sid[1], target_id))
                    if entry is None:
                        continue
                    if entry.finished():
                        _add_gone(gone, entry)
                    else:
                        keep[target_id] = None
                ws.members[sid] = keep
                ws.dirty_slices.add(sid)
        removed = self.ledger.compact([message_id])
        self.stats.compacted_entries += removed
        self._freed_since_release += removed
        self._changed(ws, message_id)
        # The final account goes out with the seal, in the same outbox flush as the seal's
        # last receipts — not at the next ``coverage_interval_s`` tick: until then the last
        # report of a sealed message would still say ``complete=False`` (and not name the
        # deliveries that completed it).
        plan.published_changes = plan.changes
        report = self.ledger.coverage(message_id, _wall_dt(self.now()))
        self.outbox.add([Emit(tn.COVERAGE, ws.warning_id, report.model_dump_json().encode())])
        self._created_json.pop(message_id, None)
        if any(item[2] == message_id for item in self._receipt_deadlines):
            self._receipt_deadlines = [item for item in self._receipt_deadlines if item[2] != message_id]
            heapq.heapify(self._receipt_deadlines)
        log.info("message sealed", message_id=message_id, compacted=removed, live=len(table))
        if self._freed_since_release >= RELEASE_AFTER_ENTRIES:
            # a large fan-out is over: give its memory back (see ``release_memory``)
            self._freed_since_release = 0
            self.stats.memory_releases += 1
            release_memory()

    def _retire(self) -> None:
        """Drop finished delivered/acknowledged entries (``Ledger.retire``); in store mode
        their slices keep the outcome in their ``gone`` counters."""
        removed, retired = self.ledger.retire(collect=self.store is not None)
        self.stats.retired_entries += removed
        self._freed_since_release += removed
        for message_id, channel, target_id, entry in retired:
            meta = self.ledger.messages.get(message_id)
            ws = self.warnings.get(meta.warning_id) if meta is not None else None
            if ws is None:
                continue
            sid = (message_id, channel, zlib.crc32(target_id.encode()) % self._slices(ws, message_id, channel))
            members = ws.members.get(sid)
            if members is None or target_id not in members:
                continue
            del members[target_id]
            _add_gone(ws.gone.setdefault(sid, _Gone()), entry)
            ws.dirty_slices.add(sid)

    def _publish_coverage(self, at: datetime) -> None:
        unreached: dict[str, int] = {level: 0 for level in LEVEL_RANK if level != "none"}
        emits = []
        now = at.timestamp()
        for ws in self.warnings.values():
            latest: MessagePlan | None = None
            for plan in ws.messages.values():
                if latest is None or plan.msg.version > latest.msg.version:
                    latest = plan
            for mid, plan in ws.messages.items():
                if plan.changes == plan.published_changes:
                    report = None
                else:
                    plan.published_changes = plan.changes
                    report = self.ledger.coverage(mid, at)
                    emits.append(Emit(tn.COVERAGE, ws.warning_id, report.model_dump_json().encode()))
                if (
                    plan is latest
                    and plan.msg.msg_type != "Cancel"
                    and not self.ledger.messages.get(mid, _NO_META).cancelled
                    and now < plan.expires_wall
                ):
                    report = report or self.ledger.coverage(mid, at)
                    unreached[plan.msg.level] += len(report.unreached_townships)
        for level, n in unreached.items():
            self.metrics.unreached.labels(level).set(n)
        self.outbox.add(emits)

    def _forget_old(self, now: float) -> None:
        for ws in list(self.warnings.values()):
            if not ws.messages or ws.tasks:
                continue
            last = max(plan.expires_wall for plan in ws.messages.values())
            if now < last + self.settings.forget_after_s or not all(p.sealed for p in ws.messages.values()):
                continue
            self._drop(ws, delete=True)

    def _drop(self, ws: WarningState, *, delete: bool) -> None:
        mids = [mid for mid, meta in self.ledger.messages.items() if meta.warning_id == ws.warning_id]
        self.ledger.forget(mids)
        for mid in mids:
            self.rendered.pop(mid, None)
            self._created_json.pop(mid, None)
        gone = set(mids)
        if any(item[2] in gone for item in self._receipt_deadlines):
            self._receipt_deadlines = [item for item in self._receipt_deadlines if item[2] not in gone]
            heapq.heapify(self._receipt_deadlines)
        self.warnings.pop(ws.warning_id, None)
        if delete and self.store is not None:
            records: list[tuple[str, bytes | None]] = [
                (slice_key(ws.warning_id, *sid), None) for sid in (*ws.members, *ws.gone, *ws.deleted_slices)
            ]
            records.append((meta_key(ws.warning_id), None))
            self._pending_deletes.append((ws.partition, records))

    # -- state flush / restore ------------------------------------------------------------------

    async def flush_state(self) -> None:
        """Make every dirty warning's state durable (no-op without a store)."""
        await self._flusher.flush()

    async def _flush_state(self) -> None:
        """Outputs before state: the dirty state is captured, then every output queued so far
        (jobs, receipts) is published, then the state is written. A crash can therefore
        leave outputs without their state (they are re-derived and published again, as
        identical records) but never durable state whose outputs were lost."""
        if self.store is None:
            return
        deletes, self._pending_deletes = self._pending_deletes, []
        by_partition: dict[int, list[tuple[str, bytes | None]]] = {}
        taken: list[tuple[WarningState, set[SliceId], bool]] = []
        for ws in self.warnings.values():
            if not ws.dirty_meta and not ws.dirty_slices:
                continue
            dirty, ws.dirty_slices = ws.dirty_slices, set()
            records = by_partition.setdefault(ws.partition, [])
            for sid in sorted(dirty):
                records.append((slice_key(ws.warning_id, *sid), self._encode_slice(ws, sid)))
            records.append((meta_key(ws.warning_id), self._encode_meta(ws)))
            taken.append((ws, dirty, ws.dirty_meta))
            ws.dirty_meta = False
        for partition, records in deletes:
            by_partition.setdefault(partition, []).extend(records)
        try:
            await self.outbox.flush()
            for partition, records in by_partition.items():
                await self.store.write(partition, records)
        except BaseException:
            for ws, dirty, _ in taken:
                ws.dirty_slices |= dirty
                ws.dirty_meta = True
            self._pending_deletes = deletes + self._pending_deletes
            raise

    def _encode_meta(self, ws: WarningState) -> bytes:
        ledger_meta = {
            mid: [m.expires_at, m.cancelled, m.sealed]
            for mid, m in self.ledger.messages.items()
            if m.warning_id == ws.warning_id
        }
        doc = {
            "v": 1,
            "warning_id": ws.warning_id,
            "seen": sorted(ws.seen),
            "messages": {
                mid: {
                    "msg": plan.msg.model_dump(mode="json"),
                    "issued_ms": plan.issued_ms,
                    "expires_wall": plan.expires_wall,
                    "first_handoff_s": plan.first_handoff_s,
                    "sealed": plan.sealed,
                }
                for mid, plan in ws.messages.items()
            },
            "ledger": ledger_meta,
            "compacted": sorted(m for m in ledger_meta if m in self.ledger.compacted_messages),
            "fanouts": [[fo.message_id, fo.channel, fo.slices, fo.cursor, fo.done] for fo in ws.fanouts.values()],
        }
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()

    def _encode_slice(self, ws: WarningState, sid: SliceId) -> bytes | None:
        message_id, channel, _ = sid
        table = self.ledger.entries.get(message_id, {})
        rows = []
        for target_id in ws.members.get(sid, ()):
            entry = table.get((channel, target_id))
            if entry is not None:
                rows.append([target_id, *[getattr(entry, f) for f in _ENTRY_FIELDS]])
        gone = ws.gone.get(sid)
        if not rows and gone is None:
            ws.deleted_slices.add(sid)
            return None
        ws.deleted_slices.discard(sid)
        doc: dict[str, Any] = {"rows": rows}
        if gone is not None:
            doc["gone"] = {"states": gone.states, "towns": gone.towns, "pop": gone.delivered_population}
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()

    async def restore(self, partitions: Iterable[int]) -> int:
        """Load the warnings of ``partitions`` from the store and resume their work.

        Returns how many warnings were restored. Call before handling any record of those
        partitions (the runtime does it on assignment).
        """
        if self.store is None:
            return 0
        restored = 0
        for partition in partitions:
            data = await self.store.load(partition)
            grouped: dict[str, dict[str, bytes]] = {}
            for key, value in data.items():
                grouped.setdefault(key.split(SEP, 1)[0], {})[key] = value
            for warning_id, records in grouped.items():
                if warning_id in self.warnings:
                    continue
                meta = records.get(meta_key(warning_id))
                if meta is None:
                    continue
                try:
                    self._restore_warning(warning_id, partition, meta, records)
                except (ValueError, KeyError, TypeError, ValidationError) as exc:
                    log.error("cannot restore a warning's ledger; skipped", warning_id=warning_id, error=repr(exc))
                    continue
                restored += 1
        self.stats.restored_warnings += restored
        return restored

    def _restore_warning(self, warning_id: str, partition: int, meta_raw: bytes, records: Mapping[str, bytes]) -> None:
        meta = json.loads(meta_raw)
        ws = WarningState(warning_id, partition, dirty_meta=False)
        ws.seen = set(meta["seen"])
        for mid, m in meta["messages"].items():
            msg = WarningMessage.model_validate(m["msg"])
            ws.messages[mid] = MessagePlan(
                msg, m["issued_ms"], m["expires_wall"], m["first_handoff_s"], sealed=m["sealed"], changes=1
            )
        for message_id, channel, slices, cursor, done in meta["fanouts"]:
            ws.fanouts[(message_id, channel)] = FanOut(message_id, channel, slices, cursor, done)
        snapshot: dict[str, Any] = {
            "version": 1,
            "messages": {
                mid: {"warning_id": warning_id, "expires_at": v[0], "cancelled": v[1], "sealed": v[2]}
                for mid, v in meta["ledger"].items()
            },
            "entries": [],
            "counts": {},
            "delivered_population": {},
            "township_counts": {},
            "compacted_messages": meta["compacted"],
        }
        prefix = f"{warning_id}{SEP}slice{SEP}"
        for key, raw in records.items():
            if not key.startswith(prefix) or raw is None:
                continue
            message_id, channel, index = key[len(prefix) :].split(SEP)
            sid = (message_id, channel, int(index))
            doc = json.loads(raw)
            members: dict[str, None] = {}
            for row in doc["rows"]:
                target_id, *values = row
                snapshot["entries"].append([message_id, channel, target_id, *values])
                members[target_id] = None
                entry = Entry(**dict(zip(_ENTRY_FIELDS, values, strict=True)))
                _count_into(snapshot, message_id, channel, entry.state, entry.population, entry.township_code, 1)
            ws.members[sid] = members
            if "gone" in doc:
                gone = _Gone(doc["gone"]["states"], doc["gone"]["towns"], doc["gone"]["pop"])
                ws.gone[sid] = gone
                _gone_into(snapshot, message_id, channel, gone)
        self.ledger.merge_snapshot(snapshot)
        self.warnings[warning_id] = ws
        self._resume(ws)

    def _resume(self, ws: WarningState) -> None:
        """After a restore: continue unfinished fan-outs, send ``pending`` entries again (they
        may or may not have left before the crash), await receipts of ``submitted`` ones."""
        now = self.now()
        for (mid, channel), fo in ws.fanouts.items():
            plan = ws.messages.get(mid)
            if plan is None or plan.sealed or fo.done or channel not in self.channels or self._halted(mid):
                continue
            if self._render(plan.msg) is None:
                continue
            self._spawn(ws, self._fanout(ws, fo), f"fanout:{mid}:{channel}")
        for mid, plan in ws.messages.items():
            if plan.sealed:
                continue
            halted = self._halted(mid)
            by_channel: dict[str, list[tuple[str, int]]] = {}
            for (channel, target_id), entry in self.ledger.entries.get(mid, {}).items():
                if entry.state == "pending" and not halted and not entry.final and channel in self.channels:
                    self._enqueue(
                        ws,
                        mid,
                        channel,
                        entry.provider,
                        self._job(plan.msg, channel, target_id, entry.township_code, entry.population),
                    )
                    self.stats.resent_after_restore += 1
                    self.metrics.resent.inc()
                elif entry.state == "submitted":
                    by_channel.setdefault(channel, []).append((target_id, entry.attempt))
            for channel, waiting in by_channel.items():
                cfg = self.settings.channels.get(channel)
                if cfg is not None and cfg.receipt_timeout_s is not None:
                    heapq.heappush(
                        self._receipt_deadlines,
                        (
                            now + cfg.receipt_timeout_s,
                            next(self._seq),
                            mid,
                            channel,
                            join_targets([t for t, _ in waiting]),
                            tuple(a for _, a in waiting),
                        ),
                    )

    async def release(self, partitions: Iterable[int]) -> None:
        """Hand ``partitions`` over (rebalance, shutdown): stop their work, make their state
        durable, drop it from memory. In-flight requests are cancelled; their entries stay
        ``pending`` in the store, so the next owner sends them again (and counts them)."""
        wanted = set(partitions)
        leaving = [ws for ws in self.warnings.values() if ws.partition in wanted]
        tasks = [t for ws in leaving for t in ws.tasks]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for key in [k for k in self._queue if (ws := self.warnings.get(k[0])) is not None and ws.partition in wanted]:
            del self._queue[key]
        await self._flusher.flush()
        await self.outbox.flush()
        for ws in leaving:
            self._drop(ws, delete=False)

    # -- introspection --------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        fanouts = [
            {
                "message_id": fo.message_id,
                "channel": fo.channel,
                "cursor": fo.cursor,
                "done": fo.done,
            }
            for ws in self.warnings.values()
            for fo in ws.fanouts.values()
        ]
        return {
            "partitions": sorted(self.owned_partitions()),
            "warnings": len(self.warnings),
            "live_entries": self.ledger.live_entries(),
            "fanouts": fanouts,
            "stats": self.stats.as_dict(),
            "ledger": dict(self.ledger.stats.__dict__),
        }

    def summary(self, message_id: str) -> dict[str, dict[str, int]]:
        return self.ledger.summary(message_id)

    def idle(self) -> bool:
        """No fan-out or send running, nothing queued, nothing due soon (for tests/benchmarks)."""
        return not self._queue and not any(ws.tasks for ws in self.warnings.values()) and not len(self.outbox)


def tune_gc(settings: DispatchSettings) -> None:
    """Apply ``settings.gc_thresholds`` (process-wide; the runtimes call it at start-up).

    A fan-out holds a million live ledger entries; with CPython's default thresholds
    (700, 10, 10) the collector runs ~30 full passes over them while they accumulate,
    ~30 % of the worker's CPU in the 1 M benchmark. Entries hold no reference cycles, so
    collecting less often costs little memory.
    """
    if settings.gc_thresholds is not None:
        gc.set_threshold(*settings.gc_thresholds)


RELEASE_AFTER_ENTRIES = 100_000
"""When a message seals after this many entries were retired or compacted since the last
release, the freed memory is handed back to the OS (``release_memory``)."""

TARGET_SEP = "\x1f"
"""Joins the target ids of a send batch in the receipt-deadline heap (ASCII unit separator)."""


def join_targets(target_ids: Sequence[str]) -> str | tuple[str, ...]:
    """One string for a batch of target ids (a tuple if an id contains the separator)."""
    joined = TARGET_SEP.join(target_ids)
    if joined.count(TARGET_SEP) != max(0, len(target_ids) - 1):
        return tuple(target_ids)
    return joined


def split_targets(joined: str | tuple[str, ...]) -> Sequence[str]:
    if isinstance(joined, tuple):
        return joined
    return joined.split(TARGET_SEP) if joined else ()


def release_memory() -> None:
    """Collect garbage and return free heap pages to the OS (glibc ``malloc_trim``), so a
    worker's RSS falls back after a million-target fan-out instead of staying at its peak."""
    gc.collect()
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the collector alone has to do
        pass


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("dispatch send failed", task=task.get_name(), error=repr(task.exception()))


class _NoMeta:
    cancelled = ""


_NO_META: Any = _NoMeta()


def _add_gone(gone: _Gone, entry: Entry) -> None:
    gone.states[entry.state] = gone.states.get(entry.state, 0) + 1
    row = gone.towns.setdefault(entry.township_code, [0, 0, 0, 0, 0])
    row[0] += 1
    row[1] += entry.population
    if entry.state in ("delivered", "acknowledged"):
        row[2] += 1
        row[3] += entry.population
        gone.delivered_population += entry.population
    elif entry.state == "failed":
        row[4] += 1


def _count_into(
    snapshot: dict[str, Any], message_id: str, channel: str, state: str, population: int, township: str, n: int
) -> None:
    states = snapshot["counts"].setdefault(message_id, {}).setdefault(channel, {})
    states[state] = states.get(state, 0) + n
    row = snapshot["township_counts"].setdefault(message_id, {}).setdefault(f"{channel}|{township}", [0, 0, 0, 0, 0])
    row[0] += n
    row[1] += population
    if state in ("delivered", "acknowledged"):
        row[2] += n
        row[3] += population
        pop = snapshot["delivered_population"].setdefault(message_id, {})
        pop[channel] = pop.get(channel, 0) + population
    elif state == "failed":
        row[4] += n


def _gone_into(snapshot: dict[str, Any], message_id: str, channel: str, gone: _Gone) -> None:
    states = snapshot["counts"].setdefault(message_id, {}).setdefault(channel, {})
    for state, n in gone.states.items():
        states[state] = states.get(state, 0) + n
    rows = snapshot["township_counts"].setdefault(message_id, {})
    for township, values in gone.towns.items():
        row = rows.setdefault(f"{channel}|{township}", [0, 0, 0, 0, 0])
        for i, v in enumerate(values):
            row[i] += v
    pop = snapshot["delivered_population"].setdefault(message_id, {})
    pop[channel] = pop.get(channel, 0) + gone.delivered_population
