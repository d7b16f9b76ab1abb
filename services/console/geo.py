"""Our own map: county outlines and township cells as SVG paths, from the geo registry.

No tiles and no map library: ``GET /api/geo`` returns everything the browser needs to draw
the city with plain ``<path>`` elements.

1. Projection: equirectangular around the city's centre latitude φ₀ —
   ``x = (lon − lon_min)·cos φ₀·k``, ``y = (lat_max − lat)·k`` — with ``k`` chosen so the
   city is ``width_px`` wide. At Wenzhou's size (≈ 2° across) the distortion is < 1 %.
2. Counties: each registry polygon, simplified (``simplify_deg``, topology preserved) and
   written as ``M … L … Z`` rings (``fill-rule: evenodd`` handles holes).
3. Townships have points, not polygons (there is no public township geometry). Each
   county is split into the Voronoi cells of its own townships and the cells are clipped
   to the county outline, so cells tile every county exactly and never cross a county
   border. A county with one township (龙港市) is one cell.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from shapely.geometry import MultiPoint, MultiPolygon, Point, Polygon
from shapely.geometry.base import BaseGeometry
from shapely.ops import unary_union, voronoi_diagram

from services.dispatch.targeting import COUNTY_NAMES_EN, COUNTY_NAMES_ZH, TownshipInfo

Json = dict[str, Any]


class TownshipLike(Protocol):
    @property
    def code(self) -> str: ...
    @property
    def name_zh(self) -> str: ...
    @property
    def county_code(self) -> str: ...
    @property
    def population(self) -> int: ...
    @property
    def lon(self) -> float: ...
    @property
    def lat(self) -> float: ...


class GeoRegistry(Protocol):
    """What the console uses of ``services.common.geo.registry`` (duck-typed)."""

    @property
    def townships(self) -> object:
        """``Iterable[TownshipLike]`` or ``Mapping[code, TownshipLike]``."""

    @property
    def counties(self) -> object:
        """Iterable (or mapping) of objects with ``code`` and ``name_zh``."""

    def county_polygon(self, code: str) -> Any: ...


@dataclass(frozen=True, slots=True)
class Township:
    code: str
    name_zh: str
    county_code: str
    population: int
    lon: float | None
    lat: float | None


@dataclass(frozen=True, slots=True)
class County:
    code: str
    name_zh: str
    name_en: str


def _values(container: object) -> list[Any]:
    if isinstance(container, Mapping):
        return list(container.values())
    if isinstance(container, Iterable):
        return list(container)
    return []


def registry_townships(registry: GeoRegistry) -> list[Township]:
    out: list[Township] = []
    for t in _values(registry.townships):
        lon, lat = getattr(t, "lon", None), getattr(t, "lat", None)
        out.append(
            Township(
                code=str(t.code),
                name_zh=str(getattr(t, "name_zh", t.code)),
                county_code=str(getattr(t, "county_code", str(t.code)[:6])),
                population=int(getattr(t, "population", 0) or 0),
                lon=None if lon is None else float(lon),
                lat=None if lat is None else float(lat),
            )
        )
    return sorted(out, key=lambda t: t.code)


def registry_counties(registry: GeoRegistry, townships: Iterable[Township] = ()) -> list[County]:
    seen: dict[str, County] = {}
    for c in _values(registry.counties):
        code = str(getattr(c, "code", getattr(c, "adcode", "")))
        if not code:
            continue
        name = str(getattr(c, "name_zh", getattr(c, "name", COUNTY_NAMES_ZH.get(code, code))))
        seen[code] = County(code, name, str(getattr(c, "name_en", COUNTY_NAMES_EN.get(code, name))))
    for t in townships:
        if t.county_code not in seen:
            name = COUNTY_NAMES_ZH.get(t.county_code, t.county_code)
            seen[t.county_code] = County(t.county_code, name, COUNTY_NAMES_EN.get(t.county_code, name))
    return sorted(seen.values(), key=lambda c: c.code)


def towns_lookup(registry: GeoRegistry) -> dict[str, TownshipInfo]:
    """``TownshipLookup`` for dispatch's renderers (CAP, SMS preview)."""
    townships = registry_townships(registry)
    names = {c.code: c.name_zh for c in registry_counties(registry, townships)}
    return {
        t.code: TownshipInfo(t.code, t.name_zh, t.county_code, names.get(t.county_code, t.county_code), t.population)
        for t in townships
    }


def _polygon_of(registry: GeoRegistry, code: str) -> BaseGeometry | None:
    try:
        geom = registry.county_polygon(code)
    except (KeyError, LookupError, ValueError):
        return None
    if geom is None or not isinstance(geom, BaseGeometry) or geom.is_empty:
        return None
    return geom if geom.is_valid else geom.buffer(0)


