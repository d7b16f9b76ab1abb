"""Detector configuration from the station registry ("一坡一阈值": every point its own record).

What each registry record becomes:

- ``GeoHazardInfo`` → ``GeoHazardPointThresholds``: effective-rain, velocity and
  tangent-angle colours, the velocity gate, ``K`` and the window days as recorded; the
  1/3/6/24-h rain colours as ``rain_windows``. The registry has no constant-velocity rate
  ``v_c`` per point, so the detector's default (0.5 mm/d [A]) is used.
- ``WaterLevelInfo`` of a river or canal gauge → ``river_gauge(warning, guaranteed,
  historical max)``; of a tide station → ``tide_gauge``: yellow / orange / red at the
  warning, guaranteed and historical levels (the ladder the ground truth uses), blue
  "near warning" below it by ``near_warning_margin_m`` (0.3 m, less for a gauge whose
  levels lie close together). A gauge on a tidal reach (``TIDAL_REACH_MAX_WARNING_M``)
  is projected like a tide gauge and has no rate-of-rise rule (the tide rises ~0.3–1 m/h).
- Townships → ``TownshipPoints`` for the radar nowcast.

Expected sources (``expected_sources``), per lifecycle key ``hazard:township``: which
sources the lifecycle waits for before deciding at an event time (``lifecycle.fold``)::

    rainstorm           rain gauges of the township + radars covering it (radar nowcast)
    short_heavy_rain    rain gauges of the township + radars covering it (radar nowcast)
    convection          radars covering the township
    geohazard           monitoring points of the township
    flood / tide        river / tide gauges assessed for the township
    gale, typhoon       none (only stations that report wind; learned as they report)

A radar "covers" a township when the township lies inside the square ``range_km``
around it, less ``RADAR_COVER_MARGIN_KM``: a scan is the grid window of that square, and
the nowcast assesses every township inside the scan. The margin keeps a township on the
window's edge out of the expected set rather than in it: a source expected but never
heard from holds the township's decisions back by the allowed lateness, a source not
expected but reporting is simply waited for once it has been heard from.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from schemas.registry import GeoHazardInfo, LevelThresholds, Station, WaterLevelInfo
from services.rules.detectors.common import KM_PER_DEG_LAT, KM_PER_DEG_LON_EQUATOR
from services.rules.detectors.convection import TownshipPoints
from services.rules.detectors.field import GaugeSites
from services.rules.detectors.flood import WaterGaugeConfig, river_gauge, tide_gauge
from services.rules.detectors.geohazard import GeoHazardPointThresholds, LevelValues, RainWindow

if TYPE_CHECKING:
    from services.common.geo.registry import GeoRegistry

NEAR_WARNING_MARGIN_M = 0.3
"""[A] blue = "near the warning level / tide": 0.3 m below it (§3.2), see ``near_warning_margin_m``."""
NEAR_WARNING_SHARE = 0.2

TIDAL_REACH_MAX_WARNING_M = 6.0
"""[A] A river or canal gauge whose warning level is at most this (m, 1985 datum) is on a
tidal reach: the lower Ou, Feiyun and Ao (4.5 m) and the Wen-Rui plain canal (3.12 m);
the upstream gauges' warning levels are 27–70 m. The registry has no tidal flag."""

RADAR_COVER_MARGIN_KM = 2.0

ExpectedSources = Callable[[str], frozenset[str]]


@dataclass(frozen=True, slots=True)
class PointConfig:
    """A geo-hazard monitoring point as the rules see it."""

    township_code: str
    thresholds: GeoHazardPointThresholds


@dataclass(frozen=True, slots=True)
class GaugeConfig:
    """A water-level or tide gauge: its levels and the townships its assessments are for."""

    township_codes: tuple[str, ...]
    gauge: WaterGaugeConfig


def _levels(thresholds: LevelThresholds) -> LevelValues:
    return LevelValues(blue=thresholds.blue, yellow=thresholds.yellow, orange=thresholds.orange, red=thresholds.red)


def point_thresholds(info: GeoHazardInfo) -> GeoHazardPointThresholds:
    """One point's thresholds from its registry record."""
    return GeoHazardPointThresholds(
        effective_rain_mm=_levels(info.effective_rain_mm),
        velocity_mm_per_day=_levels(info.velocity_mm_per_day),
        tangent_angle_deg=_levels(info.tangent_angle_deg),
        min_velocity_mm_per_day=info.min_velocity_mm_per_day,
        decay_factor=info.decay_factor,
        antecedent_days=info.effective_rain_window_days,
        rain_windows=(
            RainWindow(window_s=3600, mm=_levels(info.rain_1h_mm)),
            RainWindow(window_s=3 * 3600, mm=_levels(info.rain_3h_mm)),
            RainWindow(window_s=6 * 3600, mm=_levels(info.rain_6h_mm)),
            RainWindow(window_s=24 * 3600, mm=_levels(info.rain_24h_mm)),
        ),
    )


def near_warning_margin_m(water: WaterLevelInfo) -> float:
    """How far below the warning level "near warning" (blue) starts, for this gauge.

    ``NEAR_WARNING_MARGIN_M`` (0.3 m, §3.2 [A]), but at most ``NEAR_WARNING_SHARE`` of the
    gauge's own warning → guaranteed spread [A]: the registry's rivers (1 m apart) get
    0.2 m, the tide stations 0.12 m, the plain-network canal (温瑞塘河: 3.12 / 3.62 m,
    normal level 2.92 m) 0.1 m; a fixed 0.3 m would keep the canal "near warning" in dry
    weather.
    """
    return min(NEAR_WARNING_MARGIN_M, NEAR_WARNING_SHARE * (water.guaranteed_level_m - water.warning_level_m))


