"""Geography and station registry models for Wenzhou (data contract, no I/O).

These frozen pydantic models describe the files under
``services/common/geo/data/`` once they are parsed.  The loader
(``services.common.geo.registry.load_registry``) adds the checks that need
geometry or several files at once (county polygons, referential integrity,
duplicate ids); the models here hold the checks that need only one record.

Conventions
-----------
* Coordinates are decimal degrees in the datum of the DataV county polygons
  (most likely GCJ-02, about 0.5 km off WGS-84; see ``data/SOURCES.md``).
* Units are in field names (``_m``, ``_km``, ``_s``, ``_mm``, ``_deg``,
  ``_mm_per_day``).  Water levels are metres above the 1985 national height
  datum.
* ``population`` is a head count of persons (not 万).
* Station ids carry their kind in a prefix that other services rely on::

      RAIN-A0001..  new automatic rain/weather stations     (network aws_new)
      RAIN-U0001..  upgraded automatic stations             (network aws_upgraded)
      RAIN-M0001..  mountain rain gauges                    (network mountain)
      RADAR-S-<NAME>, RADAR-X-NN                            (band S / X)
      GEO-0001..    professional geo-hazard monitoring points
      WL-<RIVER>-NN river / canal water-level gauges
      TIDE-NN       tide stations
"""

from __future__ import annotations

import itertools
import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

WarningColour = Literal["blue", "yellow", "orange", "red"]
"""The four warning colours, lowest first (四级 blue … 一级 red)."""

WARNING_COLOURS: tuple[WarningColour, ...] = ("blue", "yellow", "orange", "red")

TownshipKind = Literal["街道", "镇", "乡", "市"]
"""NBS township-level kinds; "市" is used only for Longgang as a single unit."""

StationKind = Literal["rain", "radar", "geohazard", "water_level", "tide"]
STATION_KINDS: tuple[StationKind, ...] = ("rain", "radar", "geohazard", "water_level", "tide")

RainNetwork = Literal["aws_new", "aws_upgraded", "mountain"]
RAIN_NETWORKS: tuple[RainNetwork, ...] = ("aws_new", "aws_upgraded", "mountain")

RadarBand = Literal["S", "X"]
HazardType = Literal["landslide", "debris_flow", "collapse"]
WaterBody = Literal["Ou", "Feiyun", "Ao", "Wen-Rui canal", "tide"]

LONGGANG_UNIT_CODE = "330383000"
"""Code given to 龙港市 as one dissemination unit (it has no townships)."""


Longitude = Annotated[float, Field(ge=-180.0, le=180.0)]
Latitude = Annotated[float, Field(ge=-90.0, le=90.0)]


class County(BaseModel):
    """A county-level division (区/县/县级市) of Wenzhou."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str = Field(pattern=r"^\d{6}$", description="6-digit adcode, e.g. 330302")
    name_zh: str = Field(min_length=1)
    name_en: str = Field(min_length=1)
    population: int = Field(ge=0, description="persons, 2021 year-end (STANDARDS §5.1)")
    seat_lon: Longitude
    seat_lat: Latitude


class Township(BaseModel):
    """A dissemination unit: an NBS township-level unit, or Longgang as a whole."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str = Field(pattern=r"^\d{9}$", description="9-digit NBS code; 330383000 = Longgang")
    name_zh: str = Field(min_length=1)
    county_code: str = Field(pattern=r"^\d{6}$")
    kind: TownshipKind
    population: int = Field(ge=0, description="persons")
    lon: Longitude
    lat: Latitude
    location_synthetic: bool = Field(description="True when lon/lat were generated, not surveyed (see build_registry)")
    elevation_m: float
    hilly: bool = Field(description="elevation_m > 100 m at generation time; editable")
    coastal: bool = Field(description="within ~8 km of the sea-side boundary at generation")

    @model_validator(mode="after")
    def _code_matches_county(self) -> Township:
        if not self.code.startswith(self.county_code):
            raise ValueError(f"township code {self.code} does not start with its county_code {self.county_code}")
        if (self.kind == "市") != (self.code == LONGGANG_UNIT_CODE):
            raise ValueError(
                f"kind '市' is reserved for the Longgang unit {LONGGANG_UNIT_CODE} "
                f"(got kind {self.kind!r} for code {self.code})"
            )
        return self


