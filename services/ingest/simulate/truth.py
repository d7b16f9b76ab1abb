"""Ground truth: what really happened in a simulated world, from the *true* fields.

The world (``world.iter_world``) feeds a ``GroundTruth`` as it runs; sensors, noise and
faults never touch it. Per township the true rain rate is sampled (bilinearly) at the
township's location every minute; per gauge the true level; per slope the failure time.

Hazards, levels and thresholds (``TruthEvent.level`` is the CMA colour)::

    hazard             metric (per township unless noted)      blue    yellow   orange   red
    short_heavy_rain   rolling 1-h rain (mm)            §1.6   ≥ 20    ≥ 30     ≥ 50     ≥ 80
    rainstorm          rolling 12/6/3/3-h rain (mm)     §1.2   12h≥50  6h≥50    3h≥50    3h≥100
    convection         reflectivity at the township     §4.1   —       ≥ 45     ≥ 50     ≥ 55   dBZ
    typhoon | gale     2-min mean wind, Beaufort force  §1.7   ≥ F6    ≥ F8     ≥ F10    ≥ F12
                       or its gust (§1.3 typhoon)              ≥ F8    ≥ F10    ≥ F12    ≥ F14
                       or its gust (§1.4 gale)                 ≥ F7    ≥ F9     ≥ F11    ≥ F13
    flood              river gauge level (station)      §3.2   —       warning  guaranteed historical max
    tide               tide station level (station)     §3.2   —       warning  guaranteed historical max
    geohazard          slope failure (station)          §2.4   —       —        —        failure

The SHR colours follow the rules' design choice (``short_heavy_rain`` detector); strong
wind is ``typhoon`` in a typhoon scenario and ``gale`` otherwise. The signals' criteria are
"mean *or* gust" (§1.3, §1.4). The world's gust is the mean wind times a gust factor drawn
per report from ``gust_factor`` (g₀, g₁), so the truth takes the township's gust as the mean
times the factor's expectation (g₀ + g₁) / 2: a level is reached when the mean wind reaches
``min(mean threshold, gust threshold / g)`` (gale blue with g = 1.5: 13.9 / 1.5 = 9.27 m/s).
Blue for convection is not truth: 40 dBZ is moderate rain, not convection.

Episodes, per (hazard, level, township or station)::

    value ─────────╱▔▔▔▔▔╲___╱▔▔▔╲__________      threshold ─ ─ ─
                   start        │     end          gap < merge_gap_s: one episode
                                └ gap

1. ``start`` is the first minute the metric reaches the level's threshold; ``end`` the last
   minute it still does. Rolling windows start empty at the scenario start.
2. Dips shorter than ``truth.merge_gap_s`` (600 s) do not split an episode.
3. Levels are nested: a township that reaches orange also has blue and yellow episodes.
   ``scoring_episodes()`` folds them into one episode per contiguous lowest-level spell
   carrying the highest level reached — the shape ``services.rules.verification`` scores.
4. Episodes still open when the run ends close at the last minute they held.

``to_json`` writes a deterministic file (sorted keys and events, rounded floats): the same
scenario and seed give byte-identical JSON.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from schemas.common import LEVEL_RANK, Level, UtcDatetime

FloatArray = npt.NDArray[np.float64]
TRUTH_FORMAT: Final = "earlywarn-truth/1"

SHR_THRESHOLDS_MM: Final[tuple[tuple[Level, float], ...]] = (
    ("blue", 20.0), ("yellow", 30.0), ("orange", 50.0), ("red", 80.0),
)  # fmt: skip
RAINSTORM_RULES: Final[tuple[tuple[Level, int, float], ...]] = (
    ("blue", 12 * 60, 50.0), ("yellow", 6 * 60, 50.0), ("orange", 3 * 60, 50.0), ("red", 3 * 60, 100.0),
)  # fmt: skip
CONVECTION_DBZ: Final[tuple[tuple[Level, float], ...]] = (("yellow", 45.0), ("orange", 50.0), ("red", 55.0))
BEAUFORT_MS: Final[tuple[tuple[Level, float], ...]] = (
    ("blue", 10.8), ("yellow", 17.2), ("orange", 24.5), ("red", 32.7),
)  # fmt: skip
"""mean wind: the lower bound of force 6 / 8 / 10 / 12 (§1.7)"""
GUST_MS: Final[dict[str, tuple[tuple[Level, float], ...]]] = {
    "typhoon": (("blue", 17.2), ("yellow", 24.5), ("orange", 32.7), ("red", 41.5)),  # F8/10/12/14 (§1.3)
    "gale": (("blue", 13.9), ("yellow", 20.8), ("orange", 28.5), ("red", 37.0)),  # F7/9/11/13 (§1.4)
}
"""gust: the lower bound of each signal's gust force (§1.7 bands)"""


