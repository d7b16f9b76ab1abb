"""Load, validate and query the Wenzhou geography and station registry.

The registry lives in operator-editable files (default: the ``data/`` folder
next to this module; see ``data/SOURCES.md``):

* ``wenzhou_counties.geojson`` — 12 county MultiPolygons (DataV, likely GCJ-02);
* ``counties.csv`` — one row per county (code, names, 2021 population, seat);
* ``townships.csv`` — the 186 dissemination units (185 NBS townships + Longgang);
* ``stations.json`` — rain gauges, radars, geo-hazard points, water-level
  gauges and tide stations, with their kind-specific thresholds;
* ``manifest.json`` — ``registry_version`` and generator provenance.

``load_registry`` parses every file, validates each record with the pydantic
models in ``schemas.registry`` and then checks what needs geometry or several
files: unknown county/township codes, duplicate codes and ids, a township or
station lying outside its county polygon (or outside Wenzhou), per-county
township populations that do not add up to the county figure, counties with
no dissemination unit.  All problems are collected and raised together as one
``RegistryError`` whose lines each name the file, the row/key and the reason.

``GeoRegistry`` wraps the validated ``Registry`` with dictionary lookups and a
point locator.  ``township_at(lon, lat)`` finds the county polygon containing
the point (bounding-box filter, then GEOS ``intersects_xy`` on prepared
polygons, boundary counts as inside) and returns the nearest dissemination unit
of that county by flat-earth distance (``terrain.local_xy_km``); a point outside
every county gives ``None``.  ``township_indices_at`` does the same for whole
numpy arrays (simulator grids).  The registry version is the manifest's
``registry_version`` plus the first 12 hex digits of a SHA-256 over the data
files, so every edit yields a distinct version string.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

import numpy as np
import shapely  # type: ignore[import-untyped,unused-ignore]  # shapely 2.2 has no type information
from numpy.typing import ArrayLike, NDArray
from pydantic import BaseModel, ValidationError
from shapely.geometry import shape as geojson_shape  # type: ignore[import-untyped,unused-ignore]  # as above

from schemas.registry import (
    RAIN_NETWORKS,
    STATION_KINDS,
    County,
    Registry,
    RegistrySummary,
    Station,
    StationKind,
    Township,
)
from services.common.geo.terrain import local_xy_km

DEFAULT_DATA_DIR: Final = Path(__file__).resolve().parent / "data"
COUNTIES_GEOJSON: Final = "wenzhou_counties.geojson"
COUNTIES_CSV: Final = "counties.csv"
TOWNSHIPS_CSV: Final = "townships.csv"
STATIONS_JSON: Final = "stations.json"
MANIFEST_JSON: Final = "manifest.json"
DATA_FILES: Final = (COUNTIES_GEOJSON, COUNTIES_CSV, TOWNSHIPS_CSV, STATIONS_JSON, MANIFEST_JSON)

COUNTY_COLUMNS: Final = tuple(County.model_fields)
TOWNSHIP_COLUMNS: Final = tuple(Township.model_fields)

_MAX_REPORTED_PROBLEMS: Final = 50

Geometry = Any
"""A shapely geometry (shapely has no type information)."""

ModelT = TypeVar("ModelT", bound=BaseModel)


class RegistryError(ValueError):
    """The registry files are invalid; ``problems`` holds one line per problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        shown = list(self.problems[:_MAX_REPORTED_PROBLEMS])
        if len(self.problems) > _MAX_REPORTED_PROBLEMS:
            shown.append(f"... and {len(self.problems) - _MAX_REPORTED_PROBLEMS} more problems")
        count = len(self.problems)
        header = f"invalid registry ({count} problem{'s' if count != 1 else ''}):"
        super().__init__("\n".join([header, *("  - " + line for line in shown)]))


# --------------------------------------------------------------------------- locator


