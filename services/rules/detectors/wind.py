"""Gale (大风) and typhoon (台风) signals at automatic weather stations.

Beaufort force (domain standards §1.7 [K], GB/T 28591-2012) from 10-m wind speed, as data
(``BeaufortScale.lower_ms``: the lowest speed of each force; forces 0–5 are the standard
Beaufort bounds [K], 6–17 are the §1.7 table)::

    force  0   1    2    3    4    5    6     7     8     9     10    11    12    …  17
    ≥ m/s  0  0.3  1.6  3.4  5.5  8.0  10.8  13.9  17.2  20.8  24.5  28.5  32.7  …  56.1

Gale, observed criteria (§1.4 [S]; "excluding typhoon"):

    level   2-min mean force   or gust force
    blue    ≥ 6                ≥ 7           ("and persisting")
    yellow  ≥ 8                ≥ 9
    orange  ≥ 10               ≥ 11
    red     ≥ 12               ≥ 13

Typhoon (§1.3 [S]), only while a storm forecast is supplied:

    level   impact within   mean force   or gust force
    blue    24 h            ≥ 6          ≥ 8          (or already affected)
    yellow  24 h            ≥ 8          ≥ 10
    orange  12 h            ≥ 10         ≥ 12
    red      6 h            ≥ 12         ≥ 14

Steps per report (gale):

1. Too late (older than ``newest - allowed_lateness_s``): ``None``; a report without wind
   fields (a rain-only gauge): ``None``.
2. Upsert (time, mean, gust) at the report's epoch second; evict beyond the persistence
   span. Gale and typhoon share this state: the upsert is idempotent, so both may fold the
   same report.
3. Per report, the level is the highest criterion met by its mean *or* its gust force.
4. "Persisting" [A]: the station level is the *lowest* per-report level over the last
   ``persistence_reports`` (2) reports, which must follow each other within
   ``max_report_gap_s``; after a gap the station waits for a second report. One gusty
   minute alone never raises a signal.

Typhoon forecast [A] (a modified Rankine vortex, no asymmetry, no land reduction)::

    V(r) = Vmax · r / Rmax              r ≤ Rmax        (Rmax = 30 km)
    V(r) = Vmax · (Rmax / r)^x          r > Rmax        (x = 0.5)
    gust = gust_factor · V               (1.4)

5. The track (forecast points ``(time, lon, lat, vmax_ms)``) is interpolated linearly in
   time every ``step_s`` (30 min) from the report time; steps outside the forecast's time
   span are not assessed (no extrapolation).
6. For each level, highest first: if at some step within the level's window the station's
   V or gust reaches the criterion, that level holds and ``onset_at`` = the first such step.
7. "Already affected": the observed criteria of the same table, with the gale persistence
   rule, while a forecast is active. Level = max(observed, forecast); ``Likely`` with
   ``onset_at`` when the forecast alone gives it, ``Observed`` otherwise.
8. ``assess_wind`` emits both; with ``gale_excludes_typhoon`` (§1.4's "excluding typhoon")
   a station under a typhoon level gets gale ``none``, so the same wind does not raise two
   signals.
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import datetime
from itertools import pairwise

from pydantic import Field, model_validator

from schemas.assessment import Evidence, HazardAssessment
from schemas.common import LevelOrNone, UtcDatetime
from schemas.observations import RainObservation
from services.rules.detectors.common import (
    FrozenConfig,
    Table,
    accepts,
    epoch_s,
    evict_before,
    from_epoch_s,
    km_between,
    new_table,
    newest_t,
    rank,
    rows_between,
    upsert_row,
)

GALE_RULE_ID = "cma-gale-observed"
TYPHOON_RULE_ID = "cma-typhoon"


class BeaufortScale(FrozenConfig):
    lower_ms: tuple[float, ...] = (
        0.0, 0.3, 1.6, 3.4, 5.5, 8.0,  # forces 0–5 [K]
        10.8, 13.9, 17.2, 20.8, 24.5, 28.5, 32.7, 37.0, 41.5, 46.2, 51.0, 56.1,  # 6–17, §1.7
    )  # fmt: skip

    @model_validator(mode="after")
    def _increasing(self) -> BeaufortScale:
        if any(b <= a for a, b in pairwise(self.lower_ms)):
            msg = "Beaufort lower bounds must increase"
            raise ValueError(msg)
        return self

    def force(self, speed_ms: float) -> int:
        return max(0, bisect_right(self.lower_ms, speed_ms) - 1)

    def lower_bound_ms(self, force: int) -> float:
        return self.lower_ms[min(force, len(self.lower_ms) - 1)]


BEAUFORT = BeaufortScale()


class ForceCriterion(FrozenConfig):
    level: LevelOrNone
    mean_force: int = Field(ge=0)
    gust_force: int = Field(ge=0)
    within_s: int = Field(default=24 * 3600, ge=0, description="typhoon only: time to impact")


def _level_of(criteria: tuple[ForceCriterion, ...], mean_force: int, gust_force: int) -> LevelOrNone:
    for criterion in criteria:
        if mean_force >= criterion.mean_force or gust_force >= criterion.gust_force:
            return criterion.level
    return "none"


class WindPersistence(FrozenConfig):
    persistence_reports: int = Field(default=2, ge=1, description="[A] reading of 'and persisting'")
    max_report_gap_s: int = Field(default=1200, gt=0)
    allowed_lateness_s: int = Field(default=600, ge=0)


class GaleConfig(FrozenConfig):
    criteria: tuple[ForceCriterion, ...] = (
        ForceCriterion(level="red", mean_force=12, gust_force=13),
        ForceCriterion(level="orange", mean_force=10, gust_force=11),
        ForceCriterion(level="yellow", mean_force=8, gust_force=9),
        ForceCriterion(level="blue", mean_force=6, gust_force=7),
    )
    persistence: WindPersistence = WindPersistence()
    beaufort: BeaufortScale = BEAUFORT


class WindProfile(FrozenConfig):
    """Modified Rankine vortex [A]."""

    radius_max_wind_km: float = Field(default=30.0, gt=0.0)
    decay_exponent: float = Field(default=0.5, gt=0.0)
    gust_factor: float = Field(default=1.4, ge=1.0)

    def mean_ms(self, vmax_ms: float, distance_km: float) -> float:
        if distance_km <= self.radius_max_wind_km:
            return vmax_ms * distance_km / self.radius_max_wind_km
        return vmax_ms * float((self.radius_max_wind_km / distance_km) ** self.decay_exponent)


class TyphoonConfig(FrozenConfig):
    criteria: tuple[ForceCriterion, ...] = (
        ForceCriterion(level="red", mean_force=12, gust_force=14, within_s=6 * 3600),
        ForceCriterion(level="orange", mean_force=10, gust_force=12, within_s=12 * 3600),
        ForceCriterion(level="yellow", mean_force=8, gust_force=10, within_s=24 * 3600),
        ForceCriterion(level="blue", mean_force=6, gust_force=8, within_s=24 * 3600),
    )
    profile: WindProfile = WindProfile()
    step_s: int = Field(default=1800, gt=0)
    persistence: WindPersistence = WindPersistence()
    beaufort: BeaufortScale = BEAUFORT


class WindConfig(FrozenConfig):
    gale: GaleConfig = GaleConfig()
    typhoon: TyphoonConfig = TyphoonConfig()
    gale_excludes_typhoon: bool = True


DEFAULT_GALE = GaleConfig()
DEFAULT_TYPHOON = TyphoonConfig()
DEFAULT_WIND = WindConfig()


class StormForecastPoint(FrozenConfig):
    at: UtcDatetime
    lon: float = Field(ge=-180.0, le=180.0)
    lat: float = Field(ge=-90.0, le=90.0)
    vmax_ms: float = Field(ge=0.0, le=100.0, description="maximum 2-min mean wind near the centre")


class StormForecast(FrozenConfig):
    storm_id: str = Field(min_length=1, max_length=64)
    issued_at: UtcDatetime
    points: tuple[StormForecastPoint, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _chronological(self) -> StormForecast:
        if any(b.at <= a.at for a, b in pairwise(self.points)):
            msg = "forecast points must be in strictly increasing time order"
            raise ValueError(msg)
        return self

    def position_at(self, moment_s: float) -> tuple[float, float, float] | None:
        """(lon, lat, vmax_ms) interpolated linearly in time; ``None`` outside the track."""
        times = [epoch_s(p.at) for p in self.points]
        if moment_s < times[0] or moment_s > times[-1]:
            return None
        index = bisect_right(times, moment_s)
        if index >= len(times):
            last = self.points[-1]
            return last.lon, last.lat, last.vmax_ms
        a, b = self.points[index - 1], self.points[index]
        w = (moment_s - times[index - 1]) / (times[index] - times[index - 1])
        return a.lon + w * (b.lon - a.lon), a.lat + w * (b.lat - a.lat), a.vmax_ms + w * (b.vmax_ms - a.vmax_ms)


def new_wind_state() -> Table:
    return new_table("mean_ms", "gust_ms")


def _fold(obs: RainObservation, state: Table, persistence: WindPersistence) -> bool:
    """Upsert the report's wind; False when it is too late or carries no wind."""
    return _fold_wind(epoch_s(obs.observed_at), obs.wind_mean_ms, obs.wind_gust_ms, state, persistence)


