"""Water levels: rivers and canals (linear reservoir + tide), tide stations (M2 + surge) [A].

Tide (§3.5: semidiurnal, M2 period 12.42 h)::

    η(t) = mean_level_m + A · cos(ω (t − 2000-01-01T00Z) − φ),    ω = 2π / 12.4206 h

``high_water_at`` sets φ so that a high water falls on that instant.

Surge at a coastal point (lagged by ``response_time_h``, first-order)::

    forcing = inverse_barometer · (p_ambient − p) + wind_setup · u_on · |u_on| · (1 or 0.3)
    u_on    = open-water wind component blowing towards the shore (the coast faces
              ``coast_normal_deg``); offshore wind (u_on < 0) sets the water down with
              only 0.3 of the onshore coefficient

River and canal gauges: a linear reservoir per gauge fed by its basin's mean rain::

    basin   = model-grid cells within ``basin_radius_km`` of the river line upstream of the
              gauge (``RIVER_LINES`` of the synthetic terrain; the Ou includes its tributary
              the Nanxi below the confluence), or around the gauge if it has no line
    dS/dt   = c · P_basin − S / k          (S in mm of runoff, k = reservoir_k_h; exact
                                            exponential step; S starts at baseflow · k)
    Q       = S / k                        (mm/h)
    level   = normal + (warning − normal) · (Q / Q_warn)^p  +  f_tide · (η − mean + surge)
    normal  = warning − normal_below_warning_m;  f_tide = exp(−d_coast / tidal_reach_km)

so a basin runoff of ``warning_runoff_mm_h`` puts the gauge at its warning level, and the
registry's warning/guaranteed levels keep their meaning whatever their datum.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import numpy as np
import numpy.typing as npt

from services.common.geo.terrain import RIVER_LINES, distance_to_polyline_km, local_xy_km
from services.ingest.simulate.scenario import HydrologyConfig, SurgeConfig, TideConfig
from services.ingest.simulate.world.fields import PointWind
from services.ingest.simulate.world.grid import KM_PER_DEG_LAT, ModelGrid, distance_to_coast_km, km_per_deg_lon
from services.ingest.simulate.world.network import WaterInfoLike

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

M2_PERIOD_S: Final = 12.4206012 * 3600.0
TIDE_EPOCH_S: Final = datetime(2000, 1, 1, tzinfo=UTC).timestamp()
TRIBUTARIES: Final[dict[str, tuple[str, ...]]] = {"Ou": ("Nanxi",)}
SETDOWN_SHARE: Final = 0.3


class Tide:
    def __init__(self, config: TideConfig) -> None:
        self.config = config
        self.omega = 2.0 * math.pi / M2_PERIOD_S
        if config.high_water_at is not None:
            self.phase = self.omega * (config.high_water_at.timestamp() - TIDE_EPOCH_S)
        else:
            self.phase = math.radians(config.m2_phase_deg)

    def anomaly_m(self, t_s: float) -> float:
        """η − mean level."""
        return self.config.m2_amplitude_m * math.cos(self.omega * (t_s - TIDE_EPOCH_S) - self.phase)

    def level_m(self, t_s: float) -> float:
        return self.config.mean_level_m + self.anomaly_m(t_s)


class Surge:
    """Lagged surge at fixed coastal points."""

    def __init__(self, config: SurgeConfig, n: int) -> None:
        self.config = config
        normal = math.radians(config.coast_normal_deg)
        self.seaward = (math.sin(normal), math.cos(normal))
        self.level_m = np.zeros(n)
        self.started = False

    def forcing(self, pressure_hpa: FloatArray, ambient_hpa: float, wind: PointWind) -> FloatArray:
        sx, sy = self.seaward
        onshore = -(wind.u_sea_ms * sx + wind.v_sea_ms * sy)
        # Offshore wind sets the water down less than onshore wind piles it up (the estuaries
        # drain slowly): set-down gets SETDOWN_SHARE of the quadratic term.
        setup = onshore * np.abs(onshore) * np.where(onshore >= 0.0, 1.0, SETDOWN_SHARE)
        result: FloatArray = (
            self.config.inverse_barometer_m_per_hpa * np.maximum(ambient_hpa - pressure_hpa, 0.0)
            + self.config.wind_setup_m_per_ms2 * setup
        )
        return result

    def step(self, dt_s: float, forcing: FloatArray) -> FloatArray:
        if not self.started:
            self.level_m = forcing.copy()
            self.started = True
        else:
            alpha = 1.0 - math.exp(-dt_s / (self.config.response_time_h * 3600.0))
            self.level_m += alpha * (forcing - self.level_m)
        return self.level_m


@dataclass(frozen=True, slots=True)
class RiverGaugeSpec:
    station_id: str
    river: str
    lon: float
    lat: float
    warning_m: float
    guaranteed_m: float
    historical_max_m: float


def _cut_line(
    line: tuple[tuple[float, float], ...], lon: float, lat: float
) -> tuple[tuple[tuple[float, float], ...], float]:
    """The part of ``line`` upstream of the point's projection, and that projection's distance along it."""
    px, py = local_xy_km(lon, lat)
    xs, ys = local_xy_km([p[0] for p in line], [p[1] for p in line])
    best = (math.inf, 0, 0.0)
    along = 0.0
    best_along = 0.0
    for i in range(len(line) - 1):
        ax, ay, bx, by = float(xs[i]), float(ys[i]), float(xs[i + 1]), float(ys[i + 1])
        dx, dy = bx - ax, by - ay
        seg = math.hypot(dx, dy)
        t = min(max(((float(px) - ax) * dx + (float(py) - ay) * dy) / (seg * seg), 0.0), 1.0)
        d = math.hypot(float(px) - (ax + t * dx), float(py) - (ay + t * dy))
        if d < best[0]:
            best = (d, i, t)
            best_along = along + t * seg
        along += seg
    _, i, t = best
    if t <= 1e-6:  # the gauge projects onto a vertex: no zero-length last segment
        return line[: i + 1], best_along
    a, b = line[i], line[i + 1]
    cut = (a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1]))
    return (*line[: i + 1], cut), best_along


def basin_cells(grid: ModelGrid, river: str, lon: float, lat: float, radius_km: float) -> IntArray:
    """Flat grid indices of the gauge's basin (see the module docstring)."""
    lines: list[tuple[tuple[float, float], ...]] = []
    main = RIVER_LINES.get(river)
    if main is not None:
        upstream, gauge_along = _cut_line(main, lon, lat)
        if len(upstream) >= 2:
            lines.append(upstream)
        for tributary in TRIBUTARIES.get(river, ()):
            trib = RIVER_LINES[tributary]
            _, mouth_along = _cut_line(main, *trib[-1])
            if mouth_along <= gauge_along + 1.0:
                lines.append(trib)
    all_lon = [p[0] for line in lines for p in line] or [lon]
    all_lat = [p[1] for line in lines for p in line] or [lat]
    pad_lat = radius_km / KM_PER_DEG_LAT
    pad_lon = radius_km / km_per_deg_lon(lat)
    r0, r1, c0, c1 = grid.window(
        min(all_lon) - pad_lon, min(all_lat) - pad_lat, max(all_lon) + pad_lon, max(all_lat) + pad_lat
    )
    sub_lon = grid.lon2d[r0:r1, c0:c1]
    sub_lat = grid.lat2d[r0:r1, c0:c1]
    if lines:
        dist = np.full(sub_lon.shape, np.inf)
        for line in lines:
            dist = np.minimum(dist, distance_to_polyline_km(sub_lon, sub_lat, line))
    else:
        gx, gy = local_xy_km(lon, lat)
        sx, sy = local_xy_km(sub_lon, sub_lat)
        dist = np.hypot(sx - gx, sy - gy)
    rows, cols = np.nonzero(dist <= radius_km)
    cells = ((rows + r0) * grid.n_cols + (cols + c0)).astype(np.intp)
    if cells.size == 0:  # degenerate: the nearest cell
        cells = grid.sampler([lon], [lat]).index[0, :1]
    return cells