def gauge_levels(water: WaterLevelInfo) -> WaterGaugeConfig:
    """A gauge's detector configuration from its registry record (river or tide)."""
    margin = near_warning_margin_m(water)
    if water.river == "tide":
        return tide_gauge(
            water.warning_level_m - margin,
            water.warning_level_m,
            water.guaranteed_level_m,
            water.historical_max_m,
        )
    river = river_gauge(water.warning_level_m, water.guaranteed_level_m, water.historical_max_m, margin)
    if water.warning_level_m > TIDAL_REACH_MAX_WARNING_M:
        return river
    # a tidal reach: the tide alone rises faster than the rate-of-rise rule allows, and a line
    # through a rising tide overshoots; judged like a tide gauge (M2 fit, 1 h ahead, no rate)
    tide = tide_gauge(0.0, 1.0, 2.0, 3.0)
    return WaterGaugeConfig(
        hazard="flood",
        levels=river.levels,
        rate_of_rise=None,
        projection=tide.projection,
        projection_fit_window_s=tide.projection_fit_window_s,
        projection_horizon_s=tide.projection_horizon_s,
    )


def geohazard_points(stations: Iterable[Station]) -> dict[str, PointConfig]:
    return {
        s.station_id: PointConfig(s.township_code, point_thresholds(s.geohazard))
        for s in stations
        if s.geohazard is not None
    }


def water_gauges(
    stations: Iterable[Station], extra_townships: Mapping[str, tuple[str, ...]] | None = None
) -> dict[str, GaugeConfig]:
    """Gauges by id; each assesses its own township plus ``extra_townships[station_id]``.

    The registry has no river reaches, so by default a gauge speaks for its own township
    only; a deployment that knows which townships a gauge stands for lists them here.
    """
    extra = extra_townships or {}
    out: dict[str, GaugeConfig] = {}
    for s in stations:
        if s.water is None:
            continue
        towns = (s.township_code, *(t for t in extra.get(s.station_id, ()) if t != s.township_code))
        out[s.station_id] = GaugeConfig(towns, gauge_levels(s.water))
    return out


def township_points(registry: GeoRegistry) -> TownshipPoints:
    return TownshipPoints.from_rows([(t.code, t.lon, t.lat) for t in registry.townships])


def gauge_sites(rain_stations: Iterable[Station]) -> GaugeSites:
    """The rain gauges' positions per township, for the radars' vote on them (``detectors.field``)."""
    return GaugeSites.from_rows([(s.township_code, s.lon, s.lat) for s in rain_stations])


def radars_covering(registry: GeoRegistry, margin_km: float = RADAR_COVER_MARGIN_KM) -> dict[str, frozenset[str]]:
    """Township code → the radars whose scan window surely contains it (see module doc)."""
    towns = township_points(registry)
    covering: dict[str, set[str]] = defaultdict(set)
    for radar in registry.stations_of("radar"):
        if radar.radar is None:
            continue
        half = radar.radar.range_km - margin_km
        dx = np.abs(towns.lon - radar.lon) * KM_PER_DEG_LON_EQUATOR * math.cos(math.radians(radar.lat))
        dy = np.abs(towns.lat - radar.lat) * KM_PER_DEG_LAT
        for i in np.flatnonzero((dx <= half) & (dy <= half)):
            covering[towns.codes[int(i)]].add(radar.station_id)
    return {code: frozenset(ids) for code, ids in covering.items()}


def stations_by_township(stations: Iterable[Station]) -> dict[str, frozenset[str]]:
    grouped: dict[str, set[str]] = defaultdict(set)
    for s in stations:
        grouped[s.township_code].add(s.station_id)
    return {code: frozenset(ids) for code, ids in grouped.items()}


def gauges_by_township(gauges: Mapping[str, GaugeConfig], hazard: str) -> dict[str, frozenset[str]]:
    grouped: dict[str, set[str]] = defaultdict(set)
    for station_id, config in gauges.items():
        if config.gauge.hazard == hazard:
            for town in config.township_codes:
                grouped[town].add(station_id)
    return {code: frozenset(ids) for code, ids in grouped.items()}


def expected_sources(
    rain_gauges: Mapping[str, frozenset[str]],
    radars: Mapping[str, frozenset[str]] | None = None,
    points: Mapping[str, frozenset[str]] | None = None,
    gauges: Mapping[str, GaugeConfig] | None = None,
) -> ExpectedSources:
    """The lifecycle's ``expected_sources`` for every hazard key (table in the module doc)."""
    empty: frozenset[str] = frozenset()
    radar_map = radars or {}
    gauges_and_radars = {
        town: rain_gauges.get(town, empty) | radar_map.get(town, empty) for town in {*rain_gauges, *radar_map}
    }
    by_hazard: dict[str, Mapping[str, frozenset[str]]] = {
        "rainstorm": gauges_and_radars,
        "short_heavy_rain": gauges_and_radars,
        "convection": radar_map,
        "geohazard": points or {},
        "flood": gauges_by_township(gauges or {}, "flood"),
        "tide": gauges_by_township(gauges or {}, "tide"),
    }

    def expected(key: str) -> frozenset[str]:
        hazard, _, township = key.partition(":")
        table = by_hazard.get(hazard)
        return empty if table is None else table.get(township, empty)

    return expected
