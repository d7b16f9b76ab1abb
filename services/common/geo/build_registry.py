"""Deterministic generator of the registry data files in ``services/common/geo/data``.

Run::

    python -m services.common.geo.build_registry --domain /work/shared/domain \\
        --out services/common/geo/data [--seed 3303]

Inputs (read-only, ``/work/shared/domain``): ``wenzhou_counties.geojson`` (12
DataV county polygons, copied byte for byte), ``wenzhou_townships.csv`` (185
NBS township-level units, no coordinates).  The 2021 year-end county
populations and English names are the STANDARDS §5.1 table, repeated in
``COUNTY_FACTS`` below.  Outputs: ``counties.csv``, ``townships.csv``,
``stations.json``, ``manifest.json`` and the GeoJSON copy.  The same inputs and
seed always give the same bytes (a unit test regenerates and compares).

Randomness comes only from ``random.Random(f"{seed}/{stage}")`` — one stream
per stage — and only through its ``random()`` method, whose sequence Python
guarantees across versions; uniform and normal draws are derived from it here.
All geometry is done in the flat local km frame of ``terrain.local_xy_km``;
coordinates are written rounded to 1e-6° and heights to 0.1 m.  Positions are
sampled at least ``INNER_MARGIN_KM`` (0.3 km) inside the county polygons.

Method and assumptions ([S] sourced, [D] derived, [A] assumption):

* **Counties** [S]: adcode, Chinese name and seat (DataV ``center``) from the
  GeoJSON; population = 2021 year-end figure of STANDARDS §5.1 × 10,000.
* **Dissemination units**: the 185 NBS units plus 龙港市 as one unit with code
  330383000 and kind "市" (186 in all; STANDARDS §5.1 "186 vs 185").
* **Population** [A]: each county's total is split over its units with weights
  街道 3 : 镇 2 : 乡 1, rounded to whole persons by the largest-remainder
  method (ties: lower code first), so per-county sums equal §5.1 exactly.
  Longgang's unit gets the whole Longgang population.  The §5.1 note that
  Longwan's figure includes the 浙南产业集聚区 is ignored.
* **Unit locations** [A] (``location_synthetic = true``): no real township
  coordinates exist (domain README §2).  Per county, units are placed in the
  order 街道, 镇, 乡 (code order within a kind) by rejection sampling inside
  the county polygon with a minimum spacing of 0.5·√(county area / units) km
  (relaxed ×0.85 after 400 failed draws).  街道 are drawn from a normal
  distribution around the county seat (σ = max(2 km, 0.25·√(area/π)));
  镇 uniformly; 乡 uniformly but kept with probability
  0.25 + 0.75·min(1, elevation/300 m), which favours the hills.  The two
  offshore island units (南麂镇 of Pingyang, 北麂乡 of Rui'an [K]) are drawn
  uniformly on their county's island polygons (all but the largest polygon,
  0.1 km margin) instead.  Longgang's unit sits at its county seat (real
  DataV seat, ``location_synthetic = false``).
* **Elevation / hilly / coastal** [A]: ``elevation_m`` is
  ``terrain.synthetic_elevation_m`` at the unit's point; ``hilly`` is
  ``elevation_m > 100``; ``coastal`` is "within 8 km of the coast", the coast
  being the sea side of the union of the county polygons: every island ring,
  plus the stretch of the mainland ring between its south-most vertex
  (Cangnan, at the Fujian border) and its east-most vertex north of 28.3°N
  (Yueqing, at the Taizhou border) that lies on the eastern side.
* **Radars** [A]: S-band (range 230 km, 360 s cycle) on the highest synthetic
  terrain within 5 km of the Wencheng and Cangnan county seats (site
  coordinates were not found, §5.2); six X-band phased-array radars (range
  60 km, 60 s cycle) at the anchors in ``X_BAND_SITES``.
* **Rain gauges** (counts [S] from §5.2: 218 new + 235 upgraded automatic,
  300 mountain): every unit gets one automatic station at its own point; the
  other 267 automatic stations are shared out to counties in proportion to
  polygon area (largest remainder) and sampled uniformly inside the county with
  spacing 0.6·√(area / county's automatic stations) km.  A seeded shuffle
  labels 218 of the 453 ``aws_new`` and the rest ``aws_upgraded``; both report
  wind.  The 300 mountain gauges are sampled uniformly over Wenzhou where the
  synthetic elevation exceeds 200 m, at least 3 km apart (every spacing is
  relaxed ×0.85 when 400 draws in a row fail); they report rain only.  Positions are [A].
* **Geo-hazard points** (count 482 [S] from §5.2; positions [A]): sampled
  uniformly over Wenzhou where the synthetic elevation exceeds 100 m and the
  nearest unit of the county is hilly, at least 1.5 km apart.  Hazard type
  [A]: landslide 70 %, collapse 20 %, debris flow 10 %.  Thresholds ("一坡一阈值",
  per point): the §2.3 template table (1/3/6/24 h) scaled by 1.15 [A] (§2.3
  suggests +10–20 % for Wenzhou) and by a per-point factor U(0.85, 1.15) [A];
  effective-rainfall thresholds blue/yellow/orange/red = 120/150/200/250 mm [A]
  (yellow anchored on the §2.3 "R_eff ≥ 150 mm" example) × the per-point
  factor (without the 1.15),
  over 21 days [S] with decay factor 0.8 [K]; deformation-rate thresholds
  2/5/10/20 mm/d (§2.4 placeholders [A]) × a per-point factor U(0.8, 1.25) [A];
  tangent-angle thresholds 45/50/80/85° (45, 80, 85 [S] §2.4; yellow's
  "> 45°" made 50° [A]); rate gate ``min_velocity_mm_per_day`` = 1.0 mm/d [A]
  × the velocity factor.
* **Water-level gauges** (positions [A]: anchors on ``terrain.RIVER_LINES``,
  moved inside the land margin when needed): 3 on the
  Ou, 4 on the Feiyun, 3 on the Ao, 3 on the Wen-Rui canal.  Wen-Rui canal:
  warning 3.12 m and 危险水位 3.62 m [S] (the latter used as the guaranteed
  level [A]), historical maximum 4.12 m [A].  River gauges: no levels were
  found (§3.3, §8), so all [A]: warning 4.50 m where the synthetic ground is
  below 20 m (tidal/plain reach), else ground + 3.0 m; guaranteed = warning +
  1.0 m; historical maximum = warning + 2.0 m.
* **Tide stations** (positions [A]: the estuary ones at hand-picked anchors,
  洞头 and 乐清湾 moved to the nearest point of the coast line): 温州 (Ou
  mouth) 4.00 m, 瑞安 (Feiyun mouth) 3.85 m and 鳌江 (Ao mouth) 3.75 m
  warning tides [D] from §3.3; two
  placeholders [A], 洞头 and 乐清湾, copy 温州's 4.00 m.  Guaranteed = warning
  + 0.60 m [A], historical maximum = warning + 1.20 m [A].
  Levels are in the 1985 national height datum ([S] for the river values in
  §3.3, presumed [K] for the tide values).

Station ids are numbered per kind/network in order of (township code, draw
order).  numpy is used only for arithmetic, never for random draws.  A numpy or
GEOS upgrade could in principle change the last digit of a rounded height or
move a point that lies within rounding distance of a boundary; the unit test
that compares the shipped files with fresh generator output would flag that,
and the files should then be regenerated.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import math
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import numpy as np
import shapely  # type: ignore[import-untyped,unused-ignore]  # shapely 2.2 has no type information
from shapely.geometry import shape as geojson_shape  # type: ignore[import-untyped,unused-ignore]  # as above
from shapely.ops import nearest_points  # type: ignore[import-untyped,unused-ignore]  # as above

from schemas.registry import (
    LONGGANG_UNIT_CODE,
    County,
    GeoHazardInfo,
    HazardType,
    LevelThresholds,
    RadarInfo,
    RainGaugeInfo,
    RainNetwork,
    Station,
    Township,
    TownshipKind,
    WaterBody,
    WaterLevelInfo,
)
from services.common.geo.registry import (
    COUNTIES_CSV,
    COUNTIES_GEOJSON,
    COUNTY_COLUMNS,
    MANIFEST_JSON,
    STATIONS_JSON,
    TOWNSHIP_COLUMNS,
    TOWNSHIPS_CSV,
    TownshipLocator,
)
from services.common.geo.terrain import (
    KM_PER_DEG_LAT,
    KM_PER_DEG_LON,
    ORIGIN_LAT,
    ORIGIN_LON,
    local_xy_km,
    synthetic_elevation_m,
)

DEFAULT_SEED: Final = 3303
REGISTRY_VERSION: Final = "1.0.0"
DOMAIN_TOWNSHIPS_CSV: Final = "wenzhou_townships.csv"

# STANDARDS §5.1 [S]: English name and 2021 year-end population (万 persons).
COUNTY_FACTS: Final[dict[str, tuple[str, str]]] = {
    "330302": ("Lucheng", "118.95"),
    "330303": ("Longwan", "73.29"),
    "330304": ("Ouhai", "97.82"),
    "330305": ("Dongtou", "15.03"),
    "330324": ("Yongjia", "87.00"),
    "330326": ("Pingyang", "86.59"),
    "330327": ("Cangnan", "84.58"),
    "330328": ("Wencheng", "28.85"),
    "330329": ("Taishun", "26.64"),
    "330381": ("Rui'an", "152.58"),
    "330382": ("Yueqing", "146.40"),
    "330383": ("Longgang", "46.77"),
}
CITY_POPULATION_2021: Final = 9_645_000  # §5.1 温州市 total 964.50 万 [S]

INNER_MARGIN_KM: Final = 0.3
ISLAND_MARGIN_KM: Final = 0.1
ISLAND_UNITS: Final = frozenset({"330326119", "330381222"})  # 南麂镇, 北麂乡: offshore islands [K]
KIND_WEIGHT: Final[dict[str, int]] = {"街道": 3, "镇": 2, "乡": 1}
COASTAL_DISTANCE_KM: Final = 8.0
HILLY_ELEVATION_M: Final = 100.0
MOUNTAIN_GAUGE_MIN_ELEVATION_M: Final = 200.0

N_AWS_NEW: Final = 218
N_AWS_UPGRADED: Final = 235
N_MOUNTAIN: Final = 300
N_GEOHAZARD: Final = 482

S_BAND_SITES: Final = (("WENCHENG", "文成", "330328"), ("CANGNAN", "苍南", "330327"))
S_BAND_SEARCH_RADIUS_KM: Final = 5.0
S_BAND_RANGE_KM: Final = 230.0
X_BAND_RANGE_KM: Final = 60.0
X_BAND_SITES: Final = (  # [A] anchors: county seats, plus northern Yongjia's mountains
    ("乐清", 120.967147, 28.116083),
    ("永嘉北部", 120.70, 28.38),
    ("鹿城", 120.674231, 28.003352),
    ("瑞安", 120.646171, 27.779321),
    ("平阳", 120.564387, 27.6693),
    ("泰顺", 119.71624, 27.557309),
)

# §2.3 template (江华县) [S] for shape; scaled ×1.15 [A] for Wenzhou.
RAIN_TEMPLATE_MM: Final[dict[str, tuple[float, float, float, float]]] = {
    "rain_1h_mm": (35, 45, 60, 80),
    "rain_3h_mm": (55, 75, 100, 120),
    "rain_6h_mm": (70, 95, 120, 150),
    "rain_24h_mm": (100, 130, 160, 200),
}
WENZHOU_RAIN_SCALE: Final = 1.15
EFFECTIVE_RAIN_MM: Final = (120.0, 150.0, 200.0, 250.0)
EFFECTIVE_RAIN_WINDOW_DAYS: Final = 21
DECAY_FACTOR: Final = 0.8
VELOCITY_MM_PER_DAY: Final = (2.0, 5.0, 10.0, 20.0)
TANGENT_ANGLE_DEG: Final = (45.0, 50.0, 80.0, 85.0)
MIN_VELOCITY_MM_PER_DAY: Final = 1.0
HAZARD_TYPES: Final[tuple[tuple[HazardType, float], ...]] = (
    ("landslide", 0.70),
    ("collapse", 0.20),
    ("debris_flow", 0.10),
)
HAZARD_ZH: Final[dict[str, str]] = {"landslide": "滑坡", "collapse": "崩塌", "debris_flow": "泥石流"}

DATUM: Final = "1985 National Height Datum (85高程)"
RIVER_GAUGES: Final[tuple[tuple[str, WaterBody, str, float, float], ...]] = (
    ("WL-OU-01", "Ou", "瓯江", 120.47, 28.11),
    ("WL-OU-02", "Ou", "瓯江", 120.60, 28.045),
    ("WL-OU-03", "Ou", "瓯江", 120.72, 28.02),
    ("WL-FEIYUN-01", "Feiyun", "飞云江", 120.00, 27.67),
    ("WL-FEIYUN-02", "Feiyun", "飞云江", 120.22, 27.76),
    ("WL-FEIYUN-03", "Feiyun", "飞云江", 120.40, 27.765),
    ("WL-FEIYUN-04", "Feiyun", "飞云江", 120.58, 27.775),
    ("WL-AO-01", "Ao", "鳌江", 120.28, 27.68),
    ("WL-AO-02", "Ao", "鳌江", 120.40, 27.645),
    ("WL-AO-03", "Ao", "鳌江", 120.51, 27.595),
    ("WL-WENRUI-01", "Wen-Rui canal", "温瑞塘河", 120.67, 27.97),
    ("WL-WENRUI-02", "Wen-Rui canal", "温瑞塘河", 120.665, 27.88),
    ("WL-WENRUI-03", "Wen-Rui canal", "温瑞塘河", 120.645, 27.80),
)
WENRUI_LEVELS_M: Final = (3.12, 3.62, 4.12)
RIVER_PLAIN_WARNING_M: Final = 4.50
RIVER_PLAIN_GROUND_M: Final = 20.0
RIVER_WARNING_ABOVE_GROUND_M: Final = 3.0
RIVER_GUARANTEED_ABOVE_WARNING_M: Final = 1.0
RIVER_MAX_ABOVE_WARNING_M: Final = 2.0
TIDE_GUARANTEED_ABOVE_WARNING_M: Final = 0.60
TIDE_MAX_ABOVE_WARNING_M: Final = 1.20
# fmt: off
TIDE_STATIONS: Final[tuple[tuple[str, str, float, float, bool, float, str], ...]] = (
    # id, name, anchor lon/lat [A], snap to the open coast?, warning tide (m), note
    (
        "TIDE-01", "温州潮位站(瓯江口)", 120.80, 27.97, False, 4.00,
        "warning_level_m 4.00 [D] STANDARDS §3.3 (Maria 2018: 4.32 m, 0.32 above warning; "
        "Morakot 2009: 4.2 m, 0.20 above)",
    ),
    (
        "TIDE-02", "瑞安潮位站(飞云江口)", 120.70, 27.78, False, 3.85,
        "warning_level_m 3.85 [D] STANDARDS §3.3 (Maria 2018: 4.40 m, 0.55 above warning; "
        "3.80 in 2009)",
    ),
    (
        "TIDE-03", "鳌江潮位站(鳌江口)", 120.60, 27.585, False, 3.75,
        "warning_level_m 3.75 [D] STANDARDS §3.3 (Maria 2018: 4.40 m, 0.65 above warning; "
        "3.70 in 2009)",
    ),
    (
        "TIDE-04", "洞头潮位站", 121.156181, 27.836057, True, 4.00,
        "warning_level_m 4.00 [A] placeholder copied from 温州 (no 洞头 value found)",
    ),
    (
        "TIDE-05", "乐清湾潮位站", 121.00, 28.12, True, 4.00,
        "warning_level_m 4.00 [A] placeholder copied from 温州 (no 乐清湾 value found)",
    ),
)
# fmt: on


# --------------------------------------------------------------------------- helpers


class _Rng:
    """Seeded draws built only on ``random.Random.random`` (stable across Pythons)."""

    def __init__(self, seed: int, stage: str) -> None:
        self._random = random.Random(f"{seed}/{stage}")

    def unit(self) -> float:
        return self._random.random()

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * self._random.random()

    def normal(self, mean: float, sigma: float) -> float:
        u1 = 1.0 - self._random.random()  # (0, 1]
        u2 = self._random.random()
        return mean + sigma * math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)

    def index(self, n: int) -> int:
        return min(int(self._random.random() * n), n - 1)

    def shuffled(self, items: Sequence[int]) -> list[int]:
        result = list(items)
        for i in range(len(result) - 1, 0, -1):
            j = self.index(i + 1)
            result[i], result[j] = result[j], result[i]
        return result


def _to_km_geometry(geometry: Any) -> Any:
    def project(coords: np.ndarray[Any, np.dtype[np.float64]]) -> np.ndarray[Any, np.dtype[np.float64]]:
        x, y = local_xy_km(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geometry, project)


def _to_lonlat(x: float, y: float) -> tuple[float, float]:
    return round(ORIGIN_LON + x / KM_PER_DEG_LON, 6), round(ORIGIN_LAT + y / KM_PER_DEG_LAT, 6)


def _xy(lon: float, lat: float) -> tuple[float, float]:
    x, y = local_xy_km(lon, lat)
    return float(x), float(y)


def _elevation(lon: float, lat: float) -> float:
    return round(float(synthetic_elevation_m(lon, lat)), 1)


def _largest_remainder(total: int, weights: Sequence[float]) -> list[int]:
    """Integers proportional to ``weights`` summing exactly to ``total`` (ties: first wins)."""
    weight_sum = sum(weights)
    quotas = [total * w / weight_sum for w in weights]
    result = [math.floor(q) for q in quotas]
    order = sorted(range(len(weights)), key=lambda i: (-(quotas[i] - result[i]), i))
    for i in order[: total - sum(result)]:
        result[i] += 1
    return result


@dataclass
class _Region:
    """A sampling region in km: the polygon shrunk by the margin, prepared."""

    geometry: Any
    bounds: tuple[float, float, float, float]

    @classmethod
    def of(cls, km_geometry: Any, margin_km: float = INNER_MARGIN_KM) -> _Region:
        inner = km_geometry.buffer(-margin_km)
        shapely.prepare(inner)
        minx, miny, maxx, maxy = (float(v) for v in inner.bounds)
        return cls(inner, (minx, miny, maxx, maxy))

    def contains(self, x: float, y: float) -> bool:
        return bool(shapely.contains_xy(self.geometry, x, y))

    def uniform_proposal(self, rng: _Rng) -> Callable[[], tuple[float, float]]:
        minx, miny, maxx, maxy = self.bounds
        return lambda: (rng.uniform(minx, maxx), rng.uniform(miny, maxy))

    def snap(self, x: float, y: float) -> tuple[float, float]:
        """The point itself if inside, else the nearest point of the region."""
        if self.contains(x, y):
            return x, y
        nearest = nearest_points(self.geometry, shapely.Point(x, y))[0]
        return float(nearest.x), float(nearest.y)


def _sample(
    rng: _Rng,
    region: _Region,
    count: int,
    spacing_km: float,
    propose: Callable[[], tuple[float, float]],
    accept: Callable[[float, float], bool] = lambda lon, lat: True,
    existing: Sequence[tuple[float, float]] = (),
) -> list[tuple[float, float]]:
    """Rejection-sample ``count`` lon/lat points in ``region``, ``spacing_km`` apart.

    ``existing`` km points also count for spacing.  After 400 consecutive
    failures the spacing is relaxed by ×0.85.  ``accept`` sees rounded lon/lat.
    """
    taken_x = [p[0] for p in existing]
    taken_y = [p[1] for p in existing]
    points: list[tuple[float, float]] = []
    failures = 0
    while len(points) < count:
        if failures >= 400:
            spacing_km *= 0.85
            failures = 0
        x, y = propose()
        ok = region.contains(x, y)
        if ok and taken_x:
            d2 = (np.asarray(taken_x) - x) ** 2 + (np.asarray(taken_y) - y) ** 2
            ok = bool(d2.min() >= spacing_km * spacing_km)
        if ok:
            lon, lat = _to_lonlat(x, y)
            ok = accept(lon, lat)
        if not ok:
            failures += 1
            continue
        failures = 0
        taken_x.append(x)
        taken_y.append(y)
        points.append(_to_lonlat(x, y))
    return points


# --------------------------------------------------------------------------- build


@dataclass(frozen=True)
class BuiltRegistry:
    counties: tuple[County, ...]
    townships: tuple[Township, ...]
    stations: tuple[Station, ...]
    geojson_bytes: bytes
    manifest: dict[str, Any]


@dataclass(frozen=True)
class _Geography:
    lonlat: dict[str, Any]  # county code -> lon/lat geometry
    km: dict[str, Any]  # county code -> km geometry
    regions: dict[str, _Region]  # county code -> inner sampling region
    wenzhou: _Region  # union of all counties, inner
    coast_km: Any  # MultiLineString (km)


def _read_geography(geojson_bytes: bytes) -> tuple[dict[str, dict[str, Any]], _Geography]:
    features = json.loads(geojson_bytes.decode("utf-8"))["features"]
    properties = {str(f["properties"]["adcode"]): f["properties"] for f in features}
    lonlat = {str(f["properties"]["adcode"]): geojson_shape(f["geometry"]) for f in features}
    km = {code: _to_km_geometry(g) for code, g in lonlat.items()}
    regions = {code: _Region.of(g) for code, g in km.items()}
    union_km = shapely.union_all(list(km.values()))
    return properties, _Geography(lonlat, km, regions, _Region.of(union_km), _coastline(union_km))


def _coastline(union_km: Any) -> Any:
    """Sea side of the union: island rings + the eastern mainland arc (see module doc)."""
    parts = sorted(shapely.get_parts(union_km), key=lambda p: -p.area)
    mainland, islands = parts[0], parts[1:]
    ring = np.asarray(mainland.exterior.coords)[:-1]
    north_limit_y = (28.3 - ORIGIN_LAT) * KM_PER_DEG_LAT
    north_candidates = np.flatnonzero(ring[:, 1] > north_limit_y)
    i_north = int(north_candidates[np.argmax(ring[north_candidates, 0])])
    i_south = int(np.argmin(ring[:, 1]))
    lo, hi = sorted((i_north, i_south))
    arc_a = ring[lo : hi + 1]
    arc_b = np.vstack([ring[hi:], ring[: lo + 1]])
    coast = arc_a if arc_a[:, 0].mean() > arc_b[:, 0].mean() else arc_b
    lines = [shapely.LineString(coast)] + [shapely.LineString(p.exterior.coords) for p in islands]
    return shapely.MultiLineString(lines)


def _build_counties(properties: dict[str, dict[str, Any]]) -> list[County]:
    if set(properties) != set(COUNTY_FACTS):
        raise ValueError(f"GeoJSON adcodes {sorted(properties)} differ from COUNTY_FACTS")
    counties = []
    for code in sorted(COUNTY_FACTS):
        name_en, population_wan = COUNTY_FACTS[code]
        seat_lon, seat_lat = properties[code]["center"]
        counties.append(
            County(
                code=code,
                name_zh=properties[code]["name"],
                name_en=name_en,
                population=int(Decimal(population_wan) * 10_000),
                seat_lon=round(float(seat_lon), 6),
                seat_lat=round(float(seat_lat), 6),
            )
        )
    if sum(c.population for c in counties) != CITY_POPULATION_2021:
        raise ValueError("county populations do not add up to the §5.1 city total")
    return counties


def _read_domain_townships(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        rows = sorted(csv.DictReader(handle), key=lambda r: r["code"])
    for row in rows:
        if row["kind"] not in KIND_WEIGHT or row["county_adcode"] not in COUNTY_FACTS:
            raise ValueError(f"{path.name}: unexpected row {row}")
    return rows


def _coastal(geo: _Geography, lon: float, lat: float) -> bool:
    return bool(shapely.distance(geo.coast_km, shapely.Point(*_xy(lon, lat))) <= COASTAL_DISTANCE_KM)


def _build_townships(
    seed: int, counties: Sequence[County], domain_rows: Sequence[dict[str, str]], geo: _Geography
) -> list[Township]:
    rng = _Rng(seed, "townships")
    townships: list[Township] = []
    for county in counties:
        rows = [r for r in domain_rows if r["county_adcode"] == county.code]
        if not rows:  # Longgang: one unit at its (real) county seat
            lon, lat = county.seat_lon, county.seat_lat
            elevation = _elevation(lon, lat)
            townships.append(
                Township(
                    code=LONGGANG_UNIT_CODE,
                    name_zh=county.name_zh,
                    county_code=county.code,
                    kind="市",
                    population=county.population,
                    lon=lon,
                    lat=lat,
                    location_synthetic=False,
                    elevation_m=elevation,
                    hilly=elevation > HILLY_ELEVATION_M,
                    coastal=_coastal(geo, lon, lat),
                )
            )
            continue
        populations = _largest_remainder(county.population, [KIND_WEIGHT[r["kind"]] for r in rows])
        area = float(geo.km[county.code].area)
        region = geo.regions[county.code]
        spacing = 0.5 * math.sqrt(area / len(rows))
        seat_x, seat_y = _xy(county.seat_lon, county.seat_lat)
        sigma = max(2.0, 0.25 * math.sqrt(area / math.pi))
        placed: dict[str, tuple[float, float]] = {}
        taken: list[tuple[float, float]] = []
        for kind in ("街道", "镇", "乡"):
            for row in (r for r in rows if r["kind"] == kind):
                propose: Callable[[], tuple[float, float]]
                if kind == "街道":
                    propose = _normal_proposal(rng, seat_x, seat_y, sigma)
                else:
                    propose = region.uniform_proposal(rng)

                def accept(lon: float, lat: float, kind: str = kind) -> bool:
                    if kind != "乡":
                        return True
                    keep = 0.25 + 0.75 * min(1.0, max(0.0, _elevation(lon, lat)) / 300.0)
                    return rng.unit() < keep

                unit_region = region
                if row["code"] in ISLAND_UNITS:
                    unit_region = _island_region(geo.km[county.code])
                    propose = unit_region.uniform_proposal(rng)
                (point,) = _sample(rng, unit_region, 1, spacing, propose, accept, taken)
                taken.append(_xy(*point))
                placed[row["code"]] = point
        for row, population in zip(rows, populations, strict=True):
            lon, lat = placed[row["code"]]
            elevation = _elevation(lon, lat)
            townships.append(
                Township(
                    code=row["code"],
                    name_zh=row["name"],
                    county_code=county.code,
                    kind=_township_kind(row["kind"]),
                    population=population,
                    lon=lon,
                    lat=lat,
                    location_synthetic=True,
                    elevation_m=elevation,
                    hilly=elevation > HILLY_ELEVATION_M,
                    coastal=_coastal(geo, lon, lat),
                )
            )
    return townships


def _normal_proposal(rng: _Rng, x: float, y: float, sigma: float) -> Callable[[], tuple[float, float]]:
    return lambda: (rng.normal(x, sigma), rng.normal(y, sigma))


def _island_region(county_km: Any) -> _Region:
    """The county's polygons other than its largest (its offshore islands)."""
    parts = sorted(shapely.get_parts(county_km), key=lambda p: -p.area)
    return _Region.of(shapely.MultiPolygon(parts[1:]), ISLAND_MARGIN_KM)


