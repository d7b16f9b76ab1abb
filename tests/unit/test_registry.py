"""Tests for the geography/station registry, its loader and its generator."""

from __future__ import annotations

import json
import re
import shutil
import time
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from typer.testing import CliRunner

from schemas.registry import County, LevelThresholds, Station
from services.common.geo import build_registry
from services.common.geo.cli import registry_app
from services.common.geo.registry import (
    DEFAULT_DATA_DIR,
    GeoRegistry,
    RegistryError,
    default_registry,
    load_registry,
)
from services.common.geo.terrain import synthetic_elevation_m

DOMAIN_DIR = Path("/work/shared/domain")

# STANDARDS §5.1, 2021 year-end population (万), restated here independently of the generator.
# fmt: off
POPULATION_2021_WAN = {
    "330302": "118.95", "330303": "73.29", "330304": "97.82", "330305": "15.03",
    "330324": "87.00", "330326": "86.59", "330327": "84.58", "330328": "28.85",
    "330329": "26.64", "330381": "152.58", "330382": "146.40", "330383": "46.77",
}
UNITS_PER_COUNTY = {
    "330302": 14, "330303": 10, "330304": 13, "330305": 8, "330324": 22, "330326": 16,
    "330327": 18, "330328": 17, "330329": 19, "330381": 23, "330382": 25, "330383": 1,
}
# fmt: on
BBOX = (119.625, 27.041, 121.273, 28.612)


@pytest.fixture(scope="module")
def reg() -> GeoRegistry:
    return default_registry()


# --------------------------------------------------------------------------- shipped data


def test_counties_and_units(reg: GeoRegistry) -> None:
    assert len(reg.counties) == 12
    assert len(reg.townships) == 186
    assert Counter(t.kind for t in reg.townships) == {"街道": 67, "镇": 92, "乡": 26, "市": 1}
    assert Counter(t.county_code for t in reg.townships) == UNITS_PER_COUNTY
    longgang = reg.township("330383000")
    assert longgang.kind == "市"
    assert not longgang.location_synthetic
    county = reg.county("330383")
    assert (longgang.lon, longgang.lat) == (county.seat_lon, county.seat_lat)
    assert all(t.location_synthetic for t in reg.townships if t.code != "330383000")


def test_population_per_county_matches_standards(reg: GeoRegistry) -> None:
    for code, wan in POPULATION_2021_WAN.items():
        expected = int(Decimal(wan) * 10_000)
        assert reg.county(code).population == expected
        assert sum(t.population for t in reg.townships_of(code)) == expected
    assert reg.summary().population == 9_645_000
    assert reg.township("330383000").population == 467_700


def test_rain_gauges(reg: GeoRegistry) -> None:
    rain = reg.stations_of("rain")
    assert len(rain) == 753
    networks = Counter(s.rain.network for s in rain if s.rain is not None)
    assert networks == {"aws_new": 218, "aws_upgraded": 235, "mountain": 300}
    for prefix, network, count in (
        ("RAIN-A", "aws_new", 218),
        ("RAIN-U", "aws_upgraded", 235),
        ("RAIN-M", "mountain", 300),
    ):
        ids = sorted(s.station_id for s in rain if s.rain is not None and s.rain.network == network)
        assert ids == [f"{prefix}{n:04d}" for n in range(1, count + 1)]
    automatic_townships = {s.township_code for s in rain if s.rain is not None and s.rain.network != "mountain"}
    assert automatic_townships == {t.code for t in reg.townships}
    mountain = [s for s in rain if s.rain is not None and s.rain.network == "mountain"]
    assert all(s.elevation_m > 200 and not s.rain.reports_wind for s in mountain if s.rain is not None)