class TownshipLocator:
    """Point → county → nearest dissemination unit, scalar and vectorised.

    Built from county polygons (lon/lat) and township points.  Counties are
    searched in the given order; a point on a shared border goes to the first.
    """

    def __init__(
        self,
        county_codes: Sequence[str],
        county_geometries: Sequence[Geometry],
        township_county_codes: Sequence[str],
        township_lons: ArrayLike,
        township_lats: ArrayLike,
    ) -> None:
        self._county_codes = tuple(county_codes)
        self._geometries = tuple(county_geometries)
        for geometry in self._geometries:
            shapely.prepare(geometry)
        self._bounds: NDArray[np.float64] = np.array(
            [shapely.bounds(g) for g in self._geometries], dtype=np.float64
        ).reshape(-1, 4)
        tx, ty = local_xy_km(township_lons, township_lats)
        members: dict[str, list[int]] = defaultdict(list)
        for index, code in enumerate(township_county_codes):
            members[code].append(index)
        self._members: list[NDArray[np.intp]] = []
        self._member_x: list[NDArray[np.float64]] = []
        self._member_y: list[NDArray[np.float64]] = []
        for code in self._county_codes:
            idx = np.array(members.get(code, []), dtype=np.intp)
            self._members.append(idx)
            self._member_x.append(tx[idx])
            self._member_y.append(ty[idx])

    def county_index_at_point(self, lon: float, lat: float) -> int:
        """Index of the county containing (lon, lat), or -1."""
        b = self._bounds
        candidates = np.flatnonzero((b[:, 0] <= lon) & (lon <= b[:, 2]) & (b[:, 1] <= lat) & (lat <= b[:, 3]))
        for i in candidates:
            if shapely.intersects_xy(self._geometries[i], lon, lat):
                return int(i)
        return -1

    def township_index_at_point(self, lon: float, lat: float) -> int:
        """Index of the nearest township in the containing county, or -1."""
        county = self.county_index_at_point(lon, lat)
        if county < 0 or self._members[county].size == 0:
            return -1
        x, y = local_xy_km(lon, lat)
        d2 = (self._member_x[county] - x) ** 2 + (self._member_y[county] - y) ** 2
        return int(self._members[county][int(np.argmin(d2))])

    def county_indices_at(self, lons: ArrayLike, lats: ArrayLike) -> NDArray[np.intp]:
        """Vectorised ``county_index_at_point``; same shape as the broadcast input."""
        lon_a, lat_a = np.broadcast_arrays(np.asarray(lons, dtype=np.float64), np.asarray(lats, dtype=np.float64))
        result = np.full(lon_a.shape, -1, dtype=np.intp)
        for i, geometry in enumerate(self._geometries):
            b = self._bounds[i]
            open_ = (result == -1) & (b[0] <= lon_a) & (lon_a <= b[2]) & (b[1] <= lat_a) & (lat_a <= b[3])
            if not open_.any():
                continue
            inside = shapely.intersects_xy(geometry, lon_a[open_], lat_a[open_])
            target = np.flatnonzero(open_.ravel())[np.asarray(inside, dtype=bool)]
            result.ravel()[target] = i
        return result

    def township_indices_at(self, lons: ArrayLike, lats: ArrayLike) -> NDArray[np.intp]:
        """Vectorised ``township_index_at_point`` (-1 outside Wenzhou)."""
        lon_a, lat_a = np.broadcast_arrays(np.asarray(lons, dtype=np.float64), np.asarray(lats, dtype=np.float64))
        counties = self.county_indices_at(lon_a, lat_a).ravel()
        x, y = local_xy_km(lon_a.ravel(), lat_a.ravel())
        result = np.full(counties.shape, -1, dtype=np.intp)
        for i, members in enumerate(self._members):
            if members.size == 0:
                continue
            pts = np.flatnonzero(counties == i)
            if pts.size == 0:
                continue
            d2 = (x[pts, None] - self._member_x[i][None, :]) ** 2 + (y[pts, None] - self._member_y[i][None, :]) ** 2
            result[pts] = members[np.argmin(d2, axis=1)]
        return result.reshape(lon_a.shape)


# --------------------------------------------------------------------------- registry