class Rivers:
    def __init__(self, grid: ModelGrid, gauges: Sequence[RiverGaugeSpec], config: HydrologyConfig) -> None:
        self.gauges = list(gauges)
        self.config = config
        rivers = [config.river(g.river) for g in gauges]
        self.k_h = np.array([r.reservoir_k_h for r in rivers])
        self.q_warn = np.array([r.warning_runoff_mm_h for r in rivers])
        self.warning = np.array([g.warning_m for g in gauges])
        self.normal = self.warning - np.array([r.normal_below_warning_m for r in rivers])
        self.basins = [
            basin_cells(grid, g.river, g.lon, g.lat, r.basin_radius_km) for g, r in zip(gauges, rivers, strict=True)
        ]
        coast_km = distance_to_coast_km([g.lon for g in gauges], [g.lat for g in gauges])
        reach = np.array([r.tidal_reach_km for r in rivers])
        self.tide_factor = np.where(reach > 0.0, np.exp(-coast_km / np.maximum(reach, 1e-9)), 0.0)
        self.storage_mm = config.baseflow_mm_h * self.k_h
        self._last_rain: FloatArray | None = None

    def basin_rain_mm_h(self, rain_grid: FloatArray) -> FloatArray:
        flat = rain_grid.reshape(-1)
        return np.array([float(flat[cells].mean()) for cells in self.basins])

    def step(self, dt_s: float, rain_grid: FloatArray) -> None:
        now = self.basin_rain_mm_h(rain_grid)
        rain = now if self._last_rain is None else 0.5 * (now + self._last_rain)
        self._last_rain = now
        decay = np.exp(-dt_s / 3600.0 / self.k_h)
        inflow = self.config.runoff_coefficient * rain + self.config.baseflow_mm_h
        self.storage_mm = self.storage_mm * decay + inflow * self.k_h * (1.0 - decay)

    def levels_m(self, tide_anomaly_m: float, surge_m: FloatArray) -> FloatArray:
        runoff = self.storage_mm / self.k_h
        rise = (self.warning - self.normal) * (runoff / self.q_warn) ** self.config.rating_exponent
        result: FloatArray = self.normal + rise + self.tide_factor * (tide_anomaly_m + surge_m)
        return result


def tide_station_levels(tide: Tide, t_s: float, surge_m: FloatArray) -> FloatArray:
    result: FloatArray = tide.level_m(t_s) + surge_m
    return result


def water_spec(station_id: str, lon: float, lat: float, water: WaterInfoLike) -> RiverGaugeSpec:
    return RiverGaugeSpec(
        station_id=station_id,
        river=water.river,
        lon=lon,
        lat=lat,
        warning_m=water.warning_level_m,
        guaranteed_m=water.guaranteed_level_m,
        historical_max_m=water.historical_max_m,
    )
