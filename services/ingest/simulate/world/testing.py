"""A small registry stand-in with the real registry's attribute names, for tests.

``mini_registry()`` gives 16 townships (real NBS codes, approximate seat locations [A]) and
a station of every kind: automatic and mountain rain gauges, one S-band and one X-band
radar, four geo-hazard points, three river/canal gauges and a tide station. Levels and
thresholds are placeholders [A]. Anything with these attributes satisfies
``world.network.RegistryLike``; the real ``services.common.geo.registry.GeoRegistry`` does too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from services.common.geo.terrain import synthetic_elevation_m


@dataclass(frozen=True, slots=True)
class Thresholds:
    blue: float
    yellow: float
    orange: float
    red: float


@dataclass(frozen=True, slots=True)
class RainInfo:
    network: str
    reports_wind: bool


@dataclass(frozen=True, slots=True)
class RadarInfo:
    band: str
    range_km: float
    scan_interval_s: int


@dataclass(frozen=True, slots=True)
class GeoHazardInfo:
    effective_rain_mm: Thresholds = Thresholds(60.0, 90.0, 120.0, 160.0)
    effective_rain_window_days: int = 21
    decay_factor: float = 0.8


@dataclass(frozen=True, slots=True)
class WaterInfo:
    river: str
    warning_level_m: float
    guaranteed_level_m: float
    historical_max_m: float


@dataclass(frozen=True, slots=True)
class Township:
    code: str
    name_zh: str
    county_code: str
    lon: float
    lat: float
    elevation_m: float = 0.0
    coastal: bool = False
    hilly: bool = False


@dataclass(frozen=True, slots=True)
class Station:
    station_id: str
    kind: str
    lon: float
    lat: float
    township_code: str
    elevation_m: float = 0.0
    county_code: str = ""
    rain: RainInfo | None = None
    radar: RadarInfo | None = None
    geohazard: GeoHazardInfo | None = None
    water: WaterInfo | None = None


@dataclass(frozen=True, slots=True)
class MiniRegistry:
    townships: tuple[Township, ...] = field(default_factory=tuple)
    stations: tuple[Station, ...] = field(default_factory=tuple)


_TOWNS = (
    ("330302006", "五马街道", 120.655, 28.015),
    ("330302102", "藤桥镇", 120.50, 28.09),
    ("330303001", "永中街道", 120.82, 27.93),
    ("330304108", "泽雅镇", 120.48, 28.00),
    ("330305001", "北岙街道", 121.16, 27.84),
    ("330324001", "东城街道", 120.69, 28.155),
    ("330324110", "岩坦镇", 120.78, 28.45),
    ("330326100", "昆阳镇", 120.565, 27.665),
    ("330327100", "灵溪镇", 120.41, 27.51),
    ("330327118", "马站镇", 120.47, 27.20),
    ("330328100", "大峃镇", 120.09, 27.79),
    ("330329100", "罗阳镇", 119.72, 27.56),
    ("330381001", "安阳街道", 120.645, 27.78),
    ("330382002", "乐成街道", 120.96, 28.12),
    ("330382104", "雁荡镇", 121.07, 28.35),
    ("330383000", "龙港市", 120.55, 27.58),
)


def _elev(lon: float, lat: float) -> float:
    return round(float(synthetic_elevation_m(lon, lat)), 1)


def mini_registry() -> MiniRegistry:
    towns = tuple(
        Township(code=code, name_zh=name, county_code=code[:6], lon=lon, lat=lat, elevation_m=_elev(lon, lat))
        for code, name, lon, lat in _TOWNS
    )
    stations: list[Station] = []
    for i, town in enumerate(towns, start=1):
        stations.append(
            Station(
                station_id=f"RAIN-A{i:04d}",
                kind="rain",
                lon=town.lon + 0.004,
                lat=town.lat - 0.003,
                township_code=town.code,
                county_code=town.county_code,
                elevation_m=_elev(town.lon, town.lat),
                rain=RainInfo(network="aws_new", reports_wind=True),
            )
        )
    mountain = (("RAIN-M0001", 120.45, 28.02, "330304108"), ("RAIN-M0002", 121.05, 28.36, "330382104"))
    for sid, lon, lat, town_code in mountain:
        stations.append(
            Station(sid, "rain", lon, lat, town_code, _elev(lon, lat), town_code[:6], rain=RainInfo("mountain", False))
        )
    stations.append(
        Station(
            "RADAR-S-WENCHENG", "radar", 120.09, 27.79, "330328100", 700.0, "330328", radar=RadarInfo("S", 230.0, 360)
        )
    )
    stations.append(
        Station("RADAR-X-01", "radar", 120.70, 28.00, "330302006", 30.0, "330302", radar=RadarInfo("X", 45.0, 60))
    )
    slopes = (
        ("GEO-0001", 120.47, 28.01, "330304108"),
        ("GEO-0002", 120.76, 28.44, "330324110"),
        ("GEO-0003", 121.06, 28.33, "330382104"),
        ("GEO-0004", 120.10, 27.80, "330328100"),
    )
    for sid, lon, lat, town_code in slopes:
        stations.append(
            Station(sid, "geohazard", lon, lat, town_code, _elev(lon, lat), town_code[:6], geohazard=GeoHazardInfo())
        )
    waters = (
        ("WL-OU-01", "water_level", 120.66, 28.03, "330302006", WaterInfo("Ou", 3.5, 4.5, 5.5)),
        ("WL-AO-01", "water_level", 120.40, 27.645, "330326100", WaterInfo("Ao", 6.0, 7.0, 8.5)),
        ("WL-WENRUI-01", "water_level", 120.67, 27.95, "330302006", WaterInfo("Wen-Rui canal", 3.12, 3.62, 4.0)),
        ("TIDE-01", "tide", 120.86, 27.97, "330303001", WaterInfo("tide", 4.0, 4.6, 5.3)),
    )
    for sid, kind, lon, lat, town_code, water in waters:
        stations.append(Station(sid, kind, lon, lat, town_code, 3.0, town_code[:6], water=water))
    return MiniRegistry(townships=towns, stations=tuple(stations))
