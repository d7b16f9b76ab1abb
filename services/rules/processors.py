"""The rules service's stream processors (runtime-agnostic adapters around pure logic).

``RainstormProcessor``  obs.rain (key station)            -> hazard.assessments (key hazard:township)
``LifecycleProcessor``  hazard.assessments (hazard:town)  -> warnings (key hazard:township)

and, with a registry, the radar / geo-hazard / water-level processors of ``hazard_processors``.

Writing assessments keyed ``hazard:township`` is the repartition step: the lifecycle's
state for a township lives in exactly one partition whichever gauges report for it.
Both reject malformed input to ``obs.rejected`` and carry on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import ValidationError

from schemas import topics as tn
from schemas.assessment import HazardAssessment
from schemas.command import OperatorCommand
from schemas.common import LEVEL_RANK
from schemas.observations import RainObservation
from schemas.warning import WarningMessage
from services.common.bus.base import Emit, Record
from services.common.bus.processor import Processor, StateStore
from services.common.metrics import Metrics
from services.common.rejects import rejection
from services.rules.detectors.health import FAULTY, RAIN_HEALTH, SUPPRESSED_PREFIX, judge, new_health_state
from services.rules.detectors.rainstorm import DEFAULT_RAINSTORM_RULES, RainstormRule, rainstorm_level
from services.rules.detectors.rainstorm import RULE_ID as RAINSTORM_RULE_ID
from services.rules.detectors.short_heavy_rain import RULE_ID as SHR_RULE_ID
from services.rules.detectors.short_heavy_rain import ShortHeavyRainConfig, short_heavy_rain_level
from services.rules.detectors.short_heavy_rain import new_gauge_state as new_shr_state
from services.rules.detectors.wind import BEAUFORT, GALE_RULE_ID, gale_level, new_wind_state
from services.rules.encode import EvidenceDict, assessment_json, evidence, time_json
from services.rules.hazard_processors import GeoHazardProcessor, RadarProcessor, WaterLevelProcessor
from services.rules.lifecycle import CommandRefusedError, LifecyclePolicy, apply_command, fold, new_state
from services.rules.registry_config import (
    expected_sources,
    geohazard_points,
    radars_covering,
    stations_by_township,
    township_points,
    water_gauges,
)
from services.rules.rejects import reject
from services.rules.windows import new_series

if TYPE_CHECKING:
    from services.common.geo.registry import GeoRegistry

_reject = reject
_RAIN = RainObservation.__pydantic_validator__
_ASSESSMENT = HazardAssessment.__pydantic_validator__


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
        self._late = self.metrics.late_records.labels(self.name)
        self._assessed = {
            (hazard, level): self.metrics.assessments.labels(hazard, level)
            for hazard in ("rainstorm", "short_heavy_rain", "gale")
            for level in ("none", "blue", "yellow", "orange", "red")
        }

    def process(self, record: Record, state: StateStore) -> list[Emit]:
        # The detectors' cores and the assessment bytes directly: the same results as
        # ``assess_rainstorm`` / ``assess_short_heavy_rain`` / ``assess_gale`` passed
        # through ``assess_health`` + ``downgrade`` and ``model_dump_json`` (checked in
        # tests/unit/rules_processors), at a fraction of the cost of the models.
        self._processed.inc()
        try:  # RainObservation.model_validate_json, without the wrapper
            obs: RainObservation = _RAIN.validate_json(record.value)
        except ValidationError as exc:
            self.metrics.observations_rejected.labels("schema").inc()
            return [_reject(record, exc)]
        town = obs.township_code
        if town is None:
            self.metrics.observations_rejected.labels("unknown_station").inc()
            return [_reject(record, ValueError("township_code: observation was not enriched by ingest"))]
        sid = obs.station_id
        station: dict[str, Any] = state.get(sid) or {
            "rainstorm": new_series(),
            "shr": new_shr_state(),
            "wind": new_wind_state(),
            "health": new_health_state(),
        }
        end = int(obs.observed_at.timestamp())
        rain_mm = obs.rain_mm
        verdict = judge(end, rain_mm * 3600.0 / obs.interval_s, station["health"], RAIN_HEALTH)
        status = "ok" if verdict is None else verdict.status
        when = time_json(obs.observed_at)
        emits: list[Emit] = []

        rule, total = rainstorm_level(station["rainstorm"], end, rain_mm, self.rules, self.allowed_lateness_s)
        if rule is None:
            emits.append(self._emit("rainstorm", town, sid, when, "none", RAINSTORM_RULE_ID, None, status))
        else:
            found = [evidence(sid, f"rain_{rule.window_s // 3600}h_mm", total, rule.threshold_mm, rule.window_s)]
            emits.append(self._emit("rainstorm", town, sid, when, rule.level, RAINSTORM_RULE_ID, found, status))

        shr = short_heavy_rain_level(station["shr"], end, rain_mm, obs.interval_s, self.shr_config)
        if shr is None:
            self._late.inc()
        elif shr.level == "none":
            emits.append(self._emit("short_heavy_rain", town, sid, when, "none", SHR_RULE_ID, None, status))
        else:
            found = [
                evidence(sid, "rain_1h_mm", shr.rain_1h_mm, shr.threshold, self.shr_config.window_s),
                evidence(sid, "window_coverage", round(shr.coverage, 3)),
            ]
            emits.append(self._emit("short_heavy_rain", town, sid, when, shr.level, SHR_RULE_ID, found, status))

        if obs.wind_mean_ms is not None:
            gale = gale_level(station["wind"], end, obs.wind_mean_ms, obs.wind_gust_ms)
            if gale is None:
                self._late.inc()
            else:
                level, mean, gust = gale
                winds: list[EvidenceDict] | None = None
                if level != "none":
                    force = BEAUFORT.force
                    winds = [
                        evidence(sid, "wind_mean_ms", mean),
                        evidence(sid, "wind_mean_force", float(force(mean))),
                        evidence(sid, "wind_gust_ms", gust),
                        evidence(sid, "wind_gust_force", float(force(gust))),
                    ]
                emits.append(self._emit("gale", town, sid, when, level, GALE_RULE_ID, winds, status))
        state[sid] = station
        return emits

    def _emit(
        self,
        hazard: str,
        town: str,
        sid: str,
        when: str,
        level: str,
        rule_id: str,
        found: list[EvidenceDict] | None,
        health: str,
    ) -> Emit:
        """One assessment after the station's health (``detectors.health.downgrade``)."""
        certainty = "Observed"
        if health in FAULTY:
            found = [*(found or ()), evidence(sid, f"{SUPPRESSED_PREFIX}{health}", float(LEVEL_RANK[level]))]
            level, certainty = "none", "Unlikely"
        elif health == "stale":
            certainty = "Possible"
        self._assessed[(hazard, level)].inc()
        return Emit(
            tn.ASSESSMENTS,
            f"{hazard}:{town}",
            assessment_json(hazard, town, sid, when, level, rule_id, found, certainty),
        )


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
        try:  # HazardAssessment.model_validate_json, without the wrapper
            assessment: HazardAssessment = _ASSESSMENT.validate_json(record.value)
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
    registry: GeoRegistry | None = None,
) -> list[Processor]:
    """The rules service's processors.

    Without ``registry``: rain (rainstorm, SHR, gale) and the lifecycle, which waits for
    ``rain_gauges_by_township`` on the rain keys. With it, also the radar nowcast, the
    geo-hazard points and the water gauges, each configured from its registry record, and
    the lifecycle's expected sources for every hazard from the same registry
    (``registry_config.expected_sources``); the rain gauges default to the registry's.
    """
    shared = metrics or Metrics()
    processors: list[Processor] = [RainstormProcessor(allowed_lateness_s=allowed_lateness_s, metrics=shared)]
    if registry is None:
        expected = expected_sources(rain_gauges_by_township or {})
    else:
        rain = rain_gauges_by_township
        if rain is None:
            rain = stations_by_township(registry.stations_of("rain"))
        points = registry.stations_of("geohazard")
        gauges = water_gauges((*registry.stations_of("water_level"), *registry.stations_of("tide")))
        expected = expected_sources(rain, radars_covering(registry), stations_by_township(points), gauges)
        processors += [
            RadarProcessor(township_points(registry), metrics=shared),
            GeoHazardProcessor(geohazard_points(points), metrics=shared),
            WaterLevelProcessor(gauges, metrics=shared),
        ]
    processors.append(LifecycleProcessor(LifecyclePolicy(allowed_lateness_s=allowed_lateness_s), shared, expected))
    return processors
