"""``rules_processors(registry=...)``: which processors, and what the lifecycle waits for."""

from __future__ import annotations

import math

import pytest

from services.common.geo.registry import GeoRegistry, default_registry
from services.common.metrics import Metrics
from services.rules.detectors.common import KM_PER_DEG_LAT, KM_PER_DEG_LON_EQUATOR
from services.rules.processors import LifecycleProcessor, rules_processors
from services.rules.registry_config import RADAR_COVER_MARGIN_KM, radars_covering, stations_by_township


@pytest.fixture(scope="module")
def registry() -> GeoRegistry:
    return default_registry()


def test_without_a_registry_only_rain_and_the_lifecycle(registry: GeoRegistry) -> None:
    processors = rules_processors(Metrics(), rain_gauges_by_township={"330302006": frozenset({"G1", "G2"})})
    assert [p.name for p in processors] == ["rules-rainstorm", "rules-lifecycle"]
    lifecycle = processors[-1]
    assert isinstance(lifecycle, LifecycleProcessor)
    expected = lifecycle.expected_sources
    assert expected("rainstorm:330302006") == expected("short_heavy_rain:330302006") == {"G1", "G2"}
    assert expected("gale:330302006") == expected("convection:330302006") == frozenset()


def test_with_a_registry_every_detector(registry: GeoRegistry) -> None:
    processors = rules_processors(Metrics(), registry=registry)
    assert [p.name for p in processors] == [
        "rules-rainstorm",
        "rules-radar",
        "rules-geohazard",
        "rules-water",
        "rules-lifecycle",
    ]
    names = [p.name for p in processors]
    assert len(set(names)) == len(names)  # one consumer group each
    topics = [t for p in processors[:-1] for t in p.topics]
    assert len(set(topics)) == len(topics)  # each observation topic read by one processor


def test_expected_sources_per_hazard(registry: GeoRegistry) -> None:
    lifecycle = rules_processors(Metrics(), registry=registry)[-1]
    assert isinstance(lifecycle, LifecycleProcessor)
    expected = lifecycle.expected_sources
    rain = stations_by_township(registry.stations_of("rain"))
    points = stations_by_township(registry.stations_of("geohazard"))
    radars = radars_covering(registry)
    for town in registry.townships:
        code = town.code
        gauges_and_radars = rain.get(code, frozenset()) | radars.get(code, frozenset())
        assert expected(f"rainstorm:{code}") == gauges_and_radars  # the radar's rainstorm nowcast
        assert expected(f"convection:{code}") == radars.get(code, frozenset())
        assert expected(f"short_heavy_rain:{code}") == gauges_and_radars
        assert expected(f"geohazard:{code}") == points.get(code, frozenset())
        assert expected(f"gale:{code}") == expected(f"typhoon:{code}") == frozenset()
    for station in registry.stations_of("water_level"):
        assert station.station_id in expected(f"flood:{station.township_code}")
        assert station.station_id not in expected(f"tide:{station.township_code}")
    for station in registry.stations_of("tide"):
        assert station.station_id in expected(f"tide:{station.township_code}")
    assert expected("geohazard:330324111") == points["330324111"]
    assert len(points["330324111"]) > 1  # a township with several monitored slopes


def test_a_radar_covers_the_townships_inside_its_scan_window(registry: GeoRegistry) -> None:
    covering = radars_covering(registry)
    assert set(covering) == {t.code for t in registry.townships}  # the S-band radars see everything
    for radar in registry.stations_of("radar"):
        assert radar.radar is not None
        half = radar.radar.range_km - RADAR_COVER_MARGIN_KM
        for town in registry.townships:
            dx = abs(town.lon - radar.lon) * KM_PER_DEG_LON_EQUATOR * math.cos(math.radians(radar.lat))
            dy = abs(town.lat - radar.lat) * KM_PER_DEG_LAT
            assert (radar.station_id in covering[town.code]) == (dx <= half and dy <= half)
    for radar in registry.stations_of("radar"):
        assert radar.radar is not None
        seen = sum(radar.station_id in ids for ids in covering.values())
        if radar.radar.band == "X":
            assert 0 < seen < len(registry.townships)  # 60 km: a part of the city each
        else:
            assert seen == len(registry.townships)