def wind_thresholds_ms(wind_hazard: str, gust_factor: float | None) -> tuple[tuple[Level, float], ...]:
    """The mean wind at which each level is reached, by its mean or its gust criterion."""
    if gust_factor is None:
        return BEAUFORT_MS
    gusts = dict(GUST_MS[wind_hazard])
    return tuple((level, round(min(ms, gusts[level] / gust_factor), 2)) for level, ms in BEAUFORT_MS)


LONGEST_WINDOW_MIN: Final = 24 * 60


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _utc(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, tz=UTC)


class TruthEvent(BaseModel):
    """One episode of a hazard at or above a level, at a township and/or a station."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    hazard: str
    level: Level
    township_code: str | None
    station_id: str | None
    start: UtcDatetime
    end: UtcDatetime
    metric: str = ""
    peak: float | None = None

    def sort_key(self) -> tuple[str, str, int, str, str]:
        return (_iso(self.start), self.hazard, LEVEL_RANK[self.level], self.township_code or "", self.station_id or "")


@dataclass(frozen=True, slots=True)
class GaugeSpec:
    """A water gauge as truth sees it: its levels and which hazard a crossing is."""

    station_id: str
    township_code: str | None
    hazard: str  # "flood" (river, canal) or "tide"
    warning_m: float
    guaranteed_m: float
    historical_max_m: float


@dataclass(frozen=True, slots=True)
class TruthEpisode:
    """Attribute-compatible with ``services.rules.verification.TruthInterval``."""

    hazard: str
    township_code: str
    level: str
    onset: datetime
    end: datetime


class TownshipSummary(BaseModel):
    model_config = ConfigDict(frozen=True)

    rain_total_mm: float
    rain_max_1h_mm: float
    rain_max_3h_mm: float
    rain_max_24h_mm: float
    dbz_max: float | None
    wind_max_ms: float


class GaugeSummary(BaseModel):
    model_config = ConfigDict(frozen=True)

    hazard: str
    level_min_m: float
    level_max_m: float
    warning_level_m: float
    guaranteed_level_m: float


class StationFault(BaseModel):
    """A fault that lasts (stuck spell, skewed clock), for judging a sensor-health detector."""

    model_config = ConfigDict(frozen=True)

    kind: str
    station_id: str
    start: UtcDatetime
    end: UtcDatetime
    detail: float = Field(default=0.0, description="skew seconds for clock_skew")


# --------------------------------------------------------------------------- episode tracking


class _Tracker:
    """Episodes of ``value >= threshold`` for many entities at once (vectorised per minute).

    ``threshold`` is one number, or one per entity (gauges have their own levels).
    """

    def __init__(
        self,
        hazard: str,
        level: Level,
        metric: str,
        threshold: float | FloatArray,
        entities: Sequence[tuple[str | None, str | None]],
        merge_gap_s: int,
        sink: list[TruthEvent],
    ) -> None:
        self.hazard, self.level, self.metric, self.threshold = hazard, level, metric, threshold
        self.index: npt.NDArray[np.intp] | None = None  # which columns of the observed vector
        self.entities = list(entities)
        self.merge_gap_s = merge_gap_s
        n = len(entities)
        self.active = np.zeros(n, dtype=bool)
        self.start = np.zeros(n, dtype=np.int64)
        self.last = np.zeros(n, dtype=np.int64)
        self.peak = np.zeros(n)
        self.sink = sink

    def update(self, t_s: int, values: FloatArray) -> None:
        cond = values >= self.threshold
        if not cond.any() and not self.active.any():
            return
        new = cond & ~self.active
        self.start[new] = t_s
        self.peak[new] = values[new]
        self.active |= new
        self.last[cond] = t_s
        both = cond & ~new
        self.peak[both] = np.maximum(self.peak[both], values[both])
        stale = self.active & ~cond & (t_s - self.last > self.merge_gap_s)
        for i in np.flatnonzero(stale):
            self._emit(int(i))
        self.active[stale] = False

    def _emit(self, i: int) -> None:
        town, station = self.entities[i]
        self.sink.append(
            TruthEvent(
                hazard=self.hazard,
                level=self.level,
                township_code=town,
                station_id=station,
                start=_utc(int(self.start[i])),
                end=_utc(int(self.last[i])),
                metric=self.metric,
                peak=round(float(self.peak[i]), 3),
            )
        )

    def open_events(self) -> list[TruthEvent]:
        """Episodes still running, closed at the last minute they held (without closing them)."""
        out: list[TruthEvent] = []
        sink, self.sink = self.sink, out
        try:
            for i in np.flatnonzero(self.active):
                self._emit(int(i))
        finally:
            self.sink = sink
        return out


class _Rolling:
    """Rolling sums over the last W minutes for many points (ring of cumulative totals)."""

    def __init__(self, n: int, longest_min: int) -> None:
        self.size = longest_min + 1
        self.ring = np.zeros((self.size, n))
        self.total = np.zeros(n)
        self.minute = 0

    def add(self, minute_values: FloatArray) -> None:
        self.total = self.total + minute_values
        self.minute += 1
        self.ring[self.minute % self.size] = self.total

    def last(self, window_min: int) -> FloatArray:
        if self.minute < window_min:
            return self.total
        result: FloatArray = self.total - self.ring[(self.minute - window_min) % self.size]
        return result


# --------------------------------------------------------------------------- ground truth


class GroundTruth:
    """Filled by ``iter_world``; read (or exported) during or after the run."""

    def __init__(self) -> None:
        self.scenario: str | None = None
        self.seed: int | None = None
        self.start: datetime | None = None
        self.end: datetime | None = None
        self.last_time: datetime | None = None
        self._closed: list[TruthEvent] = []
        self._trackers: list[_Tracker] = []
        self._feeds: list[str] = []  # which metric each township tracker reads
        self._town_codes: list[str] = []
        self._rolling: _Rolling | None = None
        self._town_max: dict[str, FloatArray] = {}
        self._gauges: dict[str, dict[str, Any]] = {}
        self._gauge_trackers: list[_Tracker] = []
        self._gauge_ids: list[str] = []
        self._gauge_min: FloatArray = np.zeros(0)
        self._gauge_max: FloatArray = np.zeros(0)
        self.failures: dict[str, datetime] = {}
        self.fault_counts: dict[str, int] = {}
        self.station_faults: list[StationFault] = []
        self._merge_gap_s = 600
        self._wind_hazard = "gale"

    # ---------------------------------------------------------------- recording (the world calls these)

    def begin(
        self,
        *,
        scenario: str,
        seed: int,
        start: datetime,
        end: datetime,
        townships: Sequence[str],
        wind_hazard: str,
        merge_gap_s: int,
        gust_factor: float | None = None,
    ) -> None:
        """``gust_factor``: the world's mean gust factor (the truth's gust = mean × it); ``None``
        scores the mean wind alone."""
        self.__init__()  # type: ignore[misc]  # a GroundTruth is reusable: begin() starts afresh
        self.scenario, self.seed, self.start, self.end = scenario, seed, start, end
        self._merge_gap_s = merge_gap_s
        self._wind_hazard = wind_hazard
        self._town_codes = list(townships)
        entities: list[tuple[str | None, str | None]] = [(code, None) for code in townships]
        n = len(entities)
        self._rolling = _Rolling(n, LONGEST_WINDOW_MIN)
        self._town_max = {key: np.zeros(n) for key in ("1h", "3h", "24h", "wind")}
        self._town_max["dbz"] = np.full(n, -np.inf)

        def track(hazard: str, level: Level, metric: str, threshold: float, feed: str) -> None:
            tracker = _Tracker(hazard, level, metric, threshold, entities, merge_gap_s, self._closed)
            self._trackers.append(tracker)
            self._feeds.append(feed)

        for level, mm in SHR_THRESHOLDS_MM:
            track("short_heavy_rain", level, "rain_1h_mm", mm, "60")
        for level, window_min, mm in RAINSTORM_RULES:
            track("rainstorm", level, f"rain_{window_min // 60}h_mm", mm, str(window_min))
        for level, dbz in CONVECTION_DBZ:
            track("convection", level, "dbz", dbz, "dbz")
        for level, ms in wind_thresholds_ms(wind_hazard, gust_factor):
            track(wind_hazard, level, "wind_mean_ms", ms, "wind")

    def add_gauges(self, gauges: Sequence[GaugeSpec]) -> None:
        """Register the water gauges whose true levels ``observe_gauges`` will receive, in order."""
        self._gauge_ids = [g.station_id for g in gauges]
        n = len(gauges)
        self._gauge_min = np.full(n, np.inf)
        self._gauge_max = np.full(n, -np.inf)
        for g in gauges:
            self._gauges[g.station_id] = {"hazard": g.hazard, "warning": g.warning_m, "guaranteed": g.guaranteed_m}
        for hazard in sorted({g.hazard for g in gauges}):
            picked = [i for i, g in enumerate(gauges) if g.hazard == hazard]
            entities: list[tuple[str | None, str | None]] = [
                (gauges[i].township_code, gauges[i].station_id) for i in picked
            ]
            levels: tuple[tuple[Level, list[float]], ...] = (
                ("yellow", [gauges[i].warning_m for i in picked]),
                ("orange", [gauges[i].guaranteed_m for i in picked]),
                ("red", [gauges[i].historical_max_m for i in picked]),
            )
            for level, limits in levels:
                tracker = _Tracker(
                    hazard, level, "level_m", np.array(limits), entities, self._merge_gap_s, self._closed
                )
                tracker.index = np.array(picked, dtype=np.intp)
                self._gauge_trackers.append(tracker)

    def observe_townships(self, t: datetime, rain_minute_mm: FloatArray, dbz: FloatArray, wind_ms: FloatArray) -> None:
        """One minute ending at ``t``: rain in that minute, reflectivity and mean wind at ``t``."""
        assert self._rolling is not None, "begin() first"
        self.last_time = t
        t_s = int(t.timestamp())
        roll = self._rolling
        roll.add(rain_minute_mm)
        feeds = {str(w): roll.last(w) for w in (60, 180, 360, 720)}
        feeds["dbz"] = np.nan_to_num(dbz, nan=-np.inf)
        feeds["wind"] = wind_ms
        maxima = self._town_max
        np.maximum(maxima["1h"], feeds["60"], out=maxima["1h"])
        np.maximum(maxima["3h"], feeds["180"], out=maxima["3h"])
        np.maximum(maxima["24h"], roll.last(LONGEST_WINDOW_MIN), out=maxima["24h"])
        np.maximum(maxima["wind"], wind_ms, out=maxima["wind"])
        np.fmax(maxima["dbz"], dbz, out=maxima["dbz"])
        for tracker, feed in zip(self._trackers, self._feeds, strict=True):
            tracker.update(t_s, feeds[feed])

    def observe_gauges(self, t: datetime, levels_m: FloatArray) -> None:
        """True levels at ``t``, in the order given to ``add_gauges``."""
        t_s = int(t.timestamp())
        np.minimum(self._gauge_min, levels_m, out=self._gauge_min)
        np.maximum(self._gauge_max, levels_m, out=self._gauge_max)
        for tracker in self._gauge_trackers:
            assert tracker.index is not None
            tracker.update(t_s, levels_m[tracker.index])

    def record_failure(self, station_id: str, township_code: str | None, when: datetime) -> None:
        self.failures[station_id] = when
        self._closed.append(
            TruthEvent(
                hazard="geohazard",
                level="red",
                township_code=township_code,
                station_id=station_id,
                start=when,
                end=when,
                metric="slope_failure",
            )
        )

    def count_fault(self, kind: str, n: int = 1) -> None:
        self.fault_counts[kind] = self.fault_counts.get(kind, 0) + n

    def record_station_fault(
        self, kind: str, station_id: str, start: datetime, end: datetime, detail: float = 0.0
    ) -> None:
        self.station_faults.append(StationFault(kind=kind, station_id=station_id, start=start, end=end, detail=detail))

    def finish(self) -> None:
        """Close every open episode (called by the world when its iterator is exhausted)."""
        for tracker in (*self._trackers, *self._gauge_trackers):
            self._closed.extend(tracker.open_events())
            tracker.active[:] = False

    # ---------------------------------------------------------------- reading

    @property
    def events(self) -> list[TruthEvent]:
        """Every episode so far, sorted; running episodes are shown closed at their last minute."""
        running = [e for tr in (*self._trackers, *self._gauge_trackers) for e in tr.open_events()]
        return sorted([*self._closed, *running], key=TruthEvent.sort_key)

    def events_for(self, hazard: str | None = None, level: Level | None = None) -> list[TruthEvent]:
        return [
            e for e in self.events if (hazard is None or e.hazard == hazard) and (level is None or e.level == level)
        ]

    @property
    def townships(self) -> dict[str, TownshipSummary]:
        if self._rolling is None:
            return {}
        maxima = self._town_max
        out: dict[str, TownshipSummary] = {}
        for i, code in enumerate(self._town_codes):
            dbz = float(maxima["dbz"][i])
            out[code] = TownshipSummary(
                rain_total_mm=round(float(self._rolling.total[i]), 2),
                rain_max_1h_mm=round(float(maxima["1h"][i]), 2),
                rain_max_3h_mm=round(float(maxima["3h"][i]), 2),
                rain_max_24h_mm=round(float(maxima["24h"][i]), 2),
                dbz_max=round(dbz, 1) if np.isfinite(dbz) else None,
                wind_max_ms=round(float(maxima["wind"][i]), 2),
            )
        return out

    @property
    def gauges(self) -> dict[str, GaugeSummary]:
        out: dict[str, GaugeSummary] = {}
        for i, station_id in enumerate(self._gauge_ids):
            info = self._gauges[station_id]
            lo, hi = float(self._gauge_min[i]), float(self._gauge_max[i])
            if not (np.isfinite(lo) and np.isfinite(hi)):
                continue
            out[station_id] = GaugeSummary(
                hazard=info["hazard"],
                level_min_m=round(lo, 3),
                level_max_m=round(hi, 3),
                warning_level_m=info["warning"],
                guaranteed_level_m=info["guaranteed"],
            )
        return out

    def scoring_episodes(self) -> list[TruthEpisode]:
        """One episode per contiguous spell at the lowest level, labelled with the highest level reached.

        Township events only (the verifier scores townships). Nested levels are folded so
        that an orange spell is one event, not three (blue, yellow, orange).
        """
        by_key: dict[tuple[str, str], list[TruthEvent]] = {}
        for event in self.events:
            if event.township_code is None:
                continue
            by_key.setdefault((event.hazard, event.township_code), []).append(event)
        out: list[TruthEpisode] = []
        for (hazard, town), events in sorted(by_key.items()):
            events.sort(key=lambda e: (e.start, -LEVEL_RANK[e.level]))
            spells: list[list[Any]] = []  # [start, end, rank]
            for event in events:
                rank = LEVEL_RANK[event.level]
                for spell in spells:
                    if event.start <= spell[1] and event.end >= spell[0]:
                        spell[0] = min(spell[0], event.start)
                        spell[1] = max(spell[1], event.end)
                        spell[2] = max(spell[2], rank)
                        break
                else:
                    spells.append([event.start, event.end, rank])
            for start, end, rank in spells:
                level = next(name for name, r in LEVEL_RANK.items() if r == rank)
                out.append(TruthEpisode(hazard=hazard, township_code=town, level=level, onset=start, end=end))
        return sorted(out, key=lambda e: (e.onset, e.hazard, e.township_code))

    # ---------------------------------------------------------------- export

    def to_dict(self) -> dict[str, Any]:
        def event_dict(e: TruthEvent) -> dict[str, Any]:
            return {
                "hazard": e.hazard,
                "level": e.level,
                "township_code": e.township_code,
                "station_id": e.station_id,
                "start": _iso(e.start),
                "end": _iso(e.end),
                "metric": e.metric,
                "peak": e.peak,
            }

        return {
            "format": TRUTH_FORMAT,
            "scenario": self.scenario,
            "seed": self.seed,
            "start": _iso(self.start) if self.start else None,
            "end": _iso(self.end) if self.end else None,
            "events": [event_dict(e) for e in self.events],
            "townships": {code: s.model_dump() for code, s in sorted(self.townships.items())},
            "gauges": {sid: g.model_dump() for sid, g in sorted(self.gauges.items())},
            "geohazard_failures": {sid: _iso(when) for sid, when in sorted(self.failures.items())},
            "fault_counts": dict(sorted(self.fault_counts.items())),
            "station_faults": [
                {
                    "kind": f.kind,
                    "station_id": f.station_id,
                    "start": _iso(f.start),
                    "end": _iso(f.end),
                    "detail": f.detail,
                }
                for f in sorted(self.station_faults, key=lambda f: (_iso(f.start), f.kind, f.station_id))
            ],
        }

    def to_json_text(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, indent=1, ensure_ascii=False) + "\n"

    def to_json(self, path: str | os.PathLike[str]) -> Path:
        out = Path(path)
        out.write_text(self.to_json_text(), encoding="utf-8")
        return out

    @staticmethod
    def load_events(path: str | os.PathLike[str]) -> list[TruthEvent]:
        """Read back the events of a file written by ``to_json``."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if data.get("format") != TRUTH_FORMAT:
            raise ValueError(f"{path}: not an {TRUTH_FORMAT} file (format={data.get('format')!r})")
        return [TruthEvent.model_validate(e) for e in data["events"]]


def count_by(events: Iterable[TruthEvent], *, hazard: str) -> dict[str, int]:
    """Number of events of a hazard per level (a quick summary for CLIs and reports)."""
    out: dict[str, int] = {}
    for event in events:
        if event.hazard == hazard:
            out[event.level] = out.get(event.level, 0) + 1
    return out
