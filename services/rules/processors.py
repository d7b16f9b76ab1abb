"""The rules service's stream processors (runtime-agnostic adapters around pure logic).

``RainstormProcessor``  obs.rain (key station)            -> hazard.assessments (key hazard:township)
``LifecycleProcessor``  hazard.assessments (hazard:town)  -> warnings (key hazard:township)

Writing assessments keyed ``hazard:township`` is the repartition step: the lifecycle's
state for a township lives in exactly one partition whichever gauges report for it.
Both reject malformed input to ``obs.rejected`` and carry on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic import ValidationError

from schemas import topics as tn
from schemas.assessment import HazardAssessment
from schemas.command import OperatorCommand
from schemas.observations import RainObservation
from schemas.warning import WarningMessage
from services.common.bus.base import Emit, Record
from services.common.bus.processor import Processor, StateStore
from services.common.metrics import Metrics
from services.common.rejects import describe_validation_error, rejection
from services.rules.detectors.health import RAIN_HEALTH, assess_health, downgrade, health_value, new_health_state
from services.rules.detectors.rainstorm import DEFAULT_RAINSTORM_RULES, RainstormRule, assess_rainstorm
from services.rules.detectors.short_heavy_rain import ShortHeavyRainConfig, assess_short_heavy_rain
from services.rules.detectors.short_heavy_rain import new_gauge_state as new_shr_state
from services.rules.detectors.wind import assess_gale, new_wind_state
from services.rules.lifecycle import CommandRefusedError, LifecyclePolicy, apply_command, fold, new_state
from services.rules.windows import new_series


def _reject(record: Record, exc: ValidationError | ValueError, detail_prefix: str = "") -> Emit:
    if isinstance(exc, ValidationError):
        reason, detail, field = describe_validation_error(exc)
    else:
        reason, detail, field = "schema", str(exc), None
    rejected = rejection(
        source=f"{record.topic}[{record.partition}]@{record.offset}",
        reason=reason,
        detail=detail_prefix + detail,
        field=field,
        raw=record.value,
        received_at=datetime.fromtimestamp(record.timestamp_ms / 1000, UTC),
    )
    return Emit(tn.OBS_REJECTED, record.key or record.topic, rejected.model_dump_json().encode())


class RainstormProcessor(Processor):
    """Everything a rain gauge's reports can say, per station (state keyed by station id).

    Per report: the CMA rainstorm signal (3/6/12 h), short-duration heavy rain (rolling
    1 h) and, for automatic stations that report wind, the gale signal; each assessment
    passes through the station's health (spikes, flat lines, staleness) so a faulty
    sensor's reading alone cannot raise a warning (``detectors.health.downgrade``).
    """

    name: ClassVar[str] = "rules-rainstorm"
    topics: ClassVar[tuple[str, ...]] = (tn.OBS_RAIN,)
    outputs: ClassVar[tuple[str, ...]] = (tn.ASSESSMENTS, tn.OBS_REJECTED)

    def __init__(
        self,
        rules: tuple[RainstormRule, ...] = DEFAULT_RAINSTORM_RULES,
        allowed_lateness_s: int = 600,
        metrics: Metrics | None = None,
    ) -> None:
        self.rules = rules
        self.allowed_lateness_s = allowed_lateness_s
        self.metrics = metrics or Metrics()
        self.shr_config = ShortHeavyRainConfig(allowed_lateness_s=allowed_lateness_s)
        # labelled children resolved once: .labels() costs more than the rule on the hot path
        self._processed = self.metrics.records_processed.labels(self.name)
        self._assessed = {
            (hazard, level): self.metrics.assessments.labels(hazard, level)
            for hazard in ("rainstorm", "short_heavy_rain", "gale")
            for level in ("none", "blue", "yellow", "orange", "red")
        }

    def process(self, record: Record, state: StateStore) -> list[Emit]:
        self._processed.inc()
        try:
            obs = RainObservation.model_validate_json(record.value)
        except ValidationError as exc:
            self.metrics.observations_rejected.labels("schema").inc()
            return [_reject(record, exc)]
        if obs.township_code is None:
            self.metrics.observations_rejected.labels("unknown_station").inc()
            return [_reject(record, ValueError("township_code: observation was not enriched by ingest"))]
        station: dict[str, Any] = state.get(obs.station_id) or {
            "rainstorm": new_series(),
            "shr": new_shr_state(),
            "wind": new_wind_state(),
            "health": new_health_state(),
        }
        health = assess_health(obs.station_id, obs.observed_at, health_value(obs), station["health"], RAIN_HEALTH)
        found: list[HazardAssessment | None] = [
            assess_rainstorm(obs, station["rainstorm"], obs.township_code, self.rules, self.allowed_lateness_s),
            assess_short_heavy_rain(obs, station["shr"], obs.township_code, self.shr_config),
        ]
        if obs.wind_mean_ms is not None:
            found.append(assess_gale(obs, station["wind"], obs.township_code))
        state[obs.station_id] = station
        emits: list[Emit] = []
        for raw in found:
            if raw is None:
                self.metrics.late_records.labels(self.name).inc()
                continue
            assessment = raw if health is None else downgrade(raw, health)
            self._assessed[(assessment.hazard, assessment.level)].inc()
            emits.append(Emit(tn.ASSESSMENTS, assessment.key, assessment.model_dump_json().encode()))
        return emits


class LifecycleProcessor(Processor):
    """Assessments and operator commands for one ``hazard:township`` meet here."""

    name: ClassVar[str] = "rules-lifecycle"
    topics: ClassVar[tuple[str, ...]] = (tn.ASSESSMENTS, tn.COMMANDS)
    outputs: ClassVar[tuple[str, ...]] = (tn.WARNINGS, tn.OBS_REJECTED)

    def __init__(
        self,
        policy: LifecyclePolicy | None = None,
        metrics: Metrics | None = None,
        expected_sources: Callable[[str], frozenset[str]] | None = None,
    ) -> None:
        self.policy = policy or LifecyclePolicy()
        self.metrics = metrics or Metrics()
        self.expected_sources = expected_sources or (lambda _key: frozenset())
        self._processed = self.metrics.records_processed.labels(self.name)

    def process(self, record: Record, state: StateStore) -> list[Emit]:
        self._processed.inc()
        if record.topic == tn.COMMANDS:
            return self._command(record, state)
        try:
            assessment = HazardAssessment.model_validate_json(record.value)
        except ValidationError as exc:
            self.metrics.observations_rejected.labels("schema").inc()
            return [_reject(record, exc)]
        key = assessment.key
        current: dict[str, Any] = state.get(key) or new_state()
        messages, late = fold(current, assessment, self.policy, self.expected_sources(key))
        state[key] = current
        if late:
            self.metrics.late_records.labels(self.name).inc()
        out: list[Emit] = []
        for msg in messages:
            if not late:
                self.metrics.warnings_emitted.labels(msg.hazard, msg.level, msg.msg_type).inc()
            out.append(Emit(tn.WARNINGS, msg.key, msg.model_dump_json().encode()))
        return out

    def _command(self, record: Record, state: StateStore) -> list[Emit]:
        try:
            command = OperatorCommand.model_validate_json(record.value)
        except ValidationError as exc:
            return [_reject(record, exc)]
        key = record.key
        if not key or ":" not in key:
            return [_reject(record, ValueError("key: commands are keyed 'hazard:township'"))]
        current: dict[str, Any] = state.get(key) or new_state()
        try:
            messages = apply_command(current, command, self.policy)
        except CommandRefusedError as exc:
            refused = rejection(
                source=f"commands:{command.actor}",
                reason="command_refused",
                detail=f"{command.action} {command.warning_id or ''}: {exc}",
                field="action",
                raw=record.value,
                received_at=command.at,
            )
            return [Emit(tn.OBS_REJECTED, key, refused.model_dump_json().encode())]
        state[key] = current
        return [self._warning_emit(m) for m in messages]

    def _warning_emit(self, msg: WarningMessage) -> Emit:
        self.metrics.warnings_emitted.labels(msg.hazard, msg.level, msg.msg_type).inc()
        return Emit(tn.WARNINGS, msg.key, msg.model_dump_json().encode())


def rules_processors(
    metrics: Metrics | None = None,
    allowed_lateness_s: int = 600,
    rain_gauges_by_township: Mapping[str, frozenset[str]] | None = None,
) -> list[Processor]:
    """The rules service's processors; ``rain_gauges_by_township`` comes from the registry."""
    shared = metrics or Metrics()
    gauges = rain_gauges_by_township or {}

    def expected(key: str) -> frozenset[str]:
        # every gauge reports rain, so both rain hazards may wait for all of a township's
        # gauges; gale comes only from stations reporting wind (learned as they report)
        hazard, _, township = key.partition(":")
        return gauges.get(township, frozenset()) if hazard in ("rainstorm", "short_heavy_rain") else frozenset()

    return [
        RainstormProcessor(allowed_lateness_s=allowed_lateness_s, metrics=shared),
        LifecycleProcessor(LifecyclePolicy(allowed_lateness_s=allowed_lateness_s), shared, expected),
    ]
