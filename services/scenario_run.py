"""Replay a simulated-world scenario through the whole pipeline in one process (memory://).

::

    iter_world(scenario) ─► IngestGate (registry) ─► obs.* / obs.rejected
        tick by tick            │ paced on the virtual clock (N× real time, or as fast as possible)
                                ▼
                 rules processors ─► hazard.assessments ─► lifecycle ─► warnings
                                                                  │
                 attachments (dispatch, console) ◄────────────────┘

``ScenarioRun`` owns the memory bus, the virtual clock and the world; callers add
*attachments* (coroutines given the bus, the clock and the stop event: dispatch with its
gateway simulators, the console) and read the result: ingest counts per feed, every
warning message, the ground truth, and the pipeline latency (wall time from a tick's
publication to the warning it caused).

Two pacing modes:

- ``speed=N``: tick ``k`` is published at wall time ``(at_k − start) / N`` after the run
  began (anchored, so processing time does not accumulate as drift). If the pipeline falls
  behind, ticks go out as soon as the previous one is handled and the run reports its lag.
- ``speed=None`` (*lockstep*): each tick is processed through every stage before the next
  is published. This is as fast as the pipeline goes and is deterministic: the same
  scenario and seed give the same warnings, which is what ``earlywarn verify`` scores.

In both modes the publisher waits while the rules are more than ``max_backlog`` records
behind, so the memory bus never piles up a storm's worth of records.
"""

from __future__ import annotations

import asyncio
import time
import tomllib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from schemas import topics
from schemas.observations import ObservationBase
from schemas.warning import WarningMessage
from services.common.bus.base import Bus, Emit
from services.common.bus.memory import MemoryBus
from services.common.bus.processor import DictState, Processor, run_on_bus
from services.common.clock import VirtualClock
from services.common.geo.registry import GeoRegistry
from services.common.metrics import Metrics
from services.common.settings import RulesSettings
from services.ingest.feeds.registry_lookup import registry_lookup
from services.ingest.gate import IngestGate
from services.ingest.simulate.advisories import storm_advisories
from services.ingest.simulate.scenario import Scenario
from services.ingest.simulate.truth import GroundTruth
from services.ingest.simulate.world import iter_world
from services.pipeline import IngestCounts, admit_batch
from services.rules.detectors.convection import ConvectionConfig
from services.rules.lifecycle import LifecyclePolicy
from services.rules.processors import LifecycleProcessor, rules_processors

Attachment = Callable[[Bus, VirtualClock, asyncio.Event], Awaitable[object]]
"""A service riding along on the run's bus (dispatch, console); it returns when ``stop`` is set."""

WARNINGS_GROUP = "scenario-run-warnings"
RETENTION_BYTES = 8 * 1024 * 1024
"""Per partition: a replay's bus keeps the recent past (a radar scan is ~100 KB), not the storm."""


@dataclass
class TickProgress:
    """What a progress display needs after each tick."""

    index: int
    total: int
    at: datetime
    counts: IngestCounts
    warnings: int
    lag_s: float


@dataclass
class RunResult:
    scenario: Scenario
    counts: IngestCounts
    messages: list[WarningMessage]
    truth: GroundTruth
    wall_s: float
    ticks: int
    latencies_s: list[float] = field(default_factory=list)
    max_lag_s: float = 0.0
    shadow_messages: dict[str, list[WarningMessage]] = field(default_factory=dict)

    @property
    def simulated_s(self) -> float:
        return (self.scenario.end - self.scenario.start).total_seconds()

    def latency_percentile(self, q: float) -> float | None:
        if not self.latencies_s:
            return None
        ordered = sorted(self.latencies_s)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class RuleSet(BaseModel):
    """A named rule configuration (``--candidate FILE`` of ``earlywarn verify``), TOML::

    name = "longer-dwell"
    allowed_lateness_s = 600
    [lifecycle]            # any LifecyclePolicy field (services.rules.lifecycle)
    deescalate_dwell_s = 5400
    [radar.rainstorm]      # any ConvectionConfig field (services.rules.detectors.convection)
    enabled = false
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(default="active", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=64)
    allowed_lateness_s: int = Field(default=600, ge=0, le=86_400)
    lifecycle: dict[str, Any] = Field(default_factory=dict)
    radar: ConvectionConfig = Field(default_factory=ConvectionConfig, description="the radar nowcast's configuration")

    def policy(self) -> LifecyclePolicy:
        return LifecyclePolicy.model_validate({"allowed_lateness_s": self.allowed_lateness_s, **self.lifecycle})

    @classmethod
    def from_settings(cls, rules: RulesSettings) -> RuleSet:
        """The active rule set of a deployment: ``EARLYWARN_RULES__*`` / the settings file."""
        return cls(
            allowed_lateness_s=rules.allowed_lateness_s,
            lifecycle={
                "validity_s": rules.warning_validity_s,
                "all_clear_quiet_s": rules.all_clear_quiet_s,
                "deescalate_dwell_s": rules.deescalate_dwell_s,
            },
        )


def load_rule_set(path: Path) -> RuleSet:
    """A ``RuleSet`` from TOML; errors name the file and the key."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        rule_set = RuleSet.model_validate(raw)
        rule_set.policy()
    except (OSError, tomllib.TOMLDecodeError) as exc:
        msg = f"{path}: cannot read rule set: {exc}"
        raise ValueError(msg) from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        msg = f"{path}: {'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
        raise ValueError(msg) from exc
    return rule_set


