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

Typhoon (§1.3 [S]), only while a storm advisory is current (``schemas.advisory``):

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

5. The advisory: per storm, the newest ``StormAdvisory`` issued at or before the report
   (``AdvisoryBook.current``); an advisory issued later is not used. No advisory: typhoon
   ``none``, whatever the anemometer says (strong wind alone is the gale signal).
6. The track (``(time, lon, lat, vmax_ms)``) is interpolated linearly in time at the steps
   ``b, b + step_s, …`` of the report's ``step_s`` (30 min) bucket ``b = t − t mod step_s``,
   over the longest window; steps outside the track's time span are not assessed (no
   extrapolation). For each level, highest first: if at a step within the level's window
   (``≤ b + within``) the station's V or gust reaches the criterion, that level holds
   with ``onset_at`` = that step, or the report time if the step is earlier. Windows
   counted from the bucket, not the report, make the forecast a function of (advisory,
   station, bucket), so the rain processor computes it once per station and bucket; the
   cost is up to one step (30 min) of window length, the same as the step itself.
   Several storms: the highest level, the earliest onset among equals.
7. "Already affected": the observed criteria of the same table, with the gale persistence
   rule, while an advisory is current. Level = max(observed, forecast); ``Likely`` with
   ``onset_at`` and a ``forecast`` evidence when the forecast alone gives it, ``Observed``
   otherwise. Reports without wind are not assessed (the wind-reporting stations speak
   for the township, as for gale).