def _fold_wind(
    at: int, mean_ms: float | None, gust_ms: float | None, state: Table, persistence: WindPersistence
) -> bool:
    if (mean_ms is None and gust_ms is None) or not accepts(state, at, persistence.allowed_lateness_s):
        return False
    upsert_row(state, at, {"mean_ms": mean_ms, "gust_ms": gust_ms})
    span = persistence.persistence_reports * persistence.max_report_gap_s
    evict_before(state, (newest_t(state) or at) - persistence.allowed_lateness_s - span)
    return True


def _persistent_level(
    state: Table,
    at: int,
    criteria: tuple[ForceCriterion, ...],
    persistence: WindPersistence,
    beaufort: BeaufortScale,
) -> tuple[LevelOrNone, float, float]:
    """Lowest per-report level over the last N consecutive reports; with the latest winds."""
    rows = rows_between(state, at - persistence.persistence_reports * persistence.max_report_gap_s, at)
    times: list[int] = state["t"][rows][-persistence.persistence_reports :]
    means: list[float | None] = state["mean_ms"][rows][-persistence.persistence_reports :]
    gusts: list[float | None] = state["gust_ms"][rows][-persistence.persistence_reports :]
    latest_mean, latest_gust = means[-1] or 0.0, gusts[-1] or 0.0
    consecutive = all(b - a <= persistence.max_report_gap_s for a, b in pairwise(times))
    if len(times) < persistence.persistence_reports or not consecutive:
        return "none", latest_mean, latest_gust
    levels = [
        _level_of(criteria, beaufort.force(mean or 0.0), beaufort.force(gust or 0.0))
        for mean, gust in zip(means, gusts, strict=True)
    ]
    return min(levels, key=rank), latest_mean, latest_gust