def _township_kind(kind: str) -> TownshipKind:
    if kind == "街道":
        return "街道"
    if kind == "镇":
        return "镇"
    if kind == "乡":
        return "乡"
    raise ValueError(f"unexpected township kind {kind!r}")


class _Placer:
    """Assigns county and township to station points and builds Station records."""

    def __init__(self, counties: Sequence[County], townships: Sequence[Township], geo: _Geography) -> None:
        self.counties = list(counties)
        self.townships = list(townships)
        self.geo = geo
        codes = [c.code for c in counties]
        self.locator = TownshipLocator(
            codes,
            [geo.lonlat[code] for code in codes],
            [t.county_code for t in townships],
            [t.lon for t in townships],
            [t.lat for t in townships],
        )

    def township_of(self, lon: float, lat: float) -> Township:
        index = self.locator.township_index_at_point(lon, lat)
        if index < 0:
            raise ValueError(f"generated point ({lon}, {lat}) is outside Wenzhou")
        return self.townships[index]

    def snap(self, lon: float, lat: float) -> tuple[float, float]:
        return _to_lonlat(*self.geo.wenzhou.snap(*_xy(lon, lat)))

    def snap_to_coast(self, lon: float, lat: float) -> tuple[float, float]:
        """Nearest point of the coast line, moved inside the land margin."""
        nearest = nearest_points(self.geo.coast_km, shapely.Point(*_xy(lon, lat)))[0]
        return _to_lonlat(*self.geo.wenzhou.snap(float(nearest.x), float(nearest.y)))

    def station(self, station_id: str, kind: str, name: str, lon: float, lat: float, **detail: Any) -> Station:
        township = self.township_of(lon, lat)
        return Station.model_validate(
            {
                "station_id": station_id,
                "kind": kind,
                "name": name,
                "lon": lon,
                "lat": lat,
                "elevation_m": _elevation(lon, lat),
                "county_code": township.county_code,
                "township_code": township.code,
                "location_synthetic": True,
                **detail,
            }
        )