def test_radars(reg: GeoRegistry) -> None:
    radars = {s.station_id: s.radar for s in reg.stations_of("radar")}
    assert set(radars) == {"RADAR-S-WENCHENG", "RADAR-S-CANGNAN"} | {f"RADAR-X-{n:02d}" for n in range(1, 7)}
    assert Counter(r.band for r in radars.values() if r is not None) == {"S": 2, "X": 6}
    assert all(r is not None and r.scan_interval_s == (360 if r.band == "S" else 60) for r in radars.values())
    assert reg.station("RADAR-S-WENCHENG").county_code == "330328"
    assert reg.station("RADAR-S-CANGNAN").county_code == "330327"


def test_geohazard_points_in_hilly_townships(reg: GeoRegistry) -> None:
    points = reg.stations_of("geohazard")
    assert sorted(s.station_id for s in points) == [f"GEO-{n:04d}" for n in range(1, 483)]
    assert all(reg.township(s.township_code).hilly for s in points)
    assert reg.summary().geohazard_points == 482
    infos = [s.geohazard for s in points if s.geohazard is not None]
    assert len({i.rain_24h_mm.red for i in infos}) > 20, "thresholds should vary per slope"
    assert all(i.tangent_angle_deg.red == 85.0 and i.effective_rain_window_days == 21 for i in infos)


def test_water_and_tide_stations(reg: GeoRegistry) -> None:
    water = reg.stations_of("water_level")
    assert all(re.fullmatch(r"WL-[A-Z]+-\d{2}", s.station_id) for s in water)
    assert {s.water.river for s in water if s.water is not None} == {"Ou", "Feiyun", "Ao", "Wen-Rui canal"}
    tide = {s.station_id: s.water for s in reg.stations_of("tide")}
    warning = {k: w.warning_level_m for k, w in tide.items() if w is not None}
    assert (warning["TIDE-01"], warning["TIDE-02"], warning["TIDE-03"]) == (4.00, 3.85, 3.75)
    wenrui = [s.water for s in water if s.water is not None and s.water.river == "Wen-Rui canal"]
    assert all((w.warning_level_m, w.guaranteed_level_m) == (3.12, 3.62) for w in wenrui)
    assert all("[A]" in w.sources for w in [*tide.values(), *(s.water for s in water)] if w is not None)


def test_every_township_inside_its_county(reg: GeoRegistry) -> None:
    for township in reg.townships:
        assert shapely.covers(reg.county_polygon(township.county_code), shapely.Point(township.lon, township.lat)), (
            township
        )


def test_township_at_finds_each_township_at_its_own_location(reg: GeoRegistry) -> None:
    for township in reg.townships:
        assert reg.township_at(township.lon, township.lat) == township
    lons = np.array([t.lon for t in reg.townships])
    lats = np.array([t.lat for t in reg.townships])
    assert reg.township_indices_at(lons, lats).tolist() == list(range(len(reg.townships)))


def test_stations_are_assigned_to_the_township_containing_them(reg: GeoRegistry) -> None:
    for station in reg.stations:
        found = reg.township_at(station.lon, station.lat)
        assert found is not None, station.station_id
        assert found.code == station.township_code, station.station_id


def test_township_at_outside_wenzhou(reg: GeoRegistry) -> None:
    assert reg.township_at(122.5, 27.5) is None  # East China Sea
    assert reg.county_at(119.0, 28.0) is None
    grid = reg.township_indices_at(np.array([[122.5, 120.674231]]), np.array([[27.5, 28.003352]]))
    assert grid.shape == (1, 2)
    assert grid[0, 0] == -1
    assert grid[0, 1] >= 0


@settings(max_examples=300, deadline=None)
@given(
    lon=st.floats(min_value=BBOX[0], max_value=BBOX[2], allow_nan=False),
    lat=st.floats(min_value=BBOX[1], max_value=BBOX[3], allow_nan=False),
)
def test_township_at_property(lon: float, lat: float) -> None:
    reg = default_registry()
    township = reg.township_at(lon, lat)
    point = shapely.Point(lon, lat)
    if township is None:
        assert not any(shapely.covers(reg.county_polygon(c.code), point) for c in reg.counties)
    else:
        assert shapely.covers(reg.county_polygon(township.county_code), point)
        assert reg.township_indices_at(lon, lat).item() == reg.townships.index(township)