def _wind_evidence(station: str, mean: float, gust: float, beaufort: BeaufortScale) -> tuple[Evidence, ...]:
    return (
        Evidence(station_id=station, metric="wind_mean_ms", value=mean),
        Evidence(station_id=station, metric="wind_mean_force", value=float(beaufort.force(mean))),
        Evidence(station_id=station, metric="wind_gust_ms", value=gust),
        Evidence(station_id=station, metric="wind_gust_force", value=float(beaufort.force(gust))),
    )


def gale_level(
    state: Table, at: int, mean_ms: float | None, gust_ms: float | None, config: GaleConfig = DEFAULT_GALE
) -> tuple[LevelOrNone, float, float] | None:
    """Fold a report's wind into ``state``: the station's gale level and its latest winds.

    ``None``: the report carries no wind or is too late.
    """
    if not _fold_wind(at, mean_ms, gust_ms, state, config.persistence):
        return None
    return _persistent_level(state, at, config.criteria, config.persistence, config.beaufort)


def assess_gale(
    obs: RainObservation, state: Table, township_code: str, config: GaleConfig = DEFAULT_GALE
) -> HazardAssessment | None:
    """Observed gale signal for the station (``new_wind_state()``); ``None``: no wind / too late."""
    found = gale_level(state, epoch_s(obs.observed_at), obs.wind_mean_ms, obs.wind_gust_ms, config)
    if found is None:
        return None
    level, mean, gust = found
    return HazardAssessment(
        hazard="gale",
        township_code=township_code,
        source_id=obs.station_id,
        assessed_at=obs.observed_at,
        level=level,
        rule_id=GALE_RULE_ID,
        evidence=_wind_evidence(obs.station_id, mean, gust, config.beaufort) if level != "none" else (),
    )