class LevelThresholds(BaseModel):
    """One threshold per warning colour; must increase strictly blue → red."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    blue: float
    yellow: float
    orange: float
    red: float

    @model_validator(mode="after")
    def _strictly_increasing(self) -> LevelThresholds:
        values = [self.blue, self.yellow, self.orange, self.red]
        if any(lo >= hi for lo, hi in itertools.pairwise(values)):
            raise ValueError(f"thresholds must increase strictly blue < yellow < orange < red, got {values}")
        return self

    def threshold(self, colour: WarningColour) -> float:
        value: float = getattr(self, colour)
        return value

    def level_for(self, value: float) -> WarningColour | None:
        """Highest colour whose threshold ``value`` reaches (``>=``), or None."""
        reached: WarningColour | None = None
        for colour in WARNING_COLOURS:
            if value >= self.threshold(colour):
                reached = colour
        return reached


class RainGaugeInfo(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    network: RainNetwork
    reports_wind: bool = Field(description="automatic weather stations also report wind")


class RadarInfo(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    band: RadarBand
    range_km: float = Field(gt=0)
    scan_interval_s: int = Field(gt=0, description="volume-scan cycle: 360 s S-band, 60 s X-band")


class GeoHazardInfo(BaseModel):
    """Per-slope ("一坡一阈值") warning thresholds of one monitored hazard point.

    Rain (STANDARDS §2.3): a colour is reached when ANY window total reaches
    that colour's ``rain_<w>h_mm`` threshold, or when the effective
    (antecedent) rainfall ``R_eff = R_0 + Σ_{i=1..n} k^i R_i`` over
    ``effective_rain_window_days`` days with ``k = decay_factor`` reaches
    ``effective_rain_mm``.

    Deformation (STANDARDS §2.4): ``velocity_mm_per_day`` per colour, and the
    improved tangent angle α per colour in ``tangent_angle_deg`` (α ≥
    threshold), the latter only counting while the displacement rate is at
    least ``min_velocity_mm_per_day`` so that noise cannot raise a colour.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    hazard_type: HazardType
    rain_1h_mm: LevelThresholds
    rain_3h_mm: LevelThresholds
    rain_6h_mm: LevelThresholds
    rain_24h_mm: LevelThresholds
    effective_rain_mm: LevelThresholds
    effective_rain_window_days: int = Field(ge=1, le=60)
    decay_factor: float = Field(gt=0.0, lt=1.0)
    velocity_mm_per_day: LevelThresholds
    tangent_angle_deg: LevelThresholds
    min_velocity_mm_per_day: float = Field(ge=0.0)

    @model_validator(mode="after")
    def _angles_in_range(self) -> GeoHazardInfo:
        angles = self.tangent_angle_deg
        if angles.blue <= 0.0 or angles.red >= 90.0:
            raise ValueError("tangent_angle_deg thresholds must lie in (0°, 90°)")
        return self