def _build_radars(placer: _Placer, counties: Sequence[County]) -> list[Station]:
    by_code = {c.code: c for c in counties}
    radars = []
    for site, name_zh, county_code in S_BAND_SITES:
        seat = by_code[county_code]
        sx, sy = _xy(seat.seat_lon, seat.seat_lat)
        steps = np.arange(-S_BAND_SEARCH_RADIUS_KM, S_BAND_SEARCH_RADIUS_KM + 1e-9, 0.25)
        gx, gy = (a.ravel() for a in np.meshgrid(sx + steps, sy + steps))
        region = placer.geo.regions[county_code]
        ok = (np.hypot(gx - sx, gy - sy) <= S_BAND_SEARCH_RADIUS_KM) & shapely.contains_xy(region.geometry, gx, gy)
        candidates = [_to_lonlat(float(x), float(y)) for x, y in zip(gx[ok], gy[ok], strict=True)]
        heights = np.round(synthetic_elevation_m([c[0] for c in candidates], [c[1] for c in candidates]), 1)
        lon, lat = candidates[int(np.argmax(heights))]
        radars.append(
            placer.station(
                f"RADAR-S-{site}",
                "radar",
                f"{name_zh}S波段多普勒天气雷达",
                lon,
                lat,
                radar=RadarInfo(band="S", range_km=S_BAND_RANGE_KM, scan_interval_s=360),
            )
        )
    for number, (label, anchor_lon, anchor_lat) in enumerate(X_BAND_SITES, start=1):
        lon, lat = placer.snap(anchor_lon, anchor_lat)
        radars.append(
            placer.station(
                f"RADAR-X-{number:02d}",
                "radar",
                f"X波段相控阵雷达{number:02d}({label})",
                lon,
                lat,
                radar=RadarInfo(band="X", range_km=X_BAND_RANGE_KM, scan_interval_s=60),
            )
        )
    return radars