class Projection:
    def __init__(self, bounds: tuple[float, float, float, float], width_px: float, pad_px: float = 10.0) -> None:
        min_lon, min_lat, max_lon, max_lat = bounds
        self.min_lon, self.max_lat = min_lon, max_lat
        self.coslat = math.cos(math.radians((min_lat + max_lat) / 2))
        span = max((max_lon - min_lon) * self.coslat, 1e-9)
        self.pad = pad_px
        self.k = (width_px - 2 * pad_px) / span
        self.width = width_px
        self.height = (max_lat - min_lat) * self.k + 2 * pad_px

    def xy(self, lon: float, lat: float) -> tuple[float, float]:
        return (self.pad + (lon - self.min_lon) * self.coslat * self.k, self.pad + (self.max_lat - lat) * self.k)


def _ring(coords: Iterable[tuple[float, ...]], proj: Projection) -> str:
    parts: list[str] = []
    last = ""
    for lon, lat, *_ in coords:
        x, y = proj.xy(lon, lat)
        point = f"{x:.1f} {y:.1f}"
        if point != last:
            parts.append(point)
            last = point
    if len(parts) < 3:
        return ""
    return "M" + "L".join(parts) + "Z"


def svg_path(geom: BaseGeometry, proj: Projection) -> str:
    polygons: list[Polygon]
    if isinstance(geom, Polygon):
        polygons = [geom]
    elif isinstance(geom, MultiPolygon):
        polygons = list(geom.geoms)
    else:
        polygons = [g for g in getattr(geom, "geoms", []) if isinstance(g, Polygon)]
    out: list[str] = []
    for poly in polygons:
        out.append(_ring(poly.exterior.coords, proj))
        out.extend(_ring(hole.coords, proj) for hole in poly.interiors)
    return "".join(p for p in out if p)


def township_cells(points: Mapping[str, Point], outline: BaseGeometry) -> dict[str, BaseGeometry]:
    """Voronoi cells of ``points`` clipped to ``outline`` (step 3 of the module docstring)."""
    if not points:
        return {}
    if len(points) == 1:
        return {next(iter(points)): outline}
    minx, miny, maxx, maxy = outline.union(MultiPoint(list(points.values()))).bounds
    frame = Polygon([(minx - 1, miny - 1), (maxx + 1, miny - 1), (maxx + 1, maxy + 1), (minx - 1, maxy + 1)])
    diagram = voronoi_diagram(MultiPoint(list(points.values())), envelope=frame)
    cells: dict[str, BaseGeometry] = {}
    raw = list(diagram.geoms)
    for code, point in points.items():
        for cell in raw:
            if cell.covers(point):
                clipped = cell.intersection(outline)
                if not clipped.is_empty:
                    cells[code] = clipped
                break
    return cells


def build_geo(registry: GeoRegistry, width_px: float = 1000.0, simplify_deg: float = 0.002) -> Json:
    """The ``/api/geo`` document (see the module docstring)."""
    townships = registry_townships(registry)
    counties = registry_counties(registry, townships)
    outlines: dict[str, BaseGeometry] = {}
    for county in counties:
        geom = _polygon_of(registry, county.code)
        if geom is not None:
            outlines[county.code] = geom
    located = [t for t in townships if t.lon is not None and t.lat is not None]
    if outlines:
        bounds = unary_union(list(outlines.values())).bounds
    elif located:
        bounds = MultiPoint([(t.lon, t.lat) for t in located]).buffer(0.05).bounds
    else:
        bounds = (119.6, 27.0, 121.3, 28.6)  # Wenzhou's extent, so an empty registry still draws
    proj = Projection(bounds, width_px)

    cell_paths: dict[str, str] = {}
    for code, outline in outlines.items():
        points = {t.code: Point(t.lon, t.lat) for t in located if t.county_code == code}
        for township_code, cell in township_cells(points, outline).items():
            cell_paths[township_code] = svg_path(cell.simplify(simplify_deg / 2, preserve_topology=True), proj)

    county_docs: list[Json] = []
    for county in counties:
        outline = outlines.get(county.code)
        doc: Json = {"code": county.code, "name_zh": county.name_zh, "name_en": county.name_en, "path": ""}
        if outline is not None:
            doc["path"] = svg_path(outline.simplify(simplify_deg, preserve_topology=True), proj)
            label = outline.representative_point()
            doc["label"] = [round(v, 1) for v in proj.xy(label.x, label.y)]
        county_docs.append(doc)

    town_docs: list[Json] = []
    for t in townships:
        doc = {"code": t.code, "name_zh": t.name_zh, "county_code": t.county_code, "population": t.population}
        if t.lon is not None and t.lat is not None:
            doc["xy"] = [round(v, 1) for v in proj.xy(t.lon, t.lat)]
        doc["cell"] = cell_paths.get(t.code, "")
        town_docs.append(doc)
    return {
        "width": round(proj.width, 1),
        "height": round(proj.height, 1),
        "view_box": f"0 0 {proj.width:.1f} {proj.height:.1f}",
        "counties": county_docs,
        "townships": town_docs,
        "total_population": sum(t.population for t in townships),
    }
