"""Processors for the radar, geo-hazard and water-level detectors (the rain ones are in ``processors``).

``RadarProcessor``       obs.radar     (state per radar)  -> convection + SHR nowcast per covered township
                                                             (on change, else every ``heartbeat_s``)
``GeoHazardProcessor``   obs.geohazard (state per point)  -> geohazard, key ``geohazard:<point's township>``
``WaterLevelProcessor``  obs.water     (state per gauge)  -> flood / tide, key ``<hazard>:<gauge's townships>``

All three write ``hazard.assessments`` keyed ``hazard:township`` with ``source_id`` = the
radar, point or gauge: the lifecycle keeps one history per source and decides on the
township's level across them (its watermark waits for the registry's expected sources,
``registry_config.expected_sources``).

Geo-hazard roll-up. A township's monitoring points live in different partitions (state
is keyed by point), so no point processor can see its neighbours. Each point's assessment
therefore goes to the township key as its own source, and the township level is formed
where all of them meet, in the lifecycle, at each decision time from every point's level
then: the highest point level, raised to red when two or more points are at orange or
above (``township_geohazard_rollup``, ``LifecyclePolicy.geohazard_rollup``). The result is
deterministic whatever order the points' records arrive in.

Per report the geo-hazard and water-level assessments pass through the station's sensor
health (``detectors.health``: displacement jumps, stuck or jumping gauges), like rain.
Bad input (schema, not enriched by ingest, a station the rules have no record for) goes
to ``obs.rejected`` with the reason; too-late reports are counted in ``late_records``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ValidationError

from schemas import topics as tn
from schemas.assessment import HazardAssessment
from schemas.observations import GeoHazardObservation, RadarScan, WaterLevelObservation
from schemas.rejected import RejectReason
from services.common.bus.base import Emit, Record
from services.common.bus.processor import Processor, StateStore
from services.common.metrics import Metrics
from services.common.rejects import describe_validation_error
from services.rules.detectors.convection import (
    DEFAULT_CONVECTION_CONFIG,
    ConvectionConfig,
    TownshipPoints,
    assess_convection,
    new_radar_state,
)
from services.rules.detectors.field import FIELD_METRIC, GaugeSites
from services.rules.detectors.flood import assess_water_level, new_gauge_state
from services.rules.detectors.geohazard import assess_geohazard, new_point_state
from services.rules.detectors.health import (
    GEOHAZARD_HEALTH,
    WATER_LEVEL_HEALTH,
    HealthConfig,
    assess_health,
    downgrade,
    health_value,
    new_health_state,
)
from services.rules.registry_config import GaugeConfig, PointConfig
from services.rules.rejects import reject

LEVELS = ("none", "blue", "yellow", "orange", "red")
DEFAULT_RADAR_HEARTBEAT_S = 360
"""Event-time seconds after which a radar repeats an unchanged assessment (the S-band cycle)."""
M = TypeVar("M", bound=BaseModel)


class _HazardProcessor(Processor):
    """Shared plumbing: metrics, rejections, publishing assessments."""

    hazards: ClassVar[tuple[str, ...]]

    def __init__(self, metrics: Metrics | None) -> None:
        self.metrics = metrics or Metrics()
        self._processed = self.metrics.records_processed.labels(self.name)
        self._late = self.metrics.late_records.labels(self.name)
        self._quiet = self.metrics.quiet_records.labels(self.name)
        self._assessed = {
            (hazard, level): self.metrics.assessments.labels(hazard, level)
            for hazard in self.hazards
            for level in LEVELS
        }

    def _parse(self, record: Record, model: type[M]) -> M | Emit:
        try:
            return model.model_validate_json(record.value)
        except ValidationError as exc:
            self.metrics.observations_rejected.labels(describe_validation_error(exc)[0]).inc()
            return reject(record, exc)

    def _refuse(self, record: Record, reason: RejectReason, detail: str, field: str) -> list[Emit]:
        self.metrics.observations_rejected.labels(reason).inc()
        return [reject(record, ValueError(detail), reason=reason, field=field)]

    def _emit(self, assessments: list[HazardAssessment]) -> list[Emit]:
        out: list[Emit] = []
        for a in assessments:
            self._assessed[(a.hazard, a.level)].inc()
            out.append(Emit(tn.ASSESSMENTS, a.key, a.model_dump_json().encode()))
        return out


class RadarProcessor(_HazardProcessor):
    """Radar scans → convection and SHR nowcasts for the townships each scan covers.

    State per radar: the live cell tracks (``convection.new_radar_state``). A scan older
    than the radar's newest is late (its nowcast is superseded): counted, nothing emitted.
    The same scan again repeats its assessments (idempotent).

    Change-only output with a heartbeat. The detector assesses every covered township on
    every scan (X-band: every minute), almost all ``none``. Per (hazard, township) a
    ``none`` is published only when the last assessment published for that key was not the
    same bare ``none`` (same rule), or when ``heartbeat_s`` of event time has passed since
    it; anything above ``none`` is always published (see ``_quiet_signature``). So a level
    change, and a drop to ``none``, goes out at once. What is held back repeats the radar's
    last published entry, which the lifecycle reads as the source's level until its next
    report, so the township level at every decision time is unchanged. Decision times
    made only by held-back ``none`` reports go, so the all-clear (which the lifecycle gives
    at the first decision time after its quiet period, counted from the last one above
    ``none``) can move by up to ``heartbeat_s``, earlier or later. The watermark: a
    township's decisions wait for all its expected sources, and a quiet radar now reports
    only every ``heartbeat_s`` (default 360 s, the S-band cycle, below the lifecycle's
    600 s allowed lateness), so a decision can wait that long in real time (``sent_at``
    stays the triggering scan's time).
    ``heartbeat_s=0`` publishes every assessment, as before.

    The last published state is kept in the radar's state (``"emitted"``: key →
    ``[epoch_s, quiet signature or None]``, JSON-compatible, at most townships × 2
    entries), so it survives a restart with the tracks. A redelivered scan re-publishes
    exactly the keys published for it the first time (their stored time is the scan's).
    """

    name: ClassVar[str] = "rules-radar"
    topics: ClassVar[tuple[str, ...]] = (tn.OBS_RADAR,)
    outputs: ClassVar[tuple[str, ...]] = (tn.ASSESSMENTS, tn.OBS_REJECTED)
    hazards: ClassVar[tuple[str, ...]] = ("convection", "short_heavy_rain", "rainstorm")

    def __init__(
        self,
        townships: TownshipPoints,
        config: ConvectionConfig = DEFAULT_CONVECTION_CONFIG,
        metrics: Metrics | None = None,
        heartbeat_s: int = DEFAULT_RADAR_HEARTBEAT_S,
        gauges: GaugeSites | None = None,
    ) -> None:
        super().__init__(metrics)
        if heartbeat_s < 0:
            raise ValueError(f"heartbeat_s must be >= 0, got {heartbeat_s}")
        self.townships = townships
        self.config = config
        self.heartbeat_s = heartbeat_s
        self.gauges = gauges

    def process(self, record: Record, state: StateStore) -> list[Emit]:
        self._processed.inc()
        scan = self._parse(record, RadarScan)
        if isinstance(scan, Emit):
            return [scan]
        radar: dict[str, Any] = state.get(scan.station_id) or new_radar_state()
        last: int | None = radar["scan_s"]
        scan_s = int(scan.observed_at.timestamp())
        if last is not None and scan_s < last:
            self._late.inc()
            return []
        assessments = assess_convection(scan, radar, self.townships, self.config, self.gauges)
        if self.heartbeat_s > 0:
            assessed = bool(assessments)
            assessments = self._changed(radar.setdefault("emitted", {}), scan_s, assessments)
            if assessed and not assessments:
                self._quiet.inc()
        state[scan.station_id] = radar
        return self._emit(assessments)

    def _changed(
        self, emitted: dict[str, list[Any]], scan_s: int, assessments: list[HazardAssessment]
    ) -> list[HazardAssessment]:
        """The assessments to publish; records them in ``emitted`` (mutated)."""
        out: list[HazardAssessment] = []
        heartbeat = self.heartbeat_s
        for a in assessments:
            key = f"{a.hazard}:{a.township_code}"
            quiet = _quiet_signature(a)
            previous = emitted.get(key)
            if (
                quiet is not None
                and previous is not None
                and previous[1] == quiet
                and previous[0] != scan_s  # the same scan again repeats what it published
                and scan_s - previous[0] < heartbeat
            ):
                continue
            emitted[key] = [scan_s, quiet]
            out.append(a)
        return out


def _quiet_signature(a: HazardAssessment) -> str | None:
    """What the lifecycle reads of a ``none`` assessment (its rule, certainty and the radar's
    vote on the township's gauges, ``detectors.field``); ``None`` for any other.

    Only unchanged ``none`` is held back. An assessment above ``none`` is always published:
    the lifecycle marks a warning active (``last_active``) only at the times its sources
    report, so holding back a repeat above ``none`` would start the all-clear quiet period
    early.
    """
    if a.level != "none" or a.onset_at is not None:
        return None
    if not a.evidence:
        return f"{a.rule_id} {a.certainty}"
    if len(a.evidence) == 1 and a.evidence[0].metric == FIELD_METRIC:
        return f"{a.rule_id} {a.certainty} {FIELD_METRIC}={a.evidence[0].value:g}"
    return None


class GeoHazardProcessor(_HazardProcessor):
    """Monitoring-point reports → the point's geo-hazard assessment for its township.

    ``points`` (from the registry) gives each point's township and own thresholds. State
    per point: the detector's rain bins and displacement reports, and the sensor health.
    """

    name: ClassVar[str] = "rules-geohazard"
    topics: ClassVar[tuple[str, ...]] = (tn.OBS_GEOHAZARD,)
    outputs: ClassVar[tuple[str, ...]] = (tn.ASSESSMENTS, tn.OBS_REJECTED)
    hazards: ClassVar[tuple[str, ...]] = ("geohazard",)

    def __init__(
        self,
        points: Mapping[str, PointConfig],
        metrics: Metrics | None = None,
        health: HealthConfig = GEOHAZARD_HEALTH,
    ) -> None:
        super().__init__(metrics)
        self.points = dict(points)
        self.health = health

    def process(self, record: Record, state: StateStore) -> list[Emit]:
        self._processed.inc()
        obs = self._parse(record, GeoHazardObservation)
        if isinstance(obs, Emit):
            return [obs]
        if obs.township_code is None:
            return self._refuse(record, "unknown_station", "observation was not enriched by ingest", "township_code")
        point = self.points.get(obs.station_id)
        if point is None:
            return self._refuse(
                record, "unknown_station", f"no thresholds for geo-hazard point {obs.station_id!r}", "station_id"
            )
        current: dict[str, Any] = state.get(obs.station_id) or {
            "point": new_point_state(),
            "health": new_health_state(),
        }
        health = assess_health(obs.station_id, obs.observed_at, health_value(obs), current["health"], self.health)
        raw = assess_geohazard(obs, current["point"], point.township_code, point.thresholds)
        state[obs.station_id] = current
        if raw is None:
            self._late.inc()
            return []
        return self._emit([raw if health is None else downgrade(raw, health)])


class WaterLevelProcessor(_HazardProcessor):
    """River, canal and tide gauge readings → flood / tide assessments.

    ``gauges`` (from the registry) gives each gauge's levels and the townships it speaks
    for (its own, plus any listed for it); one assessment per township per reading.
    """

    name: ClassVar[str] = "rules-water"
    topics: ClassVar[tuple[str, ...]] = (tn.OBS_WATER,)
    outputs: ClassVar[tuple[str, ...]] = (tn.ASSESSMENTS, tn.OBS_REJECTED)
    hazards: ClassVar[tuple[str, ...]] = ("flood", "tide")

    def __init__(
        self,
        gauges: Mapping[str, GaugeConfig],
        metrics: Metrics | None = None,
        health: HealthConfig = WATER_LEVEL_HEALTH,
    ) -> None:
        super().__init__(metrics)
        self.gauges = dict(gauges)
        self.health = health

    def process(self, record: Record, state: StateStore) -> list[Emit]:
        self._processed.inc()
        obs = self._parse(record, WaterLevelObservation)
        if isinstance(obs, Emit):
            return [obs]
        if obs.township_code is None:
            return self._refuse(record, "unknown_station", "observation was not enriched by ingest", "township_code")
        gauge = self.gauges.get(obs.station_id)
        if gauge is None:
            return self._refuse(
                record, "unknown_station", f"no levels for water gauge {obs.station_id!r}", "station_id"
            )
        current: dict[str, Any] = state.get(obs.station_id) or {
            "level": new_gauge_state(),
            "health": new_health_state(),
        }
        health = assess_health(obs.station_id, obs.observed_at, health_value(obs), current["health"], self.health)
        first, *rest = gauge.township_codes
        raw = assess_water_level(obs, current["level"], first, gauge.gauge)
        state[obs.station_id] = current
        if raw is None:
            self._late.inc()
            return []
        assessed = raw if health is None else downgrade(raw, health)
        return self._emit([assessed, *(assessed.model_copy(update={"township_code": town}) for town in rest)])
