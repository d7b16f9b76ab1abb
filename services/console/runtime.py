"""The console's background work: consumers and a ticker feeding the read model.

::

    warnings, commands          ─► consumer A ─┐   (the latency-critical path, never
    coverage, receipts          ─► consumer B ─┤    behind a flood of receipts)
    obs.rejected, obs.*,        ─► consumer C ─┤
    hazard.assessments                         │
                       ticker (tick_interval_s)┤
                                               ▼
                     ReadModel.fold_* ─► Changes ─► EventHub.publish (live stream)
                                                 └► AuditLog (outcomes of our commands)

Each consumer is its own consumer group, ``console-<instance>-<name>``: every console
instance reads every record (it is a read model, not a work queue) and a new instance
starts from the earliest offset, so it rebuilds its view from the topics alone.
Records are folded per batch and one ``publish`` wakes the stream clients once per batch.
A record the console cannot read is counted (``earlywarn_console_bad_records_total``)
and skipped: the producer's own validation (ingest, lifecycle, dispatch) owns rejection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from schemas import topics as tn
from schemas.command import OperatorCommand
from schemas.coverage import CoverageReport
from schemas.rejected import RejectedRecord
from schemas.warning import WarningMessage
from services.common.bus.base import Bus, Record
from services.common.clock import Clock
from services.common.logging import get_logger
from services.console.audit import AuditLog
from services.console.metrics import ConsoleMetrics
from services.console.readmodel import Changes, ReadModel, StreamEvent
from services.console.stream import EventHub

log = get_logger(__name__)

OBS_TOPICS = (tn.OBS_RAIN, tn.OBS_RADAR, tn.OBS_GEOHAZARD, tn.OBS_WATER)

_STATION = re.compile(rb'"station_id":"([^"]{1,64})"')
_OBSERVED = re.compile(rb'"observed_at":"([^"]{10,40})"')
_INTERVAL = re.compile(rb'"interval_s":(\d{1,6})')
_TOWNSHIP = re.compile(rb'"township_code":"(\d{9})"')
_KIND = re.compile(rb'"kind":"([a-z_]{1,20})"')
_SOURCE = re.compile(rb'"source_id":"([^"]{1,64})"')
_ASSESSED = re.compile(rb'"assessed_at":"([^"]{10,40})"')
_SUPPRESSED = re.compile(rb'"metric":"suppressed_by_sensor_([a-z_]{1,20})"')


def _utc(raw: bytes) -> datetime | None:
    try:
        at = datetime.fromisoformat(raw.decode().replace("Z", "+00:00"))
    except ValueError:
        return None
    return None if at.tzinfo is None else at.astimezone(UTC)


def assessment_health(value: bytes) -> tuple[str, datetime, str | None] | None:
    """``(source station, assessed_at, fault status or None)`` of one assessment record.

    The rules mark an assessment whose station's sensor looks faulty with evidence
    ``suppressed_by_sensor_<status>`` (``services.rules.detectors.health``); the console
    only reads that marker (no full parse: assessments are many).
    """
    source, assessed = _SOURCE.search(value), _ASSESSED.search(value)
    if source is None or assessed is None:
        return None
    at = _utc(assessed.group(1))
    if at is None:
        return None
    fault = _SUPPRESSED.search(value)
    return source.group(1).decode(), at, fault.group(1).decode() if fault else None


def observation_head(value: bytes) -> tuple[str, str, datetime, int | None, str | None] | None:
    """``(station, kind, observed_at, interval_s, township)`` without parsing the payload.

    Radar scans carry whole grids; station health needs five header fields, so they are
    read with anchored patterns from the start of the record.
    """
    head = value[:4096]
    station, observed, kind = _STATION.search(head), _OBSERVED.search(head), _KIND.search(head)
    if station is None or observed is None or kind is None:
        return None
    at = _utc(observed.group(1))
    if at is None:
        return None
    interval, township = _INTERVAL.search(head), _TOWNSHIP.search(head)
    return (
        station.group(1).decode(),
        kind.group(1).decode(),
        at,
        int(interval.group(1)) if interval else None,
        township.group(1).decode() if township else None,
    )


class ConsoleRuntime:
    """Read model + stream + audit, and the tasks that keep them current."""

    def __init__(
        self,
        bus: Bus,
        clock: Clock,
        hub: EventHub,
        audit: AuditLog,
        metrics: ConsoleMetrics,
        model: ReadModel,
        instance_id: str,
        *,
        watch_observations: bool = True,
        tick_interval_s: float = 2.0,
        batch_records: int = 1000,
    ) -> None:
        self.bus = bus
        self.clock = clock
        self.hub = hub
        self.audit = audit
        self.metrics = metrics
        self.model = model
        self.instance_id = instance_id
        self.watch_observations = watch_observations
        self.tick_interval_s = tick_interval_s
        self.batch_records = batch_records
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        self.ready = asyncio.Event()
        self._subscribed = 0
        self._health_version = -1

    def now(self) -> datetime:
        return self.clock.now()

    # ---------------------------------------------------------------- lifecycle

    def consumers(self) -> list[tuple[str, tuple[str, ...], Callable[[list[Record]], Changes]]]:
        out: list[tuple[str, tuple[str, ...], Callable[[list[Record]], Changes]]] = [
            ("warnings", (tn.WARNINGS, tn.COMMANDS), self.handle_warnings),
            ("delivery", (tn.COVERAGE, tn.RECEIPTS), self.handle_delivery),
        ]
        health = (*OBS_TOPICS, tn.ASSESSMENTS) if self.watch_observations else ()
        out.append(("inputs", (tn.OBS_REJECTED, *health), self.handle_inputs))
        return out

    async def start(self) -> None:
        consumers = self.consumers()
        for name, topics, handler in consumers:
            self.tasks.append(
                asyncio.create_task(self._consume(name, topics, handler, len(consumers)), name=f"console-{name}")
            )
        self.tasks.append(asyncio.create_task(self._ticker(), name="console-ticker"))

    async def close(self) -> None:
        self.stop.set()
        self.hub.close()
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.tasks.clear()

    def healthy(self) -> bool:
        return bool(self.tasks) and all(not t.done() for t in self.tasks)

    async def _consume(
        self, name: str, topics: Sequence[str], handler: Callable[[list[Record]], Changes], total: int
    ) -> None:
        group = f"console-{self.instance_id}-{name}"
        sub = await self.bus.subscribe(list(topics), group=group)
        self._subscribed += 1
        if self._subscribed == total:
            self.ready.set()
        try:
            while not self.stop.is_set():
                records = await sub.getmany(timeout_s=0.25, max_records=self.batch_records)
                if not records:
                    continue
                try:
                    changes = handler(records)
                except Exception:  # a bug in folding must not kill the console's view
                    log.exception("console fold failed", consumer=name, records=len(records))
                    continue
                self.apply(changes)
                await sub.commit()
        finally:
            with contextlib.suppress(Exception):
                await sub.close()

    async def _ticker(self) -> None:
        while not self.stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), self.tick_interval_s)
            if self.stop.is_set():
                return
            self.tick()

    def tick(self) -> None:
        changes = self.model.tick(self.now())
        if self.model.stations.version != self._health_version:
            self._health_version = self.model.stations.version
            changes.events.append(StreamEvent("health", self.model.stations.summary()))
        self.apply(changes)

    # ---------------------------------------------------------------- folding

    def apply(self, changes: Changes) -> None:
        published = self.hub.publish(changes.events)
        for event in published:
            self.metrics.stream_events.labels(event.type).inc()
        for follow in changes.audit:
            self.audit.append(
                actor=follow.actor,
                role=follow.role,
                action=follow.action,
                outcome="applied" if follow.outcome == "applied" else "refused",
                target=follow.target,
                detail=follow.detail,
                command_id=follow.command_id,
                client="lifecycle",
            )
            self.metrics.actions.labels(follow.action, follow.outcome).inc()

    def _bad(self, record: Record, exc: Exception) -> None:
        self.metrics.bad_records.labels(record.topic).inc()
        log.warning(
            "console skipped an unreadable record", topic=record.topic, offset=record.offset, error=str(exc)[:200]
        )

    def handle_warnings(self, records: list[Record]) -> Changes:
        changes = Changes()
        now = self.now()
        for record in records:
            self.metrics.records.labels(record.topic).inc()
            try:
                if record.topic == tn.COMMANDS:
                    changes.extend(self.model.fold_command(OperatorCommand.model_validate_json(record.value), now))
                else:
                    message = WarningMessage.model_validate_json(record.value)
                    changes.extend(self.model.fold_warning(message, now, settle=False))
            except ValidationError as exc:
                self._bad(record, exc)
        changes.extend(self.model.settle(now))
        return changes

    def handle_delivery(self, records: list[Record]) -> Changes:
        changes = Changes()
        receipts: Counter[tuple[str, str, str]] = Counter()
        for record in records:
            self.metrics.records.labels(record.topic).inc()
            try:
                if record.topic == tn.COVERAGE:
                    changes.extend(self.model.fold_coverage(CoverageReport.model_validate_json(record.value)))
                else:
                    data: Any = json.loads(record.value)
                    receipts[(str(data["warning_id"]), str(data["channel"]), str(data["state"]))] += 1
            except (ValidationError, ValueError, KeyError, TypeError) as exc:
                self._bad(record, exc)
        if receipts:
            changes.extend(self.model.fold_receipt_counts(receipts))
        return changes

    def handle_inputs(self, records: list[Record]) -> Changes:
        changes = Changes()
        for record in records:
            self.metrics.records.labels(record.topic).inc()
            if record.topic == tn.OBS_REJECTED:
                try:
                    changes.extend(self.model.fold_rejected(RejectedRecord.model_validate_json(record.value)))
                except ValidationError as exc:
                    self._bad(record, exc)
                continue
            if record.topic == tn.ASSESSMENTS:
                health = assessment_health(record.value)
                if health is None:
                    self._bad(record, ValueError("no source_id/assessed_at in the assessment"))
                else:
                    self.model.fold_assessment_health(*health)
                continue
            head = observation_head(record.value)
            if head is None:
                self._bad(record, ValueError("no station_id/observed_at/kind in the record head"))
                continue
            self.model.fold_observation(*head)
        return changes

    # ---------------------------------------------------------------- commands

    async def publish_command(self, command: OperatorCommand, key: str) -> None:
        self.model.expect(command)
        await self.bus.publish(tn.COMMANDS, key, command.model_dump_json().encode())