class WaterLevelInfo(BaseModel):
    """Warning levels of a river/canal gauge or a tide station (STANDARDS §3)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    river: WaterBody = Field(description="water body; 'tide' for tide stations")
    warning_level_m: float = Field(description="警戒水位/警戒潮位")
    guaranteed_level_m: float = Field(description="保证水位 (danger level for plain networks)")
    historical_max_m: float = Field(description="highest recorded level")
    datum: str = Field(min_length=1)
    sources: str = Field(min_length=1, description="which values are [S]/[D] and which [A]")

    @model_validator(mode="after")
    def _ordered(self) -> WaterLevelInfo:
        if not self.warning_level_m < self.guaranteed_level_m < self.historical_max_m:
            raise ValueError(
                "levels must satisfy warning_level_m < guaranteed_level_m < historical_max_m, got "
                f"{self.warning_level_m} / {self.guaranteed_level_m} / {self.historical_max_m}"
            )
        return self


_ID_PATTERNS: dict[StationKind, re.Pattern[str]] = {
    "rain": re.compile(r"^RAIN-[AUM]\d{4}$"),
    "radar": re.compile(r"^RADAR-[SX]-[A-Z0-9]+$"),
    "geohazard": re.compile(r"^GEO-\d{4}$"),
    "water_level": re.compile(r"^WL-[A-Z]+-\d{2}$"),
    "tide": re.compile(r"^TIDE-\d{2}$"),
}
_RAIN_PREFIX: dict[RainNetwork, str] = {
    "aws_new": "RAIN-A",
    "aws_upgraded": "RAIN-U",
    "mountain": "RAIN-M",
}
_DETAIL_FIELD: dict[StationKind, str] = {
    "rain": "rain",
    "radar": "radar",
    "geohazard": "geohazard",
    "water_level": "water",
    "tide": "water",
}


class Station(BaseModel):
    """A monitoring station; exactly the detail block matching ``kind`` is set."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    station_id: str
    kind: StationKind
    name: str = Field(min_length=1)
    lon: Longitude
    lat: Latitude
    elevation_m: float
    county_code: str = Field(pattern=r"^\d{6}$")
    township_code: str = Field(pattern=r"^\d{9}$")
    location_synthetic: bool = True
    rain: RainGaugeInfo | None = None
    radar: RadarInfo | None = None
    geohazard: GeoHazardInfo | None = None
    water: WaterLevelInfo | None = None

    @model_validator(mode="after")
    def _consistent_kind(self) -> Station:
        if not _ID_PATTERNS[self.kind].match(self.station_id):
            raise ValueError(
                f"station_id {self.station_id!r} does not follow the {self.kind!r} convention "
                f"{_ID_PATTERNS[self.kind].pattern}"
            )
        wanted = _DETAIL_FIELD[self.kind]
        for name in ("rain", "radar", "geohazard", "water"):
            present = getattr(self, name) is not None
            if name == wanted and not present:
                raise ValueError(f"kind {self.kind!r} requires the '{name}' block")
            if name != wanted and present:
                raise ValueError(f"kind {self.kind!r} must not carry a '{name}' block")
        if self.rain is not None and not self.station_id.startswith(_RAIN_PREFIX[self.rain.network]):
            raise ValueError(
                f"rain network {self.rain.network!r} requires id prefix "
                f"{_RAIN_PREFIX[self.rain.network]!r}, got {self.station_id!r}"
            )
        if self.radar is not None and not self.station_id.startswith(f"RADAR-{self.radar.band}-"):
            raise ValueError(f"radar band {self.radar.band} does not match id {self.station_id!r}")
        if self.water is not None and (self.kind == "tide") != (self.water.river == "tide"):
            raise ValueError("tide stations (and only they) must have water.river == 'tide'")
        return self


class Registry(BaseModel):
    """Everything the loader read, validated; wrapped by ``GeoRegistry``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    counties: tuple[County, ...]
    townships: tuple[Township, ...]
    stations: tuple[Station, ...]
    version: str = Field(min_length=1)


class RegistrySummary(BaseModel):
    """Counts reported by ``GeoRegistry.summary()`` and ``earlywarn registry summary``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str
    counties: int
    dissemination_units: int
    units_by_kind: dict[str, int]
    population: int
    hilly_units: int
    coastal_units: int
    stations_by_kind: dict[str, int]
    rain_gauges_by_network: dict[str, int]
    radars_by_band: dict[str, int]
    geohazard_points: int