class GeoRegistry:
    """The validated registry with fast lookups (build it with ``load_registry``)."""

    def __init__(self, registry: Registry, county_geometries: Mapping[str, Geometry]) -> None:
        self.registry = registry
        self._counties = {c.code: c for c in registry.counties}
        self._townships = {t.code: t for t in registry.townships}
        self._stations = {s.station_id: s for s in registry.stations}
        self._geometries = dict(county_geometries)
        by_county: dict[str, list[Township]] = defaultdict(list)
        for township in registry.townships:
            by_county[township.county_code].append(township)
        self._townships_of = {code: tuple(by_county.get(code, ())) for code in self._counties}
        by_kind: dict[str, list[Station]] = defaultdict(list)
        for station in registry.stations:
            by_kind[station.kind].append(station)
        self._stations_of = {kind: tuple(by_kind.get(kind, ())) for kind in STATION_KINDS}
        county_codes = [c.code for c in registry.counties]
        self._locator = TownshipLocator(
            county_codes,
            [self._geometries[code] for code in county_codes],
            [t.county_code for t in registry.townships],
            [t.lon for t in registry.townships],
            [t.lat for t in registry.townships],
        )

    @property
    def version(self) -> str:
        return self.registry.version

    @property
    def counties(self) -> tuple[County, ...]:
        return self.registry.counties

    @property
    def townships(self) -> tuple[Township, ...]:
        """Dissemination units; ``township_indices_at`` indexes into this tuple."""
        return self.registry.townships

    @property
    def stations(self) -> tuple[Station, ...]:
        return self.registry.stations

    def county(self, code: str) -> County:
        try:
            return self._counties[code]
        except KeyError:
            raise KeyError(f"unknown county code {code!r}") from None

    def township(self, code: str) -> Township:
        try:
            return self._townships[code]
        except KeyError:
            raise KeyError(f"unknown township code {code!r}") from None

    def station(self, station_id: str) -> Station:
        try:
            return self._stations[station_id]
        except KeyError:
            raise KeyError(f"unknown station id {station_id!r}") from None

    def stations_of(self, kind: StationKind) -> tuple[Station, ...]:
        return self._stations_of[kind]

    def townships_of(self, county_code: str) -> tuple[Township, ...]:
        self.county(county_code)
        return self._townships_of[county_code]

    def county_polygon(self, code: str) -> Geometry:
        """The county's shapely (Multi)Polygon in lon/lat (prepared; do not mutate)."""
        self.county(code)
        return self._geometries[code]

    def county_at(self, lon: float, lat: float) -> County | None:
        index = self._locator.county_index_at_point(lon, lat)
        return None if index < 0 else self.registry.counties[index]

    def township_at(self, lon: float, lat: float) -> Township | None:
        """Nearest dissemination unit within the county containing the point."""
        index = self._locator.township_index_at_point(lon, lat)
        return None if index < 0 else self.registry.townships[index]

    def township_indices_at(self, lons: ArrayLike, lats: ArrayLike) -> NDArray[np.intp]:
        """Vectorised ``township_at``: indices into ``townships`` (-1 outside)."""
        return self._locator.township_indices_at(lons, lats)

    def summary(self) -> RegistrySummary:
        rain = self.stations_of("rain")
        radar = self.stations_of("radar")
        networks = Counter(s.rain.network for s in rain if s.rain is not None)
        bands = Counter(s.radar.band for s in radar if s.radar is not None)
        units_by_kind = Counter(t.kind for t in self.townships)
        return RegistrySummary(
            version=self.version,
            counties=len(self.counties),
            dissemination_units=len(self.townships),
            units_by_kind={kind: units_by_kind[kind] for kind in ("街道", "镇", "乡", "市") if kind in units_by_kind},
            population=sum(c.population for c in self.counties),
            hilly_units=sum(t.hilly for t in self.townships),
            coastal_units=sum(t.coastal for t in self.townships),
            stations_by_kind={kind: len(self.stations_of(kind)) for kind in STATION_KINDS},
            rain_gauges_by_network={n: networks.get(n, 0) for n in RAIN_NETWORKS},
            radars_by_band={band: bands.get(band, 0) for band in ("S", "X")},
            geohazard_points=len(self.stations_of("geohazard")),
        )


# --------------------------------------------------------------------------- loading


def _format_validation_error(where: str, error: ValidationError) -> list[str]:
    lines = []
    for item in error.errors(include_url=False):
        field = ".".join(str(part) for part in item["loc"]) or "record"
        value = item.get("input")
        shown = "" if isinstance(value, dict) else f" (got {value!r})"
        lines.append(f"{where}: {field}: {item['msg']}{shown}")
    return lines


def _validate(model: type[ModelT], data: object, where: str, problems: list[str]) -> ModelT | None:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        problems.extend(_format_validation_error(where, error))
        return None


