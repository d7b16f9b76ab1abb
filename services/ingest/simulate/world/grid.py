"""The model grid: a regular lon/lat grid over Wenzhou, its terrain and its coastline.

::

    lat ▲  row n-1 ┌───┬───┬───┐      cell (r, c) centre:
        │          ├───┼───┼───┤        lon = lon0 + (c + ½)·cell_deg
        │  row 0   └───┴───┴───┘        lat = lat0 + (r + ½)·cell_deg
        └──────▶ lon (lon0, lat0) = south-west corner, rows south → north

- Extent: the Wenzhou bbox (§5.2: 119.625–121.273°E, 27.041–28.612°N) plus ``margin_deg``
  on every side (default 0.6° ≈ 60 km: the upstream coverage a 60-min nowcast needs at
  30–60 km/h, §4.6). Edges snap to multiples of ``cell_deg`` so grids line up between runs.
- Terrain: ``synthetic_elevation_m`` [A] (``services.common.geo.terrain``), with slopes
  smoothed over ``SLOPE_SMOOTHING_KM`` — precipitation responds to the broad upslope, not
  to every 1-km ridge.
- Coastline [A]: the longitude of the mainland shore per latitude (from the DataV county
  polygons inside Wenzhou, hand-drawn outside, Fuzhou to Taizhou), good to a few km; bays
  such as Yueqing Bay are not represented. East of it is sea; islands (Dongtou, Nanji, Beiji)
  are treated as sea exposure, which is what their wind records look like. Land fraction
  ramps over ``COAST_RAMP_DEG`` across the shore so wind has no step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy import ndimage  # type: ignore[import-untyped]  # scipy ships no type information

from services.common.geo.terrain import synthetic_elevation_m
from services.ingest.simulate.scenario import GridConfig

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

WENZHOU_BBOX: Final = (119.625, 27.041, 121.273, 28.612)
KM_PER_DEG_LAT: Final = 110.57
SLOPE_SMOOTHING_KM: Final = 3.0
COAST_RAMP_DEG: Final = 0.04

# Longitude of the mainland shore at each latitude [A]. Inside Wenzhou (27.15–28.40°N) read off
# the DataV county polygons (easternmost mainland point per 0.05° band, Dongtou's islands left at
# sea); outside, hand-drawn (Fujian to the south, Taizhou's Wenling coast to the north).
_COAST_LAT: Final = (
    25.5, 26.0, 26.4, 26.8, 27.1, 27.15, 27.2, 27.3, 27.35, 27.4, 27.45, 27.5, 27.55, 27.6, 27.65, 27.7,
    27.75, 27.8, 27.85, 27.9, 27.95, 28.0, 28.05, 28.1, 28.15, 28.2, 28.25, 28.3, 28.35, 28.4, 28.45,
    28.6, 29.0, 29.3, 29.8,
)  # fmt: skip
_COAST_LON: Final = (
    119.55, 119.65, 119.75, 120.1, 120.45, 120.54, 120.56, 120.575, 120.65, 120.675, 120.69, 120.685, 120.65,
    120.665, 120.695, 120.735, 120.78, 120.85, 120.88, 120.92, 120.99, 121.02, 121.04, 121.06, 121.125,
    121.14, 121.15, 121.19, 121.22, 121.25, 121.5, 121.6, 121.8, 121.95, 122.1,
)  # fmt: skip


def km_per_deg_lon(lat: float) -> float:
    return 111.32 * math.cos(math.radians(lat))


def coast_lon(lat: npt.ArrayLike) -> FloatArray:
    """Longitude of the mainland shore at ``lat`` [A]."""
    return np.interp(np.asarray(lat, dtype=np.float64), _COAST_LAT, _COAST_LON)


def land_fraction(lon: npt.ArrayLike, lat: npt.ArrayLike) -> FloatArray:
    """1 inland, 0 at sea, a smooth ramp across the shore."""
    west_of_coast = coast_lon(lat) - np.asarray(lon, dtype=np.float64)
    t = np.clip(west_of_coast / COAST_RAMP_DEG + 0.5, 0.0, 1.0)
    result: FloatArray = t * t * (3.0 - 2.0 * t)
    return result


def distance_to_coast_km(lon: npt.ArrayLike, lat: npt.ArrayLike) -> FloatArray:
    """East–west distance to the shore (0 at sea); enough for tidal reach."""
    lat_a = np.asarray(lat, dtype=np.float64)
    west_of_coast = coast_lon(lat_a) - np.asarray(lon, dtype=np.float64)
    result: FloatArray = np.maximum(0.0, west_of_coast) * 111.32 * np.cos(np.radians(lat_a))
    return result


@dataclass(frozen=True, slots=True)
class Sampler:
    """Bilinear interpolation of a grid at fixed points: ``sampler(field)`` → values at points."""

    index: IntArray  # (n, 4) flat indices
    weight: FloatArray  # (n, 4)

    def __call__(self, field: npt.NDArray[np.floating]) -> FloatArray:
        flat = field.reshape(-1)
        result: FloatArray = np.einsum("ij,ij->i", flat[self.index].astype(np.float64), self.weight)
        return result

    def __len__(self) -> int:
        return int(self.index.shape[0])


@dataclass(frozen=True, slots=True)
class ModelGrid:
    lon0: float
    lat0: float
    cell_deg: float
    n_rows: int
    n_cols: int
    lon: FloatArray  # (n_cols,) centres
    lat: FloatArray  # (n_rows,) centres
    lon2d: FloatArray
    lat2d: FloatArray
    elevation_m: FloatArray
    slope_x: FloatArray  # dh/dx east, m per m, smoothed
    slope_y: FloatArray  # dh/dy north
    land: FloatArray  # land fraction 0..1

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_rows, self.n_cols)

    def sampler(self, lon: npt.ArrayLike, lat: npt.ArrayLike) -> Sampler:
        """Bilinear weights for points; points off the grid clamp to its edge."""
        lon_a = np.atleast_1d(np.asarray(lon, dtype=np.float64))
        lat_a = np.atleast_1d(np.asarray(lat, dtype=np.float64))
        fx = np.clip((lon_a - self.lon0) / self.cell_deg - 0.5, 0.0, self.n_cols - 1.000001)
        fy = np.clip((lat_a - self.lat0) / self.cell_deg - 0.5, 0.0, self.n_rows - 1.000001)
        c0 = np.floor(fx).astype(np.intp)
        r0 = np.floor(fy).astype(np.intp)
        tx = fx - c0
        ty = fy - r0
        c1 = np.minimum(c0 + 1, self.n_cols - 1)
        r1 = np.minimum(r0 + 1, self.n_rows - 1)
        index = np.stack(
            [r0 * self.n_cols + c0, r0 * self.n_cols + c1, r1 * self.n_cols + c0, r1 * self.n_cols + c1], axis=1
        )
        weight = np.stack([(1 - tx) * (1 - ty), tx * (1 - ty), (1 - tx) * ty, tx * ty], axis=1)
        return Sampler(index=index.astype(np.intp), weight=weight)

    def window(self, lon_min: float, lat_min: float, lon_max: float, lat_max: float) -> tuple[int, int, int, int]:
        """Row/column slice bounds ``(r0, r1, c0, c1)`` of the cells whose centres fall in the box."""
        c0 = max(0, math.ceil((lon_min - self.lon0) / self.cell_deg - 0.5 - 1e-9))
        c1 = min(self.n_cols, math.floor((lon_max - self.lon0) / self.cell_deg - 0.5 + 1e-9) + 1)
        r0 = max(0, math.ceil((lat_min - self.lat0) / self.cell_deg - 0.5 - 1e-9))
        r1 = min(self.n_rows, math.floor((lat_max - self.lat0) / self.cell_deg - 0.5 + 1e-9) + 1)
        return r0, max(r0, r1), c0, max(c0, c1)


def build_grid(config: GridConfig) -> ModelGrid:
    d = config.cell_deg
    lon_min, lat_min, lon_max, lat_max = WENZHOU_BBOX
    lon0 = math.floor((lon_min - config.margin_deg) / d) * d
    lat0 = math.floor((lat_min - config.margin_deg) / d) * d
    n_cols = math.ceil((lon_max + config.margin_deg - lon0) / d)
    n_rows = math.ceil((lat_max + config.margin_deg - lat0) / d)
    lon: FloatArray = lon0 + (np.arange(n_cols, dtype=np.float64) + 0.5) * d
    lat: FloatArray = lat0 + (np.arange(n_rows, dtype=np.float64) + 0.5) * d
    lon2d, lat2d = np.meshgrid(lon, lat)
    land = land_fraction(lon2d, lat2d)
    # The synthetic terrain knows no sea: flatten it offshore so no ridge stands in the water.
    elevation = synthetic_elevation_m(lon2d, lat2d) * land
    mid_lat = float(lat.mean())
    dx_m = d * km_per_deg_lon(mid_lat) * 1000.0
    dy_m = d * KM_PER_DEG_LAT * 1000.0
    sigma_cells = SLOPE_SMOOTHING_KM * 1000.0 / dx_m
    smooth = ndimage.gaussian_filter(elevation, sigma=sigma_cells, mode="nearest")
    slope_y, slope_x = np.gradient(smooth, dy_m, dx_m)
    return ModelGrid(
        lon0=lon0,
        lat0=lat0,
        cell_deg=d,
        n_rows=n_rows,
        n_cols=n_cols,
        lon=lon,
        lat=lat,
        lon2d=lon2d,
        lat2d=lat2d,
        elevation_m=elevation,
        slope_x=slope_x,
        slope_y=slope_y,
        land=land,
    )
