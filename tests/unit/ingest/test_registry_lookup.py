"""The station-registry adapter: station kinds → observation kinds, tested with a stand-in
registry (the real one is duck-typed: ``.station(id)`` with ``.kind`` and ``.township_code``)."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass

import pytest

from schemas.rejected import RejectedRecord
from services.ingest.feeds.registry_lookup import registry_lookup
from services.ingest.feeds.testing import SAMPLE_NOW
from services.ingest.gate import IngestGate


@dataclass(frozen=True)
class Station:
    kind: str
    township_code: str | None


class ReturnsNone:
    def __init__(self, stations: dict[str, Station]) -> None:
        self.stations = stations
        self.calls = 0

    def station(self, station_id: str) -> Station | None:
        self.calls += 1
        return self.stations.get(station_id)


class RaisesKeyError(ReturnsNone):
    def station(self, station_id: str) -> Station:
        return self.stations[station_id]


STATIONS = {
    "R1": Station("rain", "330302006"),
    "RADAR-WZ": Station("radar", None),
    "GH1": Station("geohazard", "330328100"),
    "WL1": Station("water_level", "330302023"),
    "TIDE1": Station("tide", "330302023"),
    "SOIL1": Station("soil_moisture", "330302023"),
}


@pytest.mark.parametrize("registry_cls", [ReturnsNone, RaisesKeyError])
@pytest.mark.parametrize(
    ("station_id", "kinds", "township"),
    [
        pytest.param("R1", {"rain"}, "330302006", id="rain"),
        pytest.param("RADAR-WZ", {"radar"}, None, id="radar"),
        pytest.param("GH1", {"geohazard"}, "330328100", id="geohazard"),
        pytest.param("WL1", {"water_level"}, "330302023", id="water-level"),
        pytest.param("TIDE1", {"water_level"}, "330302023", id="tide-is-water-level"),
        pytest.param("SOIL1", set(), "330302023", id="unmapped-kind-produces-nothing"),
    ],
)
def test_station_kinds_map_to_observation_kinds(
    registry_cls: type[ReturnsNone], station_id: str, kinds: set[str], township: str | None
) -> None:
    ref = registry_lookup(registry_cls(STATIONS))(station_id)
    assert ref is not None
    assert ref.kinds == frozenset(kinds)
    assert ref.township_code == township


@pytest.mark.parametrize("registry_cls", [ReturnsNone, RaisesKeyError])
def test_unknown_station_is_none(registry_cls: type[ReturnsNone]) -> None:
    assert registry_lookup(registry_cls(STATIONS))("NOPE") is None


def test_enum_kinds_are_read_by_value_and_refs_are_shared() -> None:
    class Kind(enum.Enum):
        TIDE = "tide"

    @dataclass(frozen=True)
    class EnumStation:
        kind: Kind
        township_code: str | None

    class Registry:
        def station(self, station_id: str) -> EnumStation:
            return EnumStation(Kind.TIDE, "330302023")

    lookup = registry_lookup(Registry())  # type: ignore[arg-type]  # kind is an Enum, read by value
    first, second = lookup("T1"), lookup("T2")
    assert first is not None
    assert first.kinds == frozenset({"water_level"})
    assert first is second


def test_every_lookup_asks_the_registry_so_reloads_show_up() -> None:
    registry = ReturnsNone(dict(STATIONS))
    lookup = registry_lookup(registry)
    assert lookup("NEW") is None
    registry.stations["NEW"] = Station("rain", "330302006")
    assert lookup("NEW") is not None
    assert registry.calls == 2


def test_through_the_gate_tide_accepts_water_level_and_unmapped_kind_is_named() -> None:
    gate = IngestGate(registry_lookup(ReturnsNone(STATIONS)), lambda: SAMPLE_NOW)
    tide = {"kind": "water_level", "station_id": "TIDE1", "observed_at": "2019-08-09T11:55:00Z", "level_m": 3.1}
    accepted = gate.admit(json.dumps(tide), "test")
    assert not isinstance(accepted, RejectedRecord)
    assert accepted.township_code == "330302023"
    refused = gate.admit(json.dumps({**tide, "station_id": "SOIL1"}), "test")
    assert isinstance(refused, RejectedRecord)
    assert refused.reason == "wrong_kind_for_station"
    assert "SOIL1" in refused.detail