def _read_csv(path: Path, columns: Sequence[str], problems: list[str]) -> list[tuple[int, dict[str, str]]]:
    """Rows as (line number, row) after checking the header names exactly ``columns``."""
    name = path.name
    with path.open(encoding="utf-8-sig", newline="") as handle:  # -sig: accept spreadsheet BOMs
        reader = csv.DictReader(handle)
        header = list(reader.fieldnames or [])
        missing = [c for c in columns if c not in header]
        unknown = [c for c in header if c not in columns]
        if missing or unknown:
            detail = []
            if missing:
                detail.append(f"missing column(s) {missing}")
            if unknown:
                detail.append(f"unknown column(s) {unknown}")
            problems.append(f"{name} header: {'; '.join(detail)}; expected {list(columns)}")
            return []
        rows = []
        for row in reader:
            if None in row or any(value is None for value in row.values()):
                problems.append(f"{name} row {reader.line_num}: wrong number of fields")
                continue
            rows.append((reader.line_num, dict(row)))
        return rows


def _read_geojson(path: Path, problems: list[str]) -> dict[str, Geometry]:
    name = path.name
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        features = data["features"]
    except (ValueError, KeyError, TypeError) as error:
        problems.append(f"{name}: not a GeoJSON FeatureCollection ({error})")
        return {}
    geometries: dict[str, Geometry] = {}
    for index, feature in enumerate(features):
        where = f"{name} features[{index}]"
        try:
            code = str(feature["properties"]["adcode"])
            geometry = geojson_shape(feature["geometry"])
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            problems.append(f"{where}: cannot read adcode/geometry ({error!r})")
            continue
        if geometry.geom_type not in ("Polygon", "MultiPolygon"):
            problems.append(f"{where} (adcode {code}): geometry is {geometry.geom_type}, expected (Multi)Polygon")
        elif not geometry.is_valid:
            problems.append(f"{where} (adcode {code}): invalid geometry ({shapely.is_valid_reason(geometry)})")
        elif code in geometries:
            problems.append(f"{where}: duplicate adcode {code}")
        else:
            geometries[code] = geometry
    return geometries


def _registry_version(data_dir: Path, problems: list[str]) -> str:
    path = data_dir / MANIFEST_JSON
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        base = manifest["registry_version"]
        if not isinstance(base, str) or not base:
            raise TypeError("registry_version must be a non-empty string")
    except (ValueError, KeyError, TypeError) as error:
        problems.append(f"{MANIFEST_JSON}: cannot read 'registry_version' ({error})")
        base = "unknown"
    digest = hashlib.sha256()
    for name in DATA_FILES:
        file = data_dir / name
        if file.is_file():
            digest.update(name.encode())
            digest.update(file.read_bytes())
    return f"{base}+{digest.hexdigest()[:12]}"


def _duplicates(keys: Iterable[str]) -> set[str]:
    return {key for key, count in Counter(keys).items() if count > 1}


def load_registry(data_dir: Path | None = None) -> GeoRegistry:
    """Read and validate the registry in ``data_dir`` (default: the package data).

    Raises ``RegistryError`` listing every problem found.
    """
    data_dir = DEFAULT_DATA_DIR if data_dir is None else Path(data_dir)
    missing = [name for name in DATA_FILES if not (data_dir / name).is_file()]
    if missing:
        raise RegistryError([f"{name}: file not found in {data_dir}" for name in missing])
    problems: list[str] = []

    geometries = _read_geojson(data_dir / COUNTIES_GEOJSON, problems)
    counties = _load_counties(data_dir, geometries, problems)
    county_by_code = {c.code: c for c in counties}
    townships = _load_townships(data_dir, county_by_code, geometries, problems)
    township_by_code = {t.code: t for t in townships}
    stations = _load_stations(data_dir, county_by_code, township_by_code, geometries, problems)
    version = _registry_version(data_dir, problems)
    if problems:
        raise RegistryError(problems)
    registry = Registry(counties=tuple(counties), townships=tuple(townships), stations=tuple(stations), version=version)
    return GeoRegistry(registry, {code: geometries[code] for code in county_by_code})