def test_lookups_and_immutability(reg: GeoRegistry) -> None:
    assert reg.station("GEO-0001").kind == "geohazard"
    assert reg.county("330302").name_en == "Lucheng"
    with pytest.raises(KeyError, match="unknown township code"):
        reg.township("000000000")
    with pytest.raises(ValidationError):
        reg.county("330302").population = 1  # type: ignore[misc]
    assert re.fullmatch(r"1\.0\.0\+[0-9a-f]{12}", reg.version)


def test_default_registry_loads_fast() -> None:
    start = time.perf_counter()
    load_registry()
    assert time.perf_counter() - start < 1.0
    assert default_registry() is default_registry()


# --------------------------------------------------------------------------- models


def test_level_thresholds_must_increase() -> None:
    with pytest.raises(ValidationError, match="increase strictly"):
        LevelThresholds(blue=10, yellow=5, orange=20, red=30)
    levels = LevelThresholds(blue=10, yellow=20, orange=30, red=40)
    assert (levels.level_for(5), levels.level_for(20), levels.level_for(99)) == (None, "yellow", "red")


def test_station_kind_block_and_prefix_are_checked(reg: GeoRegistry) -> None:
    record = reg.station("RAIN-A0001").model_dump()
    with pytest.raises(ValidationError, match="requires id prefix"):
        Station.model_validate({**record, "station_id": "RAIN-M0999"})
    with pytest.raises(ValidationError, match="must not carry"):
        Station.model_validate({**record, "radar": {"band": "S", "range_km": 1, "scan_interval_s": 360}})
    with pytest.raises(ValidationError, match="extra"):
        County.model_validate({**reg.county("330302").model_dump(), "area_km2": 1})


# --------------------------------------------------------------------------- loader errors


def _edit_csv_row(path: Path, code: str, column: str, value: str) -> int:
    """Set ``column`` of the row whose code is ``code``; returns its line number."""
    lines = path.read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    for number, line in enumerate(lines[1:], start=2):
        cells = line.split(",")
        if cells[0] == code:
            cells[header.index(column)] = value
            lines[number - 1] = ",".join(cells)
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
            return number
    raise AssertionError(f"code {code} not found in {path}")


def _edit_stations(path: Path, edit: Callable[[list[dict[str, object]]], None]) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    edit(data["stations"])
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def _break_township_location(d: Path) -> list[str]:
    line = _edit_csv_row(d / "townships.csv", "330302006", "lon", "119.716240")
    return [f"townships.csv row {line} (code 330302006)", "outside the polygon of its county 330302"]


def _break_township_population(d: Path) -> list[str]:
    line = _edit_csv_row(d / "townships.csv", "330302006", "population", "many")
    return [f"townships.csv row {line} (code 330302006): population", "valid integer", "'many'"]


def _break_county_row(d: Path) -> list[str]:
    path = d / "counties.csv"
    path.write_text(
        "".join(ln for ln in path.read_text(encoding="utf-8").splitlines(True) if not ln.startswith("330329,")),
        encoding="utf-8",
    )
    return ["townships.csv row", "unknown county code 330329", "polygon adcode 330329 has no row in counties.csv"]


def _break_duplicate_station(d: Path) -> list[str]:
    _edit_stations(d / "stations.json", lambda s: s.append(dict(s[0])))
    return ["stations.json stations[1261] (RADAR-S-WENCHENG): duplicate station id RADAR-S-WENCHENG"]


def _break_station_outside(d: Path) -> list[str]:
    def edit(stations: list[dict[str, object]]) -> None:
        geo = next(s for s in stations if s["station_id"] == "GEO-0007")
        geo["lon"] = 122.5

    _edit_stations(d / "stations.json", edit)
    return ["stations.json stations[", "(GEO-0007): location (122.5,", "is outside Wenzhou"]