def scenario_processors(registry: GeoRegistry, metrics: Metrics, rule_set: RuleSet | None = None) -> list[Processor]:
    """The rules service's processors configured from the registry and a rule set."""
    rules = rule_set or RuleSet()
    processors = rules_processors(metrics, rules.allowed_lateness_s, registry=registry, convection=rules.radar)
    for proc in processors:
        if isinstance(proc, LifecycleProcessor):
            proc.policy = rules.policy()
    return processors


def trim(scenario: Scenario, hours: float | None) -> Scenario:
    """The scenario cut to its first ``hours`` (whole minutes), or unchanged."""
    if hours is None:
        return scenario
    end = min(scenario.end, scenario.start + timedelta(hours=hours))
    end -= timedelta(seconds=(end - scenario.start).total_seconds() % 60)
    if end <= scenario.start:
        msg = f"--hours {hours} leaves nothing of {scenario.name}"
        raise ValueError(msg)
    return scenario.model_copy(update={"end": end})


def ticks_in(scenario: Scenario) -> int:
    return int((scenario.end - scenario.start).total_seconds() // 60)


class Lane:
    """One rule set on its own ``MemoryBus``: processors, and the warnings they produced."""

    def __init__(
        self, name: str, processors: Sequence[Processor], partitions: int, bus: MemoryBus | None = None
    ) -> None:
        self.name = name
        self.processors = list(processors)
        self.owns_bus = bus is None
        self.bus = bus if bus is not None else MemoryBus(default_partitions=partitions, retention_bytes=RETENTION_BYTES)
        self.messages: dict[str, WarningMessage] = {}
        self.states: dict[str, DictState] = {p.name: DictState() for p in self.processors}

    def groups(self) -> list[tuple[str, tuple[str, ...]]]:
        return [(p.name, p.topics) for p in self.processors] + [(WARNINGS_GROUP, (topics.WARNINGS,))]

    def backlog(self) -> int:
        return sum(self.bus.lag(group, list(tops)) for group, tops in self.groups())

    def sorted_messages(self) -> list[WarningMessage]:
        return sorted(self.messages.values(), key=lambda m: (m.sent_at, m.message_id))


class ScenarioRun:
    """One scenario through ingest and the given processors on a private ``MemoryBus``.

    ``shadow`` rule sets (name → processors) run beside the active one, each on its own bus
    fed the very same admitted observations; their warnings go nowhere but the result
    (``RunResult.shadow_messages``), so candidate rules are compared on the same replay.
    """

    def __init__(
        self,
        scenario: Scenario,
        registry: GeoRegistry,
        processors: Sequence[Processor],
        *,
        speed: float | None = None,
        metrics: Metrics | None = None,
        partitions: int = 4,
        max_backlog: int = 20_000,
        attachments: Sequence[Attachment] = (),
        on_warning: Callable[[WarningMessage], None] | None = None,
        shadow: Mapping[str, Sequence[Processor]] | None = None,
        active_name: str = "active",
        bus: MemoryBus | None = None,
        clock: VirtualClock | None = None,
    ) -> None:
        """``bus``/``clock``: run on a session's long-lived bus and clock (``EmbeddedSession``)."""
        if speed is not None and speed <= 0:
            msg = "speed must be positive, or None for lockstep (as fast as possible)"
            raise ValueError(msg)
        self.scenario = scenario
        self.registry = registry
        self.speed = speed
        self.metrics = metrics or Metrics()
        self.max_backlog = max_backlog
        self.attachments = list(attachments)
        self.on_warning = on_warning
        self.active = Lane(active_name, processors, partitions, bus)
        self.shadows = [Lane(name, procs, partitions) for name, procs in (shadow or {}).items()]
        self.bus = self.active.bus
        self.clock = clock if clock is not None else VirtualClock(scenario.start)
        self.clock.reset(scenario.start)
        self.stop = asyncio.Event()
        self.truth = GroundTruth()
        self.counts = IngestCounts()
        self._published_wall: list[tuple[datetime, float]] = []  # (tick at, wall time published)
        self.latencies_s: list[float] = []
        self._tasks: list[asyncio.Task[object]] = []

    # ------------------------------------------------------------------ stages

    @property
    def lanes(self) -> list[Lane]:
        return [self.active, *self.shadows]

    async def _collect(self, lane: Lane) -> None:
        active = lane is self.active
        sub = await lane.bus.subscribe([topics.WARNINGS], group=WARNINGS_GROUP)
        try:
            while not self.stop.is_set():
                records = await sub.getmany(timeout_s=0.05, max_records=1000)
                now_wall = time.perf_counter()
                for record in records:
                    msg = WarningMessage.model_validate_json(record.value)
                    known = lane.messages.get(msg.message_id)
                    # a held message comes again once approved or released: that one counts
                    if known is not None and (known.disseminate or not msg.disseminate):
                        continue
                    lane.messages[msg.message_id] = msg
                    if known is not None:
                        continue  # latency and the callback belong to the message's first publication
                    if not active:
                        continue
                    self._record_latency(msg, now_wall)
                    if self.on_warning is not None:
                        self.on_warning(msg)
                await sub.commit()
        finally:
            await sub.close()

    def _record_latency(self, msg: WarningMessage, now_wall: float) -> None:
        """Wall time from the publication of the first tick at or after the message's event time."""
        if msg.origin != "rules" or msg.msg_type == "Cancel":
            return
        for at, wall in self._published_wall:
            if at >= msg.sent_at:
                self.latencies_s.append(max(0.0, now_wall - wall))
                return

    def _backlog(self) -> int:
        return sum(lane.backlog() for lane in self.lanes)

    async def _settle(self, limit: int) -> None:
        """Wait until at most ``limit`` records are unprocessed (0: everything, twice over)."""
        quiet_passes = 0
        while True:
            backlog = self._backlog()
            if backlog <= limit:
                if limit > 0:
                    return
                quiet_passes += 1
                if quiet_passes >= 2:  # a processor may have just published downstream
                    return
            else:
                quiet_passes = 0
            await asyncio.sleep(0.001 if backlog else 0)

    # ------------------------------------------------------------------ run

    async def run(
        self,
        progress: Callable[[TickProgress], None] | None = None,
        linger: Callable[[], Awaitable[object]] | None = None,
    ) -> RunResult:
        """Replay every tick; then, if given, await ``linger()`` (the attachments keep serving)."""
        for lane in self.lanes:
            await lane.bus.ensure_topics(topics.ALL_TOPICS, lane.bus.default_partitions)
            for proc in lane.processors:
                runner = run_on_bus(lane.bus, proc, self.stop, state=lane.states[proc.name])
                task = asyncio.create_task(runner, name=f"{lane.name}:{proc.name}")
                self._tasks.append(task)
            self._tasks.append(asyncio.create_task(self._collect(lane), name=f"{lane.name}:warnings"))
        for attach in self.attachments:
            self._tasks.append(asyncio.create_task(_as_coro(attach(self.bus, self.clock, self.stop))))
        advisories = [
            Emit(topics.ADVISORIES, a.storm_id, a.model_dump_json().encode()) for a in storm_advisories(self.scenario)
        ]
        for lane in self.lanes:  # a forecast office's track forecasts: each judged by its issue time
            await lane.bus.publish_many(advisories)
        started = time.perf_counter()
        total = ticks_in(self.scenario)
        gate = IngestGate(registry_lookup(self.registry), self.clock.now)
        max_lag = 0.0
        index = 0
        try:
            for index, tick in enumerate(iter_world(self.scenario, self.registry, self.truth), start=1):
                lag = await self._pace(tick.at, started)
                max_lag = max(max_lag, lag)
                self.clock.advance(max(timedelta(0), tick.at - self.clock.now()))
                batch: list[ObservationBase | bytes] = [*tick.observations, *tick.raw]
                emits = admit_batch(gate, batch, "simulator", self.counts, self.metrics)
                for lane in self.lanes:
                    await lane.bus.publish_many(emits)
                self._published_wall.append((tick.at, time.perf_counter()))
                if len(self._published_wall) > 240:  # latency lookups only need recent ticks
                    del self._published_wall[:120]
                await self._settle(0 if self.speed is None else self.max_backlog)
                if progress is not None:
                    progress(TickProgress(index, total, tick.at, self.counts, len(self.active.messages), lag))
            await self._settle(0)
            if linger is not None:
                await linger()
        finally:
            self.stop.set()
            results = await asyncio.gather(*self._tasks, return_exceptions=True)
            for lane in self.lanes:
                if lane.owns_bus:
                    await lane.bus.stop()
        failures = [r for r in results if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError)]
        if failures:
            raise failures[0]
        return RunResult(
            scenario=self.scenario,
            counts=self.counts,
            messages=self.active.sorted_messages(),
            shadow_messages={lane.name: lane.sorted_messages() for lane in self.shadows},
            truth=self.truth,
            wall_s=time.perf_counter() - started,
            ticks=index,
            latencies_s=self.latencies_s,
            max_lag_s=max_lag,
        )

    async def _pace(self, at: datetime, started: float) -> float:
        """Sleep until the tick's wall time at ``speed``; return how far behind we are (s)."""
        if self.speed is None:
            return 0.0
        due = started + (at - self.scenario.start).total_seconds() / self.speed
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
            return 0.0
        return -delay


async def _as_coro(awaitable: Awaitable[object]) -> object:
    return await awaitable
