"""Synthetic terrain for Wenzhou [A]: a smooth elevation field, not a DEM.

No digital elevation model is available to the project (see
``/work/shared/domain/README.md``).  The simulator and the registry generator
still need heights that look like Wenzhou's broad structure, so this module
defines a deterministic, vectorised function ``synthetic_elevation_m(lon, lat)``.
Every number in it is a design assumption [A]; none is a measured height.

How the field is built (all arithmetic on numpy arrays, no randomness):

1. **Mountain weight** ``w ∈ [0, 1]`` — the largest of
   * *west*: rises from 0 to 1 over 0.22° of longitude west of an edge that
     runs from 120.40°E (south of 27.6°N) to 120.55°E (north of 28.1°N), so
     Taishun, Wencheng and the western parts of Rui'an, Ouhai, Pingyang and
     Cangnan are mountainous (lon < ~120.3 fully so);
   * *north*: rises from 0 at 28.12°N to 1 at 28.32°N (northern Yongjia and
     the Yandang mountains of Yueqing; lat > ~28.25 mountainous);
   * *south*: 0.6 × a ramp from 27.42°N to 27.24°N, west of ~120.78°E
     (the hilly southern lobe of Cangnan);
   * *Daluo Shan* (大罗山, ~120.75°E 27.90°N [K]): a 3.5 km Gaussian bump of weight 0.7.
2. **Ridges**: ``r ∈ [0, 1]`` from four crossed ``1 − |sin|`` waves
   (wavelengths 9–23 km) on a ±4 km domain-warped grid, which gives sharp,
   irregular ridge lines.
3. **Height**: ``plain + w · (420 + 720 · r)`` with ``plain`` a gentle 2–16 m
   undulation, so the coastal plain and the islands stay at 2–16 m and full
   mountains reach ~420–1,140 m.
4. **Valleys**: within ~2.5 km of an approximate river line (Ou, its
   tributary Nanxi, Feiyun, Ao; ``RIVER_LINES``) the mountain part is scaled
   down by up to 90 %, so valley floors sit at tens of metres.

``local_xy_km`` is the local flat projection used throughout the geo package
(equirectangular about 120.6°E 27.8°N; < 1 % distance error over Wenzhou).
"""

from __future__ import annotations

import functools
from typing import Final

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]

ORIGIN_LON: Final = 120.6
ORIGIN_LAT: Final = 27.8
KM_PER_DEG_LAT: Final = 110.57
KM_PER_DEG_LON: Final = 111.32 * float(np.cos(np.radians(ORIGIN_LAT)))

# fmt: off
RIVER_LINES: Final[dict[str, tuple[tuple[float, float], ...]]] = {
    # Approximate courses [K]/[A], hand-drawn from general knowledge and from the
    # county boundaries they follow in the DataV polygons (the Ou lower reach is
    # the Yongjia/Lucheng boundary; the Ao estuary the Pingyang/Longgang one).
    "Ou": (
        (120.40, 28.14), (120.47, 28.11), (120.54, 28.08), (120.60, 28.045),
        (120.66, 28.030), (120.72, 28.020), (120.79, 28.000), (120.86, 27.975),
        (120.93, 27.950),
    ),
    "Nanxi": (
        (120.68, 28.52), (120.70, 28.42), (120.72, 28.33), (120.70, 28.24),
        (120.68, 28.15), (120.66, 28.05),
    ),
    "Feiyun": (
        (119.78, 27.62), (119.90, 27.64), (120.00, 27.67), (120.08, 27.69),
        (120.15, 27.72), (120.22, 27.76), (120.30, 27.77), (120.40, 27.765),
        (120.50, 27.770), (120.58, 27.775), (120.65, 27.780), (120.72, 27.780),
        (120.78, 27.775),
    ),
    "Ao": (
        (120.20, 27.70), (120.28, 27.68), (120.35, 27.66), (120.40, 27.645),
        (120.46, 27.62), (120.51, 27.595), (120.56, 27.585), (120.60, 27.582),
        (120.65, 27.570), (120.70, 27.560),
    ),
    "Wen-Rui canal": (
        (120.655, 28.005), (120.67, 27.97), (120.675, 27.93), (120.665, 27.88),
        (120.655, 27.84), (120.645, 27.80),
    ),
}
# fmt: on
_VALLEY_RIVERS: Final = ("Ou", "Nanxi", "Feiyun", "Ao")
_VALLEY_HALF_WIDTH_KM: Final = 2.5
_VALLEY_DEPTH: Final = 0.9
_CHUNK: Final = 65_536  # points per block in distance_to_polyline_km (bounds memory)

# (k_x, k_y) in rad/km, phase in rad, weight — fixed constants, not random draws.
_RIDGE_WAVES: Final = (
    (0.21, 0.12, 0.7, 1.0),
    (-0.09, 0.25, 2.1, 0.8),
    (0.30, -0.17, 4.0, 0.6),
    (0.05, 0.41, 5.3, 0.4),
)
_DALUO_LON: Final = 120.75
_DALUO_LAT: Final = 27.90
_DALUO_RADIUS_KM: Final = 3.5
_DALUO_WEIGHT: Final = 0.7