def _number_by_township(placer: _Placer, points: Sequence[tuple[float, float]]) -> list[tuple[Township, float, float]]:
    located = [(placer.township_of(lon, lat), order, lon, lat) for order, (lon, lat) in enumerate(points)]
    located.sort(key=lambda item: (item[0].code, item[1]))
    return [(township, lon, lat) for township, _, lon, lat in located]


def _build_rain(seed: int, placer: _Placer, counties: Sequence[County]) -> list[Station]:
    rng = _Rng(seed, "rain")
    geo = placer.geo
    automatic: list[tuple[float, float]] = [(t.lon, t.lat) for t in placer.townships]
    extras = _largest_remainder(
        N_AWS_NEW + N_AWS_UPGRADED - len(automatic), [float(geo.km[c.code].area) for c in counties]
    )
    for county, extra in zip(counties, extras, strict=True):
        region = geo.regions[county.code]
        mine = [_xy(t.lon, t.lat) for t in placer.townships if t.county_code == county.code]
        spacing = 0.6 * math.sqrt(float(geo.km[county.code].area) / (len(mine) + extra))
        automatic += _sample(rng, region, extra, spacing, region.uniform_proposal(rng), existing=mine)
    order = rng.shuffled(range(len(automatic)))
    new_indices = set(order[:N_AWS_NEW])
    networks: dict[RainNetwork, list[tuple[float, float]]] = {
        "aws_new": [p for i, p in enumerate(automatic) if i in new_indices],
        "aws_upgraded": [p for i, p in enumerate(automatic) if i not in new_indices],
    }
    networks["mountain"] = _sample(
        rng,
        geo.wenzhou,
        N_MOUNTAIN,
        3.0,
        geo.wenzhou.uniform_proposal(rng),
        accept=lambda lon, lat: _elevation(lon, lat) > MOUNTAIN_GAUGE_MIN_ELEVATION_M,
    )
    prefixes: dict[RainNetwork, tuple[str, str]] = {
        "aws_new": ("RAIN-A", "自动气象站"),
        "aws_upgraded": ("RAIN-U", "自动气象站"),
        "mountain": ("RAIN-M", "山区雨量站"),
    }
    stations: list[Station] = []
    per_township: dict[tuple[str, str], int] = {}
    for network, points in networks.items():
        prefix, suffix = prefixes[network]
        for number, (township, lon, lat) in enumerate(_number_by_township(placer, points), start=1):
            key = (township.code, suffix)
            per_township[key] = per_township.get(key, 0) + 1
            stations.append(
                placer.station(
                    f"{prefix}{number:04d}",
                    "rain",
                    f"{township.name_zh}{suffix}{per_township[key]}",
                    lon,
                    lat,
                    rain=RainGaugeInfo(network=network, reports_wind=network != "mountain"),
                )
            )
    return stations


