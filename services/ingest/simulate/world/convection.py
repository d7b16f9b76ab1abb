"""Convective cells: initiation, motion, growth / mature / decay [A].

Each ``[[cells]]`` entry is one cell with a Gaussian rain-rate footprint::

    rate(d) = peak · f(age) · exp(−(d / ρ(age))²)

    age:   0 ── growth_min ── +mature_min ── +decay_min
    f:     0 ↗ 1 ────────────────── 1 ↘ 0          intensity (linear ramps)
    ρ:     ½R ↗ R ───────────────── R ↗ 1.3 R      radius (the anvil spreads as it dies)

The centre moves at ``speed_kmh`` towards ``heading_deg`` from the initiation point.
``peak_dbz`` is turned into a rate with the scenario's Z–R relation so the radar shows the
peak it was given. Overlapping cells add. Near a live cell the surface wind gains a radial
outflow (gust front) peaking at one radius: ``outflow_wind_ms · f · (d/ρ) · e^(½ − ½(d/ρ)²)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from services.ingest.simulate.scenario import ConvectiveCell

FloatArray = npt.NDArray[np.float64]
KM_PER_DEG_LAT = 110.57
FOOTPRINT_RADII = 3.0


@dataclass(frozen=True, slots=True)
class CellState:
    lon: float
    lat: float
    rate_mm_h: float
    radius_km: float
    intensity: float
    outflow_ms: float


@dataclass(frozen=True, slots=True)
class CellModel:
    cell: ConvectiveCell
    peak_rate_mm_h: float

    @property
    def start_s(self) -> float:
        return self.cell.start.timestamp()

    @property
    def end_s(self) -> float:
        c = self.cell
        return self.start_s + 60.0 * (c.growth_min + c.mature_min + c.decay_min)

    def state(self, t_s: float) -> CellState | None:
        c = self.cell
        age_min = (t_s - self.start_s) / 60.0
        total = c.growth_min + c.mature_min + c.decay_min
        if age_min < 0.0 or age_min > total:
            return None
        if age_min < c.growth_min:
            f = age_min / c.growth_min
            radius = c.radius_km * (0.5 + 0.5 * f)
        elif age_min <= c.growth_min + c.mature_min:
            f = 1.0
            radius = c.radius_km
        else:
            into = (age_min - c.growth_min - c.mature_min) / c.decay_min
            f = 1.0 - into
            radius = c.radius_km * (1.0 + 0.3 * into)
        if f <= 0.0:
            return None
        dist_km = c.speed_kmh * age_min / 60.0
        heading = math.radians(c.heading_deg)
        lat = c.lat + dist_km * math.cos(heading) / KM_PER_DEG_LAT
        lon = c.lon + dist_km * math.sin(heading) / (111.32 * math.cos(math.radians(c.lat)))
        return CellState(
            lon=lon,
            lat=lat,
            rate_mm_h=self.peak_rate_mm_h * f,
            radius_km=radius,
            intensity=f,
            outflow_ms=c.outflow_wind_ms * f,
        )


def offsets(state: CellState, lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    dx = (np.asarray(lon, dtype=np.float64) - state.lon) * 111.32 * math.cos(math.radians(state.lat))
    dy = (np.asarray(lat, dtype=np.float64) - state.lat) * KM_PER_DEG_LAT
    return dx, dy


def rain_footprint(state: CellState, dx: FloatArray, dy: FloatArray) -> FloatArray:
    result: FloatArray = state.rate_mm_h * np.exp(-(dx * dx + dy * dy) / (state.radius_km**2))
    return result


def outflow_uv(state: CellState, dx: FloatArray, dy: FloatArray) -> tuple[FloatArray, FloatArray]:
    d = np.maximum(np.hypot(dx, dy), 1e-6)
    q = d / state.radius_km
    speed = state.outflow_ms * q * np.exp(0.5 - 0.5 * q * q)
    return speed * dx / d, speed * dy / d