def forecast_station_winds(
    forecast: StormForecast,
    station_lon: float,
    station_lat: float,
    start: datetime,
    duration_s: int,
    config: TyphoonConfig = DEFAULT_TYPHOON,
) -> list[tuple[int, float, float]]:
    """``(epoch_s, mean_ms, gust_ms)`` at the station every ``step_s`` over the window."""
    begin = epoch_s(start)
    out: list[tuple[int, float, float]] = []
    for moment in range(begin, begin + duration_s + 1, config.step_s):
        position = forecast.position_at(moment)
        if position is None:
            continue
        lon, lat, vmax = position
        mean = config.profile.mean_ms(vmax, km_between(lon, lat, station_lon, station_lat))
        out.append((moment, mean, mean * config.profile.gust_factor))
    return out


def _forecast_level(
    forecast: StormForecast, station_lon: float, station_lat: float, start: datetime, config: TyphoonConfig
) -> tuple[LevelOrNone, int | None, float]:
    """Highest forecast level, its onset (epoch s) and the peak mean wind in its window."""
    longest = max(c.within_s for c in config.criteria)
    winds = forecast_station_winds(forecast, station_lon, station_lat, start, longest, config)
    begin = epoch_s(start)
    for criterion in config.criteria:
        mean_ms = config.beaufort.lower_bound_ms(criterion.mean_force)
        gust_ms = config.beaufort.lower_bound_ms(criterion.gust_force)
        for moment, mean, gust in winds:
            if moment - begin > criterion.within_s:
                break
            if mean >= mean_ms or gust >= gust_ms:
                peak = max(m for t, m, _ in winds if t - begin <= criterion.within_s)
                return criterion.level, moment, peak
    return "none", None, 0.0


def assess_typhoon(
    obs: RainObservation,
    state: Table,
    township_code: str,
    station_lon: float,
    station_lat: float,
    forecast: StormForecast | None,
    config: TyphoonConfig = DEFAULT_TYPHOON,
) -> HazardAssessment | None:
    """Typhoon signal at the station; ``none`` without an active forecast; ``None``: too late.

    A report without wind fields is still assessed on the forecast alone.
    """
    at = epoch_s(obs.observed_at)
    has_wind = obs.wind_mean_ms is not None or obs.wind_gust_ms is not None
    if not accepts(state, at, config.persistence.allowed_lateness_s):
        return None
    station = obs.station_id

    def result(
        level: LevelOrNone, evidence: tuple[Evidence, ...] = (), onset: datetime | None = None
    ) -> HazardAssessment:
        return HazardAssessment(
            hazard="typhoon",
            township_code=township_code,
            source_id=station,
            assessed_at=obs.observed_at,
            level=level,
            rule_id=TYPHOON_RULE_ID,
            onset_at=onset,
            certainty="Observed" if onset is None else "Likely",
            evidence=evidence,
        )

    observed: LevelOrNone = "none"
    evidence: tuple[Evidence, ...] = ()
    if has_wind and _fold(obs, state, config.persistence):
        observed, mean, gust = _persistent_level(state, at, config.criteria, config.persistence, config.beaufort)
        if observed != "none":
            evidence = _wind_evidence(station, mean, gust, config.beaufort)
    if forecast is None:
        return result("none")
    forecast_level, onset_s, peak_ms = _forecast_level(forecast, station_lon, station_lat, obs.observed_at, config)
    if rank(forecast_level) > rank(observed) and onset_s is not None:
        mean_force = next(c.mean_force for c in config.criteria if c.level == forecast_level)
        forecast_evidence = Evidence(
            station_id=station,
            metric="forecast_wind_mean_ms",
            value=round(peak_ms, 1),
            threshold=config.beaufort.lower_bound_ms(mean_force),
            window_s=onset_s - at,
            basis="forecast",
        )
        return result(forecast_level, (*evidence, forecast_evidence), from_epoch_s(onset_s))
    return result(observed, evidence)


def assess_wind(
    obs: RainObservation,
    state: Table,
    township_code: str,
    station_lon: float,
    station_lat: float,
    forecast: StormForecast | None,
    config: WindConfig = DEFAULT_WIND,
) -> list[HazardAssessment]:
    """Gale and typhoon for one station report (the gale one only if it carries wind)."""
    typhoon = assess_typhoon(obs, state, township_code, station_lon, station_lat, forecast, config.typhoon)
    gale = assess_gale(obs, state, township_code, config.gale)
    out = [a for a in (gale, typhoon) if a is not None]
    if gale is not None and typhoon is not None and config.gale_excludes_typhoon and typhoon.level != "none":
        out[0] = gale.model_copy(update={"level": "none", "evidence": (), "rule_id": f"{GALE_RULE_ID}-typhoon"})
    return out