def _break_station_township(d: Path) -> list[str]:
    def edit(stations: list[dict[str, object]]) -> None:
        stations[5]["township_code"] = "330302999"

    _edit_stations(d / "stations.json", edit)
    return ["stations.json stations[5]", "unknown township code 330302999"]


def _break_missing_file(d: Path) -> list[str]:
    (d / "counties.csv").unlink()
    return ["counties.csv: file not found"]


@pytest.mark.parametrize(
    "breaker",
    [
        _break_township_location,
        _break_township_population,
        _break_county_row,
        _break_duplicate_station,
        _break_station_outside,
        _break_station_township,
        _break_missing_file,
    ],
)
def test_validation_errors_name_file_row_and_reason(tmp_path: Path, breaker: Callable[[Path], list[str]]) -> None:
    data = tmp_path / "data"
    shutil.copytree(DEFAULT_DATA_DIR, data)
    expected = breaker(data)
    with pytest.raises(RegistryError) as caught:
        load_registry(data)
    message = str(caught.value)
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in:\n{message}"


def test_cli_validate_reports_problems(tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(DEFAULT_DATA_DIR, data)
    _break_township_location(data)
    result = CliRunner().invoke(registry_app, ["validate", "--data-dir", str(data)])
    assert result.exit_code == 1
    assert "outside the polygon" in result.output


def test_cli_summary() -> None:
    result = CliRunner().invoke(registry_app, ["summary"])
    assert result.exit_code == 0, result.output
    for fragment in ("counties", " 12 ", " 186 ", "9,645,000", " 753 ", " 218 ", " 235 ", " 300 ", " 482 "):
        assert fragment in result.output, fragment


# --------------------------------------------------------------------------- generator


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    first, second = tmp_path_factory.mktemp("gen1"), tmp_path_factory.mktemp("gen2")
    build_registry.write(build_registry.build(DOMAIN_DIR), first)
    build_registry.main(["--domain", str(DOMAIN_DIR), "--out", str(second)])
    return first, second


def test_generator_is_deterministic(generated: tuple[Path, Path]) -> None:
    first, second = generated
    for name in build_registry.GENERATED_FILES:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_shipped_data_equals_generator_output(generated: tuple[Path, Path]) -> None:
    first, _ = generated
    for name in build_registry.GENERATED_FILES:
        assert (first / name).read_bytes() == (DEFAULT_DATA_DIR / name).read_bytes(), (
            f"{name} differs from the generator output; rerun "
            "python -m services.common.geo.build_registry --domain /work/shared/domain --out services/common/geo/data"
        )
    assert (DEFAULT_DATA_DIR / "wenzhou_counties.geojson").read_bytes() == (
        DOMAIN_DIR / "wenzhou_counties.geojson"
    ).read_bytes()


# --------------------------------------------------------------------------- terrain


def test_synthetic_terrain_shape_and_regions(reg: GeoRegistry) -> None:
    lons, lats = np.meshgrid(np.linspace(119.6, 121.3, 40), np.linspace(27.0, 28.6, 30))
    grid = synthetic_elevation_m(lons, lats)
    assert grid.shape == (30, 40)
    assert np.isfinite(grid).all()
    assert grid.min() >= 0
    assert grid.max() <= 1200
    assert float(synthetic_elevation_m(119.9, 27.6)) > 300  # Taishun/Wencheng mountains
    assert float(synthetic_elevation_m(120.75, 28.45)) > 300  # northern Yongjia
    for code in ("330302", "330303", "330305"):  # city plain and Dongtou islands
        county = reg.county(code)
        assert float(synthetic_elevation_m(county.seat_lon, county.seat_lat)) < 20
    for t in reg.townships:
        assert t.hilly == (t.elevation_m > 100)