def _levels(base: Sequence[float], factor: float, digits: int) -> LevelThresholds:
    blue, yellow, orange, red = (round(v * factor, digits) for v in base)
    return LevelThresholds(blue=blue, yellow=yellow, orange=orange, red=red)


def _hazard_type(rng: _Rng) -> HazardType:
    draw = rng.unit()
    for hazard, share in HAZARD_TYPES:
        if draw < share:
            return hazard
        draw -= share
    return HAZARD_TYPES[-1][0]


def _build_geohazard(seed: int, placer: _Placer) -> list[Station]:
    rng = _Rng(seed, "geohazard")
    geo = placer.geo

    def on_hilly_slope(lon: float, lat: float) -> bool:
        return _elevation(lon, lat) > HILLY_ELEVATION_M and placer.township_of(lon, lat).hilly

    points = _sample(rng, geo.wenzhou, N_GEOHAZARD, 1.5, geo.wenzhou.uniform_proposal(rng), accept=on_hilly_slope)
    drawn = []
    for _ in points:  # thresholds are drawn in sampling order, then numbered
        hazard = _hazard_type(rng)
        rain_factor = WENZHOU_RAIN_SCALE * rng.uniform(0.85, 1.15)
        velocity_factor = rng.uniform(0.8, 1.25)
        info = GeoHazardInfo(
            hazard_type=hazard,
            **{name: _levels(base, rain_factor, 0) for name, base in RAIN_TEMPLATE_MM.items()},
            effective_rain_mm=_levels(EFFECTIVE_RAIN_MM, rain_factor / WENZHOU_RAIN_SCALE, 0),
            effective_rain_window_days=EFFECTIVE_RAIN_WINDOW_DAYS,
            decay_factor=DECAY_FACTOR,
            velocity_mm_per_day=_levels(VELOCITY_MM_PER_DAY, velocity_factor, 1),
            tangent_angle_deg=_levels(TANGENT_ANGLE_DEG, 1.0, 1),
            min_velocity_mm_per_day=round(MIN_VELOCITY_MM_PER_DAY * velocity_factor, 1),
        )
        drawn.append(info)
    by_point = dict(zip(points, drawn, strict=True))
    stations = []
    per_township: dict[str, int] = {}
    for number, (township, lon, lat) in enumerate(_number_by_township(placer, points), start=1):
        info = by_point[(lon, lat)]
        per_township[township.code] = per_township.get(township.code, 0) + 1
        name = f"{township.name_zh}{HAZARD_ZH[info.hazard_type]}隐患点{per_township[township.code]}"
        stations.append(placer.station(f"GEO-{number:04d}", "geohazard", name, lon, lat, geohazard=info))
    return stations


