"""What the world needs from the station/township registry, and which stations exist.

The registry (``services.common.geo.registry.default_registry()``) is read only through the
protocols below: attribute names, nothing else. Anything with these attributes works — the
real ``GeoRegistry`` or the small stand-in in ``world.testing``.

Selection (``[stations]`` in the scenario), in order:

1. keep kinds in ``include_kinds``;
2. if ``include_prefixes`` is not empty, keep ids starting with one of them;
3. drop ids starting with any of ``exclude_prefixes``;
4. keep a station when ``hash(seed, station_id) < sample_fraction`` (deterministic, and a
   station's fate never depends on which other stations exist).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from services.ingest.simulate.scenario import Scenario


class RainInfoLike(Protocol):
    @property
    def network(self) -> str: ...
    @property
    def reports_wind(self) -> bool: ...


class RadarInfoLike(Protocol):
    @property
    def band(self) -> str: ...
    @property
    def range_km(self) -> float: ...
    @property
    def scan_interval_s(self) -> int: ...


class LevelThresholdsLike(Protocol):
    @property
    def blue(self) -> float: ...
    @property
    def yellow(self) -> float: ...
    @property
    def orange(self) -> float: ...
    @property
    def red(self) -> float: ...


class GeoHazardInfoLike(Protocol):
    @property
    def effective_rain_mm(self) -> LevelThresholdsLike: ...
    @property
    def effective_rain_window_days(self) -> int: ...
    @property
    def decay_factor(self) -> float: ...


class WaterInfoLike(Protocol):
    @property
    def river(self) -> str: ...
    @property
    def warning_level_m(self) -> float: ...
    @property
    def guaranteed_level_m(self) -> float: ...
    @property
    def historical_max_m(self) -> float: ...


class StationLike(Protocol):
    @property
    def station_id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def lon(self) -> float: ...
    @property
    def lat(self) -> float: ...
    @property
    def elevation_m(self) -> float: ...
    @property
    def township_code(self) -> str: ...
    @property
    def rain(self) -> RainInfoLike | None: ...
    @property
    def radar(self) -> RadarInfoLike | None: ...
    @property
    def geohazard(self) -> GeoHazardInfoLike | None: ...
    @property
    def water(self) -> WaterInfoLike | None: ...


class TownshipLike(Protocol):
    @property
    def code(self) -> str: ...
    @property
    def county_code(self) -> str: ...
    @property
    def lon(self) -> float: ...
    @property
    def lat(self) -> float: ...
    @property
    def elevation_m(self) -> float: ...


class RegistryLike(Protocol):
    @property
    def townships(self) -> Sequence[TownshipLike]: ...
    @property
    def stations(self) -> Sequence[StationLike]: ...


def unit_hash(*parts: object) -> float:
    """A stable uniform number in [0, 1) from the parts (blake2b; not Python's ``hash``)."""
    digest = hashlib.blake2b("\x1f".join(str(p) for p in parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def stable_key(text: str) -> int:
    """A stable 63-bit key for seeding per-station streams."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big") >> 1


@dataclass(frozen=True, slots=True)
class Network:
    """The stations that exist in this scenario, grouped the way the world drives them."""

    aws: tuple[StationLike, ...]
    mountain: tuple[StationLike, ...]
    radars: tuple[StationLike, ...]
    geohazard: tuple[StationLike, ...]
    rivers: tuple[StationLike, ...]
    tides: tuple[StationLike, ...]
    townships: tuple[TownshipLike, ...]

    @property
    def station_count(self) -> int:
        return sum(len(g) for g in (self.aws, self.mountain, self.radars, self.geohazard, self.rivers, self.tides))


def select_network(scenario: Scenario, registry: RegistryLike) -> Network:
    sel = scenario.stations
    kinds = set(sel.include_kinds)
    chosen: list[StationLike] = []
    for station in sorted(registry.stations, key=lambda s: s.station_id):
        if station.kind not in kinds:
            continue
        sid = station.station_id
        if sel.include_prefixes and not sid.startswith(sel.include_prefixes):
            continue
        if sel.exclude_prefixes and sid.startswith(sel.exclude_prefixes):
            continue
        if sel.sample_fraction < 1.0 and unit_hash(scenario.seed, "select", sid) >= sel.sample_fraction:
            continue
        chosen.append(station)
    aws = tuple(s for s in chosen if s.kind == "rain" and (s.rain is None or s.rain.network != "mountain"))
    mountain = tuple(s for s in chosen if s.kind == "rain" and s.rain is not None and s.rain.network == "mountain")
    return Network(
        aws=aws,
        mountain=mountain,
        radars=tuple(s for s in chosen if s.kind == "radar" and s.radar is not None),
        geohazard=tuple(s for s in chosen if s.kind == "geohazard"),
        rivers=tuple(s for s in chosen if s.kind == "water_level" and s.water is not None),
        tides=tuple(s for s in chosen if s.kind == "tide" and s.water is not None),
        townships=tuple(sorted(registry.townships, key=lambda t: t.code)),
    )
