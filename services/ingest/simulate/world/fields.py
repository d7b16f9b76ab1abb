"""The true state of the atmosphere at an instant: rain rate on the grid, wind and pressure at points.

Composition per instant ``t`` (all [A])::

    typhoon rain + stratiform rain ──× terrain factor──┐
                                                       ├──▶ rain rate grid (mm/h)
    convective cells (Gaussian footprints) ────────────┘

    terrain factor = 1 + (T − 1)·tanh(w⁺ / w₀) − L·tanh(w⁻ / w₀)
    w = (typhoon wind + ambient wind) · ∇h     upslope motion (m/s), smoothed slopes

``T`` is ``terrain_enhancement`` (×1.5–2 on windward slopes, STANDARDS §6 replay
guidance), ``L`` is ``lee_reduction``, ``w₀`` = 1 m/s. Without a typhoon the ``[typhoon]``
defaults apply (the ambient wind is weak, so the factor stays near 1). Cells are not
terrain-modulated: their footprint is what the scenario asked for.

Wind at points (10-m, 2-min mean)::

    typhoon wind (open water) · exposure + ambient wind + cell outflow
    exposure = 1 at sea, land_wind_factor on low land, rising linearly to 1 at 1,000 m

The open-water typhoon wind at a point is also returned: surge is driven by it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from services.ingest.simulate.scenario import RadarConfig, Scenario, TyphoonConfig
from services.ingest.simulate.world import convection, typhoon
from services.ingest.simulate.world.grid import KM_PER_DEG_LAT, ModelGrid, Sampler, km_per_deg_lon, land_fraction
from services.ingest.simulate.world.radar import dbz_to_rate_mm_h

FloatArray = npt.NDArray[np.float64]

UPSLOPE_SCALE_MS = 1.0
STORM_INFLUENCE_KM = 1500.0
EXPOSURE_FULL_AT_M = 1000.0
_DEFAULT_TYPHOON = TyphoonConfig.model_fields


@dataclass(frozen=True, slots=True)
class PointSet:
    """Fixed points where the world is sampled (stations, townships)."""

    ids: tuple[str, ...]
    lon: FloatArray
    lat: FloatArray
    land: FloatArray
    exposure: FloatArray  # typhoon-wind multiplier at 10 m
    sampler: Sampler

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True, slots=True)
class PointWind:
    speed_ms: FloatArray
    from_deg: FloatArray
    u_sea_ms: FloatArray  # open-water wind (no land reduction), drives surge
    v_sea_ms: FloatArray


def wind_from_deg(u: FloatArray, v: FloatArray) -> FloatArray:
    """Meteorological direction the wind blows *from*, degrees clockwise from north, [0, 360)."""
    result: FloatArray = np.mod(np.degrees(np.arctan2(-u, -v)), 360.0)
    return result


class Atmosphere:
    def __init__(self, scenario: Scenario, grid: ModelGrid) -> None:
        self.scenario = scenario
        self.grid = grid
        ty = scenario.typhoon
        self.typhoon_config = ty
        self.track = typhoon.Track(ty.track, ty.radius_max_wind_km) if ty is not None else None
        self.terrain_max = ty.terrain_enhancement if ty else float(_DEFAULT_TYPHOON["terrain_enhancement"].default)
        self.lee_reduction = ty.lee_reduction if ty else float(_DEFAULT_TYPHOON["lee_reduction"].default)
        self.land_wind_factor = ty.land_wind_factor if ty else float(_DEFAULT_TYPHOON["land_wind_factor"].default)
        self.cells = tuple(
            convection.CellModel(cell, _peak_rate(cell.peak_dbz, cell.peak_rain_mm_h, scenario.radar))
            for cell in scenario.cells
        )
        bg = scenario.background
        toward = math.radians(bg.wind_from_deg + 180.0)
        self.ambient_u = bg.wind_ms * math.sin(toward)
        self.ambient_v = bg.wind_ms * math.cos(toward)
        mid_lat = float(grid.lat.mean())
        self._x_km = (grid.lon2d - grid.lon.mean()) * km_per_deg_lon(mid_lat)
        self._y_km = (grid.lat2d - grid.lat.mean()) * KM_PER_DEG_LAT
        self._centre = (float(grid.lon.mean()), mid_lat)

    # ------------------------------------------------------------------ points

    def points(
        self, ids: Sequence[str], lon: Sequence[float], lat: Sequence[float], elevation_m: Sequence[float]
    ) -> PointSet:
        lon_a = np.asarray(lon, dtype=np.float64)
        lat_a = np.asarray(lat, dtype=np.float64)
        land = land_fraction(lon_a, lat_a)
        elev = np.clip(np.asarray(elevation_m, dtype=np.float64), 0.0, EXPOSURE_FULL_AT_M)
        land_exposure = self.land_wind_factor + (1.0 - self.land_wind_factor) * elev / EXPOSURE_FULL_AT_M
        exposure = land * land_exposure + (1.0 - land)
        return PointSet(tuple(ids), lon_a, lat_a, land, exposure, self.grid.sampler(lon_a, lat_a))

    def storm(self, t_s: float) -> typhoon.StormState | None:
        if self.track is None:
            return None
        state = self.track.state(t_s)
        if state is None:
            return None
        cx, cy = self._centre
        dx = (state.lon - cx) * km_per_deg_lon(cy)
        dy = (state.lat - cy) * KM_PER_DEG_LAT
        return state if math.hypot(dx, dy) < STORM_INFLUENCE_KM else None

    def wind_at(self, t_s: float, points: PointSet) -> PointWind:
        n = len(points)
        u_sea = np.full(n, self.ambient_u)
        v_sea = np.full(n, self.ambient_v)
        u10 = u_sea.copy()
        v10 = v_sea.copy()
        state = self.storm(t_s)
        if state is not None and self.typhoon_config is not None:
            dx, dy = typhoon.offsets_km(state, points.lon, points.lat)
            tu, tv = typhoon.wind_uv(state, self.typhoon_config, dx, dy)
            u_sea += tu
            v_sea += tv
            u10 += tu * points.exposure
            v10 += tv * points.exposure
        for cell in self.cells:
            cs = cell.state(t_s)
            if cs is None:
                continue
            dx, dy = convection.offsets(cs, points.lon, points.lat)
            ou, ov = convection.outflow_uv(cs, dx, dy)
            u10 += ou
            v10 += ov
        return PointWind(np.hypot(u10, v10), wind_from_deg(u10, v10), u_sea, v_sea)

    def pressure_at(self, t_s: float, points: PointSet) -> FloatArray:
        ambient = self.typhoon_config.ambient_pressure_hpa if self.typhoon_config else 1008.0
        state = self.storm(t_s)
        if state is None or self.typhoon_config is None:
            return np.full(len(points), ambient)
        dx, dy = typhoon.offsets_km(state, points.lon, points.lat)
        return typhoon.pressure_hpa(state, self.typhoon_config, dx, dy)

    @property
    def ambient_pressure_hpa(self) -> float:
        return self.typhoon_config.ambient_pressure_hpa if self.typhoon_config else 1008.0

    # ------------------------------------------------------------------ grid

    def rain_grid(self, t_s: float) -> FloatArray:
        """True rain rate (mm/h) on the model grid at instant ``t_s`` (epoch seconds)."""
        grid = self.grid
        stratiform = self._stratiform(t_s)
        wind_u: FloatArray | float = self.ambient_u
        wind_v: FloatArray | float = self.ambient_v
        state = self.storm(t_s)
        if state is not None and self.typhoon_config is not None:
            dx, dy = typhoon.offsets_km(state, grid.lon2d, grid.lat2d)
            tu, tv = typhoon.wind_uv(state, self.typhoon_config, dx, dy)
            wind_u = tu + self.ambient_u
            wind_v = tv + self.ambient_v
            rain = typhoon.rain_rate_mm_h(state, self.typhoon_config, dx, dy, t_s)
            if stratiform is not None:
                rain += stratiform
        elif stratiform is not None:
            rain = stratiform
        else:
            rain = np.zeros(grid.shape)
        if state is not None or stratiform is not None:
            upslope = wind_u * grid.slope_x + wind_v * grid.slope_y
            factor = (
                1.0
                + (self.terrain_max - 1.0) * np.tanh(np.maximum(upslope, 0.0) / UPSLOPE_SCALE_MS)
                - self.lee_reduction * np.tanh(np.maximum(-upslope, 0.0) / UPSLOPE_SCALE_MS)
            )
            rain *= factor
        for cell in self.cells:
            self._add_cell(rain, cell, t_s)
        return rain

    def _stratiform(self, t_s: float) -> FloatArray | None:
        bg = self.scenario.background
        if bg.rain_mm_h <= 0.0:
            return None
        start = (bg.start or self.scenario.start).timestamp()
        end = (bg.end or self.scenario.end).timestamp()
        if t_s <= start or t_s >= end:
            return None
        ramp_s = max(bg.ramp_min * 60.0, 1.0)
        envelope = min(1.0, (t_s - start) / ramp_s, (end - t_s) / ramp_s)
        travelled = bg.speed_kmh * (t_s - self.scenario.start.timestamp()) / 3600.0
        heading = math.radians(bg.heading_deg)
        x = self._x_km - travelled * math.sin(heading)
        y = self._y_km - travelled * math.cos(heading)
        k = 2.0 * math.pi / bg.wavelength_km
        pattern = 1.0 + bg.variation * np.sin(k * x) * np.sin(k * y + 0.7)
        result: FloatArray = bg.rain_mm_h * envelope * pattern
        return result

    def _add_cell(self, rain: FloatArray, cell: convection.CellModel, t_s: float) -> None:
        cs = cell.state(t_s)
        if cs is None:
            return
        grid = self.grid
        reach_km = convection.FOOTPRINT_RADII * cs.radius_km
        dlat = reach_km / KM_PER_DEG_LAT
        dlon = reach_km / km_per_deg_lon(cs.lat)
        r0, r1, c0, c1 = grid.window(cs.lon - dlon, cs.lat - dlat, cs.lon + dlon, cs.lat + dlat)
        if r1 <= r0 or c1 <= c0:
            return
        dx, dy = convection.offsets(cs, grid.lon[c0:c1][None, :], grid.lat[r0:r1][:, None])
        rain[r0:r1, c0:c1] += convection.rain_footprint(cs, dx, dy)


def _peak_rate(peak_dbz: float | None, peak_rain_mm_h: float | None, radar: RadarConfig) -> float:
    if peak_rain_mm_h is not None:
        return peak_rain_mm_h
    assert peak_dbz is not None  # the scenario model guarantees one of the two
    return float(dbz_to_rate_mm_h(np.asarray(peak_dbz, dtype=np.float64), radar.zr_a, radar.zr_b))