def _build_water(placer: _Placer) -> list[Station]:
    stations = []
    for station_id, river, river_zh, anchor_lon, anchor_lat in RIVER_GAUGES:
        lon, lat = placer.snap(anchor_lon, anchor_lat)
        township = placer.township_of(lon, lat)
        if river == "Wen-Rui canal":
            warning, guaranteed, maximum = WENRUI_LEVELS_M
            note = (
                "warning_level_m 3.12 [S] (温瑞塘河 警戒水位, zhwiki mirror, STANDARDS §3.3; normal level 2.92 [S]); "
                "guaranteed_level_m 3.62 = 危险水位 [S], used as the guaranteed level [A]; "
                "historical_max_m 4.12 [A] placeholder; position [A]"
            )
        else:
            ground = _elevation(lon, lat)
            if ground < RIVER_PLAIN_GROUND_M:
                warning = RIVER_PLAIN_WARNING_M
            else:
                warning = round(ground + RIVER_WARNING_ABOVE_GROUND_M, 2)
            guaranteed = round(warning + RIVER_GUARANTEED_ABOVE_WARNING_M, 2)
            maximum = round(warning + RIVER_MAX_ABOVE_WARNING_M, 2)
            note = (
                "all levels [A] placeholders (no station levels found, STANDARDS §3.3/§8): warning = 4.50 m "
                "on the tidal/plain reach (synthetic ground < 20 m) else synthetic ground + 3.0 m; "
                "guaranteed = warning + 1.0 m; historical_max = warning + 2.0 m; position [A]"
            )
        stations.append(
            placer.station(
                station_id,
                "water_level",
                f"{river_zh}水位站({township.name_zh})",
                lon,
                lat,
                water=WaterLevelInfo(
                    river=river,
                    warning_level_m=warning,
                    guaranteed_level_m=guaranteed,
                    historical_max_m=maximum,
                    datum=DATUM,
                    sources=note,
                ),
            )
        )
    for station_id, name, anchor_lon, anchor_lat, open_coast, warning, note in TIDE_STATIONS:
        if open_coast:
            lon, lat = placer.snap_to_coast(anchor_lon, anchor_lat)
        else:
            lon, lat = placer.snap(anchor_lon, anchor_lat)
        stations.append(
            placer.station(
                station_id,
                "tide",
                name,
                lon,
                lat,
                water=WaterLevelInfo(
                    river="tide",
                    warning_level_m=warning,
                    guaranteed_level_m=round(warning + TIDE_GUARANTEED_ABOVE_WARNING_M, 2),
                    historical_max_m=round(warning + TIDE_MAX_ABOVE_WARNING_M, 2),
                    datum=DATUM,
                    sources=note + "; guaranteed_level_m [A] = warning + 0.60 m; "
                    "historical_max_m [A] = warning + 1.20 m; position [A]",
                ),
            )
        )
    return stations


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build(domain_dir: Path, seed: int = DEFAULT_SEED) -> BuiltRegistry:
    """Generate the registry in memory from the domain files (deterministic)."""
    geojson_bytes = (domain_dir / COUNTIES_GEOJSON).read_bytes()
    townships_bytes = (domain_dir / DOMAIN_TOWNSHIPS_CSV).read_bytes()
    properties, geo = _read_geography(geojson_bytes)
    counties = _build_counties(properties)
    townships = _build_townships(seed, counties, _read_domain_townships(domain_dir / DOMAIN_TOWNSHIPS_CSV), geo)
    placer = _Placer(counties, townships, geo)
    stations = (
        _build_radars(placer, counties)
        + _build_rain(seed, placer, counties)
        + _build_geohazard(seed, placer)
        + _build_water(placer)
    )
    manifest = {
        "registry_version": REGISTRY_VERSION,
        "generator": "python -m services.common.geo.build_registry",
        "seed": seed,
        "inputs": {
            COUNTIES_GEOJSON: _sha256(geojson_bytes),
            DOMAIN_TOWNSHIPS_CSV: _sha256(townships_bytes),
        },
        "note": "Synthetic locations and [A] values are documented in build_registry.py and SOURCES.md.",
    }
    return BuiltRegistry(tuple(counties), tuple(townships), tuple(stations), geojson_bytes, manifest)


