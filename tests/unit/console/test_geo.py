"""Our own map geometry: projection, county paths, township cells tiling each county."""

from __future__ import annotations

import pytest
from shapely.geometry import Point, box
from shapely.ops import unary_union

from services.console.geo import Projection, build_geo, registry_townships, towns_lookup, township_cells
from services.console.testing import small_registry


def test_projection_keeps_north_up_and_fits_the_width() -> None:
    proj = Projection((120.0, 27.0, 121.0, 28.0), width_px=1000, pad_px=10)
    west_north = proj.xy(120.0, 28.0)
    east_south = proj.xy(121.0, 27.0)
    assert west_north == pytest.approx((10.0, 10.0))
    assert east_south[0] == pytest.approx(990.0)
    assert east_south[1] > west_north[1]


def test_cells_tile_each_county_exactly() -> None:
    outline = box(0, 0, 10, 10)
    points = {"a": Point(2, 2), "b": Point(8, 3), "c": Point(5, 8)}
    cells = township_cells(points, outline)
    assert set(cells) == {"a", "b", "c"}
    assert unary_union(list(cells.values())).area == pytest.approx(outline.area)
    assert sum(c.area for c in cells.values()) == pytest.approx(outline.area)
    for code, point in points.items():
        assert cells[code].covers(point)


def test_a_county_with_one_township_is_one_cell() -> None:
    outline = box(0, 0, 3, 3)
    assert township_cells({"only": Point(1, 1)}, outline) == {"only": outline}


def test_build_geo_document() -> None:
    geo = build_geo(small_registry())
    assert geo["view_box"].startswith("0 0 1000.0 ")
    assert [c["code"] for c in geo["counties"]] == ["330302", "330304", "330383"]
    assert all(c["path"].startswith("M") and c["path"].endswith("Z") for c in geo["counties"])
    assert len(geo["townships"]) == 10
    assert all(t["cell"] for t in geo["townships"])
    assert geo["total_population"] == sum(t.population for t in small_registry().townships)


def test_towns_lookup_names_the_county() -> None:
    towns = towns_lookup(small_registry())
    assert towns["330304103"].county_name_zh == "瓯海区"
    assert towns["330304103"].population == 28000


def test_the_real_registry_when_installed() -> None:
    registry_module = pytest.importorskip("services.common.geo.registry")
    try:
        registry = registry_module.default_registry()
    except Exception as exc:  # data not generated yet
        pytest.skip(f"geo registry data not available: {exc}")
    geo = build_geo(registry)
    assert len(geo["counties"]) == 12
    assert len(geo["townships"]) == len(registry_townships(registry)) == 186
    assert sum(1 for t in geo["townships"] if t["cell"]) == 186


def test_the_console_names_townships_as_dispatch_does() -> None:
    """CAP in the detail is rendered with the console's lookup: it must match dispatch's."""
    registry_module = pytest.importorskip("services.common.geo.registry")
    try:
        registry = registry_module.default_registry()
    except Exception as exc:  # data not generated yet
        pytest.skip(f"geo registry data not available: {exc}")
    from services.dispatch.targeting import RegistryLookup

    ours, dispatch = towns_lookup(registry), RegistryLookup(registry)
    assert [c for c in ours if ours[c] != dispatch[c]] == []