8. ``assess_wind`` emits both; with ``gale_excludes_typhoon`` (§1.4's "excluding typhoon")
   a station under a typhoon level gets gale ``none`` (rule ``cma-gale-observed-typhoon``),
   so the same wind does not raise two signals.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise

from pydantic import Field, model_validator

from schemas.advisory import StormAdvisory
from schemas.assessment import Evidence, HazardAssessment
from schemas.common import LevelOrNone
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
GALE_EXCLUDED_RULE_ID = f"{GALE_RULE_ID}-typhoon"


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
    advisory_keep_s: int = Field(
        default=24 * 3600, gt=0, description="an advisory superseded or ended this long ago is dropped"
    )


class WindConfig(FrozenConfig):
    gale: GaleConfig = GaleConfig()
    typhoon: TyphoonConfig = TyphoonConfig()
    gale_excludes_typhoon: bool = True

    @property
    def shared_persistence(self) -> bool:
        """Gale and typhoon read the shared wind state with the same rule (one fold, one pass)."""
        return self.gale.persistence == self.typhoon.persistence and self.gale.beaufort == self.typhoon.beaufort


DEFAULT_GALE = GaleConfig()
DEFAULT_TYPHOON = TyphoonConfig()
DEFAULT_WIND = WindConfig()


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


def _persistent_levels(
    state: Table,
    at: int,
    criteria_sets: tuple[tuple[ForceCriterion, ...], ...],
    persistence: WindPersistence,
    beaufort: BeaufortScale,
) -> tuple[tuple[LevelOrNone, ...], float, float]:
    """Per criteria set, the lowest per-report level over the last N consecutive reports.

    With the latest winds. One pass over the rows for gale and typhoon alike.
    """
    rows = rows_between(state, at - persistence.persistence_reports * persistence.max_report_gap_s, at)
    times: list[int] = state["t"][rows][-persistence.persistence_reports :]
    means: list[float | None] = state["mean_ms"][rows][-persistence.persistence_reports :]
    gusts: list[float | None] = state["gust_ms"][rows][-persistence.persistence_reports :]
    latest_mean, latest_gust = means[-1] or 0.0, gusts[-1] or 0.0
    consecutive = all(b - a <= persistence.max_report_gap_s for a, b in pairwise(times))
    if len(times) < persistence.persistence_reports or not consecutive:
        return tuple("none" for _ in criteria_sets), latest_mean, latest_gust
    force = beaufort.force
    forces = [(force(mean or 0.0), force(gust or 0.0)) for mean, gust in zip(means, gusts, strict=True)]
    levels = tuple(min((_level_of(c, m, g) for m, g in forces), key=rank) for c in criteria_sets)
    return levels, latest_mean, latest_gust


def _persistent_level(
    state: Table,
    at: int,
    criteria: tuple[ForceCriterion, ...],
    persistence: WindPersistence,
    beaufort: BeaufortScale,
) -> tuple[LevelOrNone, float, float]:
    """Lowest per-report level over the last N consecutive reports; with the latest winds."""
    (level,), mean, gust = _persistent_levels(state, at, (criteria,), persistence, beaufort)
    return level, mean, gust


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


def wind_levels(
    state: Table, at: int, mean_ms: float | None, gust_ms: float | None, config: WindConfig
) -> tuple[LevelOrNone, LevelOrNone, float, float] | None:
    """Fold a report once: (gale level, typhoon *observed* level, latest mean, latest gust).

    The rain processor's path; needs the same persistence rule and scale for both
    (``WindConfig.shared_persistence``). ``None``: no wind or too late.
    """
    gale, typhoon = config.gale, config.typhoon
    if not _fold_wind(at, mean_ms, gust_ms, state, gale.persistence):
        return None
    (gale_lvl, typhoon_lvl), mean, gust = _persistent_levels(
        state, at, (gale.criteria, typhoon.criteria), gale.persistence, gale.beaufort
    )
    return gale_lvl, typhoon_lvl, mean, gust


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


# ── typhoon: the storm's forecast track (``schemas.advisory``) ─────────────────────────────


@dataclass(frozen=True, slots=True)
class Track:
    """A ``StormAdvisory`` as the detector reads it: its track as parallel arrays (epoch s)."""

    storm_id: str
    issued_s: int
    times: tuple[int, ...]
    lons: tuple[float, ...]
    lats: tuple[float, ...]
    vmax_ms: tuple[float, ...]

    @classmethod
    def of(cls, advisory: StormAdvisory) -> Track:
        points = advisory.points
        return cls(
            storm_id=advisory.storm_id,
            issued_s=epoch_s(advisory.issued_at),
            times=tuple(epoch_s(p.at) for p in points),
            lons=tuple(p.lon for p in points),
            lats=tuple(p.lat for p in points),
            vmax_ms=tuple(p.vmax_ms for p in points),
        )

    @property
    def ends_s(self) -> int:
        return self.times[-1]

    def position_at(self, moment_s: int) -> tuple[float, float, float] | None:
        """(lon, lat, vmax_ms) interpolated linearly in time; ``None`` outside the track."""
        times = self.times
        if moment_s < times[0] or moment_s > times[-1]:
            return None
        index = bisect_right(times, moment_s)
        if index >= len(times):
            return self.lons[-1], self.lats[-1], self.vmax_ms[-1]
        a, b = index - 1, index
        w = (moment_s - times[a]) / (times[b] - times[a])
        return (
            self.lons[a] + w * (self.lons[b] - self.lons[a]),
            self.lats[a] + w * (self.lats[b] - self.lats[a]),
            self.vmax_ms[a] + w * (self.vmax_ms[b] - self.vmax_ms[a]),
        )


TrackPositions = tuple[tuple[int, float, float, float], ...]
"""``(epoch_s, lon, lat, vmax_ms)`` of a track at the steps of one time bucket."""


def bucket_start(at: int, config: TyphoonConfig = DEFAULT_TYPHOON) -> int:
    """The start of the ``step_s`` bucket holding ``at``: the forecast's first step."""
    return at - at % config.step_s


def track_positions(track: Track, begin: int, config: TyphoonConfig = DEFAULT_TYPHOON) -> TrackPositions:
    """The track at ``begin + k·step_s`` over the longest window (steps off the track left out)."""
    longest = max(c.within_s for c in config.criteria)
    out: list[tuple[int, float, float, float]] = []
    for moment in range(begin, begin + longest + 1, config.step_s):
        position = track.position_at(moment)
        if position is not None:
            out.append((moment, *position))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class ForecastImpact:
    """What one track forecasts at a station: the highest level, its onset and peak wind."""

    level: LevelOrNone
    onset_s: int | None = None
    """the first step meeting the level's criterion (may precede the report: see step 6)"""
    peak_mean_ms: float = 0.0
    """the highest forecast mean wind over the level's window"""


NO_IMPACT = ForecastImpact("none")


def forecast_impact(
    positions: TrackPositions,
    station_lon: float,
    station_lat: float,
    begin: int,
    config: TyphoonConfig = DEFAULT_TYPHOON,
) -> ForecastImpact:
    """Steps 5–6 of the module doc at one station, from ``track_positions(track, begin)``."""
    profile = config.profile
    winds = [
        (moment, profile.mean_ms(vmax, km_between(lon, lat, station_lon, station_lat)))
        for moment, lon, lat, vmax in positions
    ]
    gust_factor = profile.gust_factor
    for criterion in config.criteria:
        mean_ms = config.beaufort.lower_bound_ms(criterion.mean_force)
        gust_ms = config.beaufort.lower_bound_ms(criterion.gust_force)
        last = begin + criterion.within_s
        for moment, mean in winds:
            if moment > last:
                break
            if mean >= mean_ms or mean * gust_factor >= gust_ms:
                peak = max(m for t, m in winds if t <= last)
                return ForecastImpact(criterion.level, moment, peak)
    return NO_IMPACT


def strongest(impacts: Iterable[ForecastImpact]) -> ForecastImpact:
    """The highest level over several storms; the earliest onset among equals."""
    best = NO_IMPACT
    for impact in impacts:
        if rank(impact.level) > rank(best.level) or (
            impact.level == best.level
            and impact.onset_s is not None
            and (best.onset_s is None or impact.onset_s < best.onset_s)
        ):
            best = impact
    return best


class AdvisoryBook:
    """The advisories received so far, per storm in ``issued_at`` order (step 5).

    ``current(at)``: per storm, the newest advisory issued at or before ``at`` — what an
    observation at ``at`` is judged with. An advisory received again replaces the one with
    the same storm and issue time (a redelivery, or a correction). ``prune(now)`` keeps the
    book bounded: an advisory superseded, or whose track ended, more than
    ``advisory_keep_s`` before ``now`` is dropped (an observation that old is past any
    allowed lateness).
    """

    def __init__(self, config: TyphoonConfig = DEFAULT_TYPHOON) -> None:
        self.config = config
        self._issued: dict[str, list[int]] = {}
        self._tracks: dict[str, list[Track]] = {}
        self.version = 0
        """bumped on every change: lets callers cache what they derived from the book"""

    def __len__(self) -> int:
        return sum(len(tracks) for tracks in self._tracks.values())

    def add(self, advisory: StormAdvisory | Track) -> bool:
        """File an advisory; ``False`` when it changes nothing (an identical redelivery)."""
        track = advisory if isinstance(advisory, Track) else Track.of(advisory)
        issued = self._issued.setdefault(track.storm_id, [])
        tracks = self._tracks.setdefault(track.storm_id, [])
        index = bisect_right(issued, track.issued_s)
        if index and issued[index - 1] == track.issued_s:
            if tracks[index - 1] == track:
                return False
            tracks[index - 1] = track
        else:
            issued.insert(index, track.issued_s)
            tracks.insert(index, track)
        self.version += 1
        return True

    def current(self, at: int) -> list[Track]:
        """Per storm, the newest advisory issued at or before ``at``."""
        out: list[Track] = []
        for storm_id, issued in self._issued.items():
            index = bisect_right(issued, at)
            if index:
                out.append(self._tracks[storm_id][index - 1])
        return out

    def prune(self, now: int) -> None:
        horizon = now - self.config.advisory_keep_s
        for storm_id in list(self._issued):
            issued, tracks = self._issued[storm_id], self._tracks[storm_id]
            # superseded before the horizon: the next advisory was issued before it
            drop = bisect_right(issued, horizon) - 1
            if tracks and tracks[-1].ends_s < horizon:
                drop = len(tracks)
            if drop > 0:
                del issued[:drop], tracks[:drop]
                self.version += 1
            if not issued:
                del self._issued[storm_id], self._tracks[storm_id]


@dataclass(frozen=True, slots=True)
class TyphoonFinding:
    """The station's typhoon level from its (already folded) winds and the forecasts."""

    level: LevelOrNone
    mean_ms: float = 0.0
    gust_ms: float = 0.0
    observed: LevelOrNone = "none"
    forecast: ForecastImpact | None = None
    """set when the forecast gives the level (it is above the observed one): ``Likely``"""


def typhoon_level(
    state: Table,
    at: int,
    impacts: Sequence[ForecastImpact] | None,
    config: TyphoonConfig = DEFAULT_TYPHOON,
    observed_winds: tuple[LevelOrNone, float, float] | None = None,
) -> TyphoonFinding:
    """Step 7 on a wind state the report was folded into; ``impacts=None``: no advisory.

    ``observed_winds``: the observed (level, mean, gust) if already computed (``wind_levels``).
    """
    if impacts is None:
        return TyphoonFinding("none")
    if observed_winds is None:
        observed_winds = _persistent_level(state, at, config.criteria, config.persistence, config.beaufort)
    observed, mean, gust = observed_winds
    best = strongest(impacts)
    if rank(best.level) > rank(observed):
        return TyphoonFinding(best.level, mean, gust, observed, best)
    return TyphoonFinding(observed, mean, gust, observed)


def typhoon_forecast_evidence(
    station_id: str, at: int, impact: ForecastImpact, config: TyphoonConfig = DEFAULT_TYPHOON
) -> tuple[int, float, float, int]:
    """``(onset_s, value, threshold, window_s)`` of the forecast evidence (onset ≥ report)."""
    assert impact.onset_s is not None
    onset = max(impact.onset_s, at)
    mean_force = next(c.mean_force for c in config.criteria if c.level == impact.level)
    return onset, round(impact.peak_mean_ms, 1), config.beaufort.lower_bound_ms(mean_force), onset - at


def _as_tracks(forecast: StormAdvisory | Track | Sequence[StormAdvisory | Track] | None) -> list[Track]:
    if forecast is None:
        return []
    items = [forecast] if isinstance(forecast, StormAdvisory | Track) else list(forecast)
    return [f if isinstance(f, Track) else Track.of(f) for f in items]


def assess_typhoon(
    obs: RainObservation,
    state: Table,
    township_code: str,
    station_lon: float,
    station_lat: float,
    forecast: StormAdvisory | Track | Sequence[StormAdvisory | Track] | None,
    config: TyphoonConfig = DEFAULT_TYPHOON,
) -> HazardAssessment | None:
    """Typhoon signal at the station; ``none`` without a current advisory.

    ``forecast``: the current advisory of each storm (``AdvisoryBook.current``); one issued
    after the report is not used. ``None``: the report carries no wind or is too late.
    """
    at = epoch_s(obs.observed_at)
    if not _fold(obs, state, config.persistence):
        return None
    tracks = [t for t in _as_tracks(forecast) if t.issued_s <= at]
    impacts: list[ForecastImpact] | None = None
    if tracks:
        begin = bucket_start(at, config)
        impacts = [
            forecast_impact(track_positions(t, begin, config), station_lon, station_lat, begin, config) for t in tracks
        ]
    found = typhoon_level(state, at, impacts, config)
    station = obs.station_id
    evidence: tuple[Evidence, ...] = ()
    if found.observed != "none":
        evidence = _wind_evidence(station, found.mean_ms, found.gust_ms, config.beaufort)
    onset: datetime | None = None
    if found.forecast is not None:
        onset_s, value, threshold, window_s = typhoon_forecast_evidence(station, at, found.forecast, config)
        onset = from_epoch_s(onset_s)
        evidence = (
            *evidence,
            Evidence(
                station_id=station,
                metric="forecast_wind_mean_ms",
                value=value,
                threshold=threshold,
                window_s=window_s,
                basis="forecast",
            ),
        )
    return HazardAssessment(
        hazard="typhoon",
        township_code=township_code,
        source_id=station,
        assessed_at=obs.observed_at,
        level=found.level,
        rule_id=TYPHOON_RULE_ID,
        onset_at=onset,
        certainty="Observed" if onset is None else "Likely",
        evidence=evidence,
    )


def assess_wind(
    obs: RainObservation,
    state: Table,
    township_code: str,
    station_lon: float,
    station_lat: float,
    forecast: StormAdvisory | Track | Sequence[StormAdvisory | Track] | None,
    config: WindConfig = DEFAULT_WIND,
) -> list[HazardAssessment]:
    """Gale and typhoon for one station report (none if it carries no wind or is too late)."""
    typhoon = assess_typhoon(obs, state, township_code, station_lon, station_lat, forecast, config.typhoon)
    gale = assess_gale(obs, state, township_code, config.gale)
    out = [a for a in (gale, typhoon) if a is not None]
    if gale is not None and typhoon is not None and config.gale_excludes_typhoon and typhoon.level != "none":
        out[0] = gale.model_copy(update={"level": "none", "evidence": (), "rule_id": GALE_EXCLUDED_RULE_ID})
    return out