# --------------------------------------------------------------------------- writing


def _csv_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _csv_text(columns: Sequence[str], rows: Sequence[dict[str, object]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_csv_value(row[c]) for c in columns])
    return buffer.getvalue()


def _json_text(value: object, indent: int = 0) -> str:
    """JSON where containers holding containers get one item per line, others stay inline."""
    pad, inner = " " * indent, " " * (indent + 2)
    if isinstance(value, dict) and any(isinstance(v, dict | list) for v in value.values()):
        items = [f"{inner}{json.dumps(k, ensure_ascii=False)}: {_json_text(v, indent + 2)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, list) and any(isinstance(v, dict | list) for v in value):
        items = [inner + _json_text(v, indent + 2) for v in value]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def write(built: BuiltRegistry, out_dir: Path) -> list[Path]:
    """Write the data files into ``out_dir`` (created if needed); returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    texts = {
        COUNTIES_CSV: _csv_text(COUNTY_COLUMNS, [c.model_dump() for c in built.counties]),
        TOWNSHIPS_CSV: _csv_text(TOWNSHIP_COLUMNS, [t.model_dump() for t in built.townships]),
        STATIONS_JSON: _json_text({"stations": [s.model_dump(mode="json", exclude_none=True) for s in built.stations]})
        + "\n",
        MANIFEST_JSON: _json_text(built.manifest) + "\n",
    }
    written = []
    for name, text in texts.items():
        path = out_dir / name
        path.write_bytes(text.encode("utf-8"))
        written.append(path)
    geojson = out_dir / COUNTIES_GEOJSON
    geojson.write_bytes(built.geojson_bytes)
    written.append(geojson)
    return written


GENERATED_FILES: Final = (COUNTIES_CSV, TOWNSHIPS_CSV, STATIONS_JSON, MANIFEST_JSON, COUNTIES_GEOJSON)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--domain", type=Path, default=Path("/work/shared/domain"), help="domain data folder")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "data", help="output folder")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"random seed (default {DEFAULT_SEED})")
    args = parser.parse_args(argv)
    built = build(args.domain, args.seed)
    for path in write(built, args.out):
        print(f"wrote {path}")
    print(
        f"{len(built.counties)} counties, {len(built.townships)} units, {len(built.stations)} stations",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
