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
from schemas.advisory import StormAdvisory
from schemas.assessment import HazardAssessment
from schemas.command import OperatorCommand
from schemas.common import LEVEL_RANK
from schemas.observations import RainObservation
from schemas.rejected import RejectedRecord
from schemas.warning import WarningMessage
from services.common.bus.base import Emit, Record
from services.common.bus.processor import Processor, StateStore
from services.common.logging import get_logger
from services.common.metrics import Metrics
from services.common.rejects import rejection
from services.rules.detectors.common import from_epoch_s
from services.rules.detectors.convection import DEFAULT_CONVECTION_CONFIG, ConvectionConfig
from services.rules.detectors.health import FAULTY, RAIN_HEALTH, SUPPRESSED_PREFIX, judge, new_health_state
from services.rules.detectors.rainstorm import DEFAULT_RAINSTORM_RULES, RainstormRule, rainstorm_level
from services.rules.detectors.rainstorm import RULE_ID as RAINSTORM_RULE_ID
from services.rules.detectors.short_heavy_rain import RULE_ID as SHR_RULE_ID
from services.rules.detectors.short_heavy_rain import ShortHeavyRainConfig, short_heavy_rain_level
from services.rules.detectors.short_heavy_rain import new_gauge_state as new_shr_state
from services.rules.detectors.wind import (
    BEAUFORT,
    DEFAULT_WIND,
    GALE_EXCLUDED_RULE_ID,
    GALE_RULE_ID,
    NO_IMPACT,
    TYPHOON_RULE_ID,
    AdvisoryBook,
    ForecastImpact,
    Track,
    TrackPositions,
    WindConfig,
    bucket_start,
    forecast_impact,
    new_wind_state,
    track_positions,
    typhoon_forecast_evidence,
    typhoon_level,
    wind_levels,
)
from services.rules.encode import EvidenceDict, assessment_json, evidence, time_json
from services.rules.hazard_processors import GeoHazardProcessor, RadarProcessor, WaterLevelProcessor
from services.rules.lifecycle import CommandRefusedError, LifecyclePolicy, apply_command, fold, new_state
from services.rules.registry_config import (
    expected_sources,
    gauge_sites,
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

log = get_logger(__name__)

_reject = reject
_RAIN = RainObservation.__pydantic_validator__
_ASSESSMENT = HazardAssessment.__pydantic_validator__
_ADVISORY = StormAdvisory.__pydantic_validator__


class RainstormProcessor(Processor):
    """Everything a rain gauge's reports can say, per station (state keyed by station id).

    Per report: the CMA rainstorm signal (3/6/12 h), short-duration heavy rain (rolling
    1 h) and, for automatic stations that report wind, the gale and typhoon signals; each
    assessment passes through the station's health (spikes, flat lines, staleness) so a
    faulty sensor's reading alone cannot raise a warning (``detectors.health.downgrade``).

    Storm advisories (topic ``advisories``) are a *global* input (``Processor.global_topics``):
    every instance keeps all of them in an ``AdvisoryBook``, whatever partitions of
    ``obs.rain`` it owns. The typhoon forecast at a station depends only on (advisory,
    station, ``step_s`` bucket) (``detectors.wind`` step 6), so it is computed once per
    station and bucket and cached: the track's positions per (advisory, bucket), the
    impact per (advisory, station, bucket). A station without a known position (no
    registry) gets no forecast impact; its observed typhoon winds still count.
    """

    name: ClassVar[str] = "rules-rainstorm"
    topics: ClassVar[tuple[str, ...]] = (tn.OBS_RAIN,)
    outputs: ClassVar[tuple[str, ...]] = (tn.ASSESSMENTS, tn.OBS_REJECTED)
    global_topics: ClassVar[tuple[str, ...]] = (tn.ADVISORIES,)

    CACHED_BUCKETS: ClassVar[int] = 3
    """buckets of forecast impacts kept: the current one and late reports' (lateness < step)"""

    def __init__(
        self,
        rules: tuple[RainstormRule, ...] = DEFAULT_RAINSTORM_RULES,
        allowed_lateness_s: int = 600,
        metrics: Metrics | None = None,
        station_positions: Mapping[str, tuple[float, float]] | None = None,
        wind: WindConfig = DEFAULT_WIND,
    ) -> None:
        """``station_positions``: station id → (lon, lat), for the typhoon forecast."""
        if not wind.shared_persistence:
            msg = "wind: the rain processor folds a report once; gale and typhoon need the same persistence"
            raise ValueError(msg)
        self.rules = rules
        self.allowed_lateness_s = allowed_lateness_s
        self.metrics = metrics or Metrics()
        self.shr_config = ShortHeavyRainConfig(allowed_lateness_s=allowed_lateness_s)
        self.station_positions = dict(station_positions or {})
        self.wind = wind
        self.typhoon = wind.typhoon
        self.advisories = AdvisoryBook(wind.typhoon)
        self._cached_version = self.advisories.version
        self._newest_bucket = -(2**62)
        self._positions: dict[tuple[str, int, int], TrackPositions] = {}
        self._impacts: dict[int, dict[tuple[str, int, str], ForecastImpact]] = {}
        # labelled children resolved once: .labels() costs more than the rule on the hot path
        self._processed = self.metrics.records_processed.labels(self.name)
        self._late = self.metrics.late_records.labels(self.name)
        self._assessed = {
            (hazard, level): self.metrics.assessments.labels(hazard, level)
            for hazard in ("rainstorm", "short_heavy_rain", "gale", "typhoon")
            for level in ("none", "blue", "yellow", "orange", "red")
        }

    def on_global(self, record: Record) -> None:
        """File an advisory; a malformed one is logged and counted, never fatal."""
        if record.topic != tn.ADVISORIES:
            return
        try:
            advisory: StormAdvisory = _ADVISORY.validate_json(record.value)
        except ValidationError as exc:
            self.metrics.observations_rejected.labels("advisory_schema").inc()
            log.warning("advisory rejected", key=record.key, offset=record.offset, error=str(exc).splitlines()[0])
            return
        self.advisories.add(advisory)

    def process(self, record: Record, state: StateStore) -> list[Emit]:
        # The detectors' cores and the assessment bytes directly: the same results as
        # ``assess_rainstorm`` / ``assess_short_heavy_rain`` / ``assess_wind`` passed
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

        if obs.wind_mean_ms is not None or obs.wind_gust_ms is not None:
            self._wind(emits, station["wind"], obs, end, town, sid, when, status)
        state[sid] = station
        return emits

    def _wind(
        self,
        emits: list[Emit],
        wind: Any,
        obs: RainObservation,
        end: int,
        town: str,
        sid: str,
        when: str,
        status: str,
    ) -> None:
        """Gale and typhoon (``detectors.wind.assess_wind``): one fold, two criteria."""
        levels = wind_levels(wind, end, obs.wind_mean_ms, obs.wind_gust_ms, self.wind)
        if levels is None:  # too late: neither is assessed (two detectors, two drops)
            self._late.inc(2)
            return
        level, observed, mean, gust = levels
        impacts: list[ForecastImpact] | None = None
        book = self.advisories
        if len(book):
            begin = bucket_start(end, self.typhoon)
            if begin > self._newest_bucket:  # event time moved on: keep the book bounded
                self._newest_bucket = begin
                book.prune(begin)
            tracks = book.current(end)
            if tracks:
                impacts = self._forecast(tracks, sid, begin)
        typhoon = typhoon_level(wind, end, impacts, self.typhoon, (observed, mean, gust))
        if self.wind.gale_excludes_typhoon and typhoon.level != "none":
            emits.append(self._emit("gale", town, sid, when, "none", GALE_EXCLUDED_RULE_ID, None, status))
        else:
            winds = self._wind_evidence(sid, mean, gust) if level != "none" else None
            emits.append(self._emit("gale", town, sid, when, level, GALE_RULE_ID, winds, status))
        found: list[EvidenceDict] | None = None
        if typhoon.observed != "none":
            found = self._wind_evidence(sid, typhoon.mean_ms, typhoon.gust_ms)
        if typhoon.forecast is None:
            emits.append(self._emit("typhoon", town, sid, when, typhoon.level, TYPHOON_RULE_ID, found, status))
            return
        onset, value, threshold, window_s = typhoon_forecast_evidence(sid, end, typhoon.forecast, self.typhoon)
        found = [*(found or ()), evidence(sid, "forecast_wind_mean_ms", value, threshold, window_s, "forecast")]
        onset_json = time_json(from_epoch_s(onset))
        emits.append(
            self._emit("typhoon", town, sid, when, typhoon.level, TYPHOON_RULE_ID, found, status, "Likely", onset_json)
        )

    @staticmethod
    def _wind_evidence(sid: str, mean: float, gust: float) -> list[EvidenceDict]:
        force = BEAUFORT.force
        return [
            evidence(sid, "wind_mean_ms", mean),
            evidence(sid, "wind_mean_force", float(force(mean))),
            evidence(sid, "wind_gust_ms", gust),
            evidence(sid, "wind_gust_force", float(force(gust))),
        ]

    def _forecast(self, tracks: list[Track], sid: str, begin: int) -> list[ForecastImpact]:
        """Each current track's impact at the station, cached per (advisory, station, bucket)."""
        if self.advisories.version != self._cached_version:  # a new, corrected or pruned advisory
            self._positions.clear()
            self._impacts.clear()
            self._cached_version = self.advisories.version
        cache = self._impacts.get(begin)
        if cache is None:
            cache = self._impacts[begin] = {}
            while len(self._impacts) > self.CACHED_BUCKETS:
                oldest = min(self._impacts)
                del self._impacts[oldest]
                for stale in [k for k in self._positions if k[2] == oldest]:
                    del self._positions[stale]
        out: list[ForecastImpact] = []
        for track in tracks:
            key = (track.storm_id, track.issued_s, sid)
            impact = cache.get(key)
            if impact is None:
                impact = cache[key] = self._impact(track, sid, begin)
            out.append(impact)
        return out

    def _impact(self, track: Track, sid: str, begin: int) -> ForecastImpact:
        where = self.station_positions.get(sid)
        if where is None:
            return NO_IMPACT
        at_bucket = (track.storm_id, track.issued_s, begin)
        positions = self._positions.get(at_bucket)
        if positions is None:
            positions = self._positions[at_bucket] = track_positions(track, begin, self.typhoon)
        return forecast_impact(positions, where[0], where[1], begin, self.typhoon)

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
        certainty: str = "Observed",
        onset_json: str = "null",
    ) -> Emit:
        """One assessment after the station's health (``detectors.health.downgrade``)."""
        if health in FAULTY:
            found = [*(found or ()), evidence(sid, f"{SUPPRESSED_PREFIX}{health}", float(LEVEL_RANK[level]))]
            level, certainty, onset_json = "none", "Unlikely", "null"
        elif health == "stale" and certainty in ("Observed", "Likely"):
            certainty = "Possible"
        self._assessed[(hazard, level)].inc()
        return Emit(
            tn.ASSESSMENTS,
            f"{hazard}:{town}",
            assessment_json(hazard, town, sid, when, level, rule_id, found, certainty, onset_json),
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
        flags: list[RejectedRecord] = []
        messages, late = fold(current, assessment, self.policy, self.expected_sources(key), flags)
        state[key] = current
        if late:
            self.metrics.late_records.labels(self.name).inc()
        out: list[Emit] = []
        for flag in flags:  # a claim the radars contradict (lifecycle._implausible)
            self.metrics.observations_rejected.labels(flag.reason).inc()
            out.append(Emit(tn.OBS_REJECTED, key, flag.model_dump_json().encode()))
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
    convection: ConvectionConfig | None = None,
) -> list[Processor]:
    """The rules service's processors (``convection``: the radar nowcast's configuration).

    Without ``registry``: rain (rainstorm, SHR, gale, typhoon on observed winds only: no
    station positions for the advisories' forecast) and the lifecycle, which waits for
    ``rain_gauges_by_township`` on the rain keys. With it, the rain stations' positions
    (typhoon forecast at each station), the radar nowcast, the
    geo-hazard points and the water gauges, each configured from its registry record, and
    the lifecycle's expected sources for every hazard from the same registry
    (``registry_config.expected_sources``); the rain gauges default to the registry's.
    """
    shared = metrics or Metrics()
    positions = {s.station_id: (s.lon, s.lat) for s in registry.stations_of("rain")} if registry is not None else {}
    rain_processor = RainstormProcessor(
        allowed_lateness_s=allowed_lateness_s, metrics=shared, station_positions=positions
    )
    processors: list[Processor] = [rain_processor]
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
            RadarProcessor(
                township_points(registry),
                convection or DEFAULT_CONVECTION_CONFIG,
                metrics=shared,
                gauges=gauge_sites(registry.stations_of("rain")),
            ),
            GeoHazardProcessor(geohazard_points(points), metrics=shared),
            WaterLevelProcessor(gauges, metrics=shared),
        ]
    processors.append(LifecycleProcessor(LifecyclePolicy(allowed_lateness_s=allowed_lateness_s), shared, expected))
    return processors