def _load_counties(data_dir: Path, geometries: Mapping[str, Geometry], problems: list[str]) -> list[County]:
    counties: list[County] = []
    seen: set[str] = set()
    for line, row in _read_csv(data_dir / COUNTIES_CSV, COUNTY_COLUMNS, problems):
        where = f"{COUNTIES_CSV} row {line} (code {row.get('code')})"
        county = _validate(County, row, where, problems)
        if county is None:
            continue
        if county.code in seen:
            problems.append(f"{where}: duplicate county code {county.code}")
            continue
        seen.add(county.code)
        geometry = geometries.get(county.code)
        if geometry is None:
            problems.append(f"{where}: no polygon with adcode {county.code} in {COUNTIES_GEOJSON}")
            continue
        if not shapely.intersects_xy(geometry, county.seat_lon, county.seat_lat):
            problems.append(f"{where}: seat ({county.seat_lon}, {county.seat_lat}) is outside the county polygon")
        counties.append(county)
    for code in sorted(set(geometries) - seen):
        problems.append(f"{COUNTIES_GEOJSON}: polygon adcode {code} has no row in {COUNTIES_CSV}")
    return counties


def _load_townships(
    data_dir: Path,
    counties: Mapping[str, County],
    geometries: Mapping[str, Geometry],
    problems: list[str],
) -> list[Township]:
    townships: list[Township] = []
    seen: set[str] = set()
    for line, row in _read_csv(data_dir / TOWNSHIPS_CSV, TOWNSHIP_COLUMNS, problems):
        where = f"{TOWNSHIPS_CSV} row {line} (code {row.get('code')})"
        township = _validate(Township, row, where, problems)
        if township is None:
            continue
        if township.code in seen:
            problems.append(f"{where}: duplicate township code {township.code}")
            continue
        seen.add(township.code)
        county = counties.get(township.county_code)
        if county is None:
            problems.append(f"{where}: unknown county code {township.county_code}")
            continue
        if not shapely.intersects_xy(geometries[county.code], township.lon, township.lat):
            problems.append(
                f"{where}: location ({township.lon}, {township.lat}) is outside the polygon of its county "
                f"{county.code} {county.name_zh}"
            )
        townships.append(township)
    totals: Counter[str] = Counter()
    for township in townships:
        totals[township.county_code] += township.population
    for code, county in counties.items():
        if not any(t.county_code == code for t in townships):
            problems.append(f"{TOWNSHIPS_CSV}: county {code} {county.name_zh} has no dissemination unit")
        elif totals[code] != county.population:
            problems.append(
                f"{TOWNSHIPS_CSV}: populations of county {code} {county.name_zh} sum to {totals[code]}, "
                f"but {COUNTIES_CSV} gives {county.population}"
            )
    return townships


def _load_stations(
    data_dir: Path,
    counties: Mapping[str, County],
    townships: Mapping[str, Township],
    geometries: Mapping[str, Geometry],
    problems: list[str],
) -> list[Station]:
    try:
        raw = json.loads((data_dir / STATIONS_JSON).read_text(encoding="utf-8"))
        records = raw["stations"]
        if not isinstance(records, list):
            raise TypeError("'stations' must be a list")
    except (ValueError, KeyError, TypeError) as error:
        problems.append(f"{STATIONS_JSON}: expected an object with a 'stations' list ({error})")
        return []
    wenzhou = shapely.union_all([geometries[code] for code in counties if code in geometries])
    shapely.prepare(wenzhou)
    stations: list[Station] = []
    seen: set[str] = set()
    for index, record in enumerate(records):
        ident = record.get("station_id") if isinstance(record, dict) else None
        where = f"{STATIONS_JSON} stations[{index}] ({ident})"
        station = _validate(Station, record, where, problems)
        if station is None:
            continue
        if station.station_id in seen:
            problems.append(f"{where}: duplicate station id {station.station_id}")
            continue
        seen.add(station.station_id)
        county = counties.get(station.county_code)
        township = townships.get(station.township_code)
        if county is None:
            problems.append(f"{where}: unknown county code {station.county_code}")
            continue
        if township is None:
            problems.append(f"{where}: unknown township code {station.township_code}")
            continue
        if township.county_code != station.county_code:
            problems.append(
                f"{where}: township {township.code} belongs to county {township.county_code}, not {station.county_code}"
            )
            continue
        if not shapely.intersects_xy(wenzhou, station.lon, station.lat):
            problems.append(f"{where}: location ({station.lon}, {station.lat}) is outside Wenzhou")
            continue
        if not shapely.intersects_xy(geometries[county.code], station.lon, station.lat):
            problems.append(
                f"{where}: location ({station.lon}, {station.lat}) is outside its county {county.code} {county.name_zh}"
            )
            continue
        stations.append(station)
    return stations


@functools.lru_cache(maxsize=1)
def default_registry() -> GeoRegistry:
    """The registry shipped in the package data folder, loaded once per process."""
    return load_registry()