def local_xy_km(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Project lon/lat (degrees) to flat x/y in km about 120.6°E 27.8°N."""
    x = (np.asarray(lon, dtype=np.float64) - ORIGIN_LON) * KM_PER_DEG_LON
    y = (np.asarray(lat, dtype=np.float64) - ORIGIN_LAT) * KM_PER_DEG_LAT
    return x, y


def _smoothstep(t: FloatArray) -> FloatArray:
    c = np.clip(t, 0.0, 1.0)
    result: FloatArray = c * c * (3.0 - 2.0 * c)
    return result


@functools.lru_cache(maxsize=32)
def _segments_km(
    line: tuple[tuple[float, float], ...],
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    vx, vy = local_xy_km([p[0] for p in line], [p[1] for p in line])
    dx, dy = np.diff(vx), np.diff(vy)
    return vx[:-1], vy[:-1], dx, dy, dx * dx + dy * dy


def distance_to_polyline_km(lon: ArrayLike, lat: ArrayLike, line: tuple[tuple[float, float], ...]) -> FloatArray:
    """Distance in km from each point to a lon/lat polyline (vectorised, chunked)."""
    px, py = np.broadcast_arrays(*local_xy_km(lon, lat))
    shape = px.shape
    flat_x, flat_y = px.ravel(), py.ravel()
    ax, ay, dx, dy, length2 = _segments_km(line)
    result = np.empty(flat_x.shape, dtype=np.float64)
    for start in range(0, flat_x.size, _CHUNK):
        qx = flat_x[start : start + _CHUNK, None] - ax
        qy = flat_y[start : start + _CHUNK, None] - ay
        t = np.clip((qx * dx + qy * dy) / length2, 0.0, 1.0)
        result[start : start + _CHUNK] = np.sqrt(np.min((qx - t * dx) ** 2 + (qy - t * dy) ** 2, axis=1))
    return result.reshape(shape)


def mountain_weight(lon: ArrayLike, lat: ArrayLike) -> FloatArray:
    """Share of 'mountain' at each point, 0 (plain/islands) … 1 (full mountains)."""
    lon_a = np.asarray(lon, dtype=np.float64)
    lat_a = np.asarray(lat, dtype=np.float64)
    west_edge = np.interp(lat_a, [27.6, 27.9, 28.1], [120.40, 120.52, 120.55])
    west = _smoothstep((west_edge - lon_a) / 0.22)
    north = _smoothstep((lat_a - 28.12) / 0.20)
    south = 0.6 * _smoothstep((27.42 - lat_a) / 0.18) * _smoothstep((120.78 - lon_a) / 0.10)
    dx = (lon_a - _DALUO_LON) * KM_PER_DEG_LON
    dy = (lat_a - _DALUO_LAT) * KM_PER_DEG_LAT
    daluo = _DALUO_WEIGHT * np.exp(-(dx * dx + dy * dy) / (_DALUO_RADIUS_KM**2))
    weight: FloatArray = np.maximum.reduce([west, north, south, daluo])
    return weight


def synthetic_elevation_m(lon: ArrayLike, lat: ArrayLike) -> FloatArray:
    """Synthetic elevation in metres [A] for lon/lat (scalars or arrays, broadcast).

    Returns a float64 array with the broadcast shape (0-d for scalars).
    """
    lon_a = np.asarray(lon, dtype=np.float64)
    lat_a = np.asarray(lat, dtype=np.float64)
    x, y = local_xy_km(lon_a, lat_a)
    plain = 2.0 + 14.0 * (0.5 + 0.5 * np.sin(x / 7.0 + 1.3) * np.cos(y / 9.0 + 0.4))
    # Domain warp (±4 km) so the crossed waves read as ridges, not an egg-crate.
    wx = x + 4.0 * np.sin(y / 6.0 + 0.5)
    wy = y + 4.0 * np.sin(x / 5.0 + 1.7)
    ridge = np.zeros(np.broadcast(x, y).shape)
    total_weight = 0.0
    for kx, ky, phase, weight in _RIDGE_WAVES:
        ridge = ridge + weight * (1.0 - np.abs(np.sin(kx * wx + ky * wy + phase)))
        total_weight += weight
    ridge = ridge / total_weight
    mountain = mountain_weight(lon_a, lat_a) * (420.0 + 720.0 * ridge)
    valley = np.zeros_like(ridge)
    for river in _VALLEY_RIVERS:
        d = distance_to_polyline_km(lon_a, lat_a, RIVER_LINES[river])
        valley = np.maximum(valley, np.exp(-((d / _VALLEY_HALF_WIDTH_KM) ** 2)))
    elevation: FloatArray = plain + mountain * (1.0 - _VALLEY_DEPTH * valley)
    return elevation
