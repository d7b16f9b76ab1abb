"""Scenario files: what the simulated Wenzhou world does, as versioned TOML.

A scenario is one TOML file (``loadtests/scenarios/*.toml``) read with ``tomllib`` into
the frozen pydantic models below. ``docs/scenarios.md`` documents every key with its unit
and default; the defaults are stated here, where they are defined, and nowhere else.

Loading, in order (the first failure decides the error)::

    file ──tomllib──▶ dict ──1 version──▶ 2 best track ──▶ 3 validate ──▶ Scenario
                                              │
                           data dir (CSV) ◀───┘

1. ``format_version`` must be present and one this code reads (``SUPPORTED_FORMAT_VERSIONS``).
   A file written for a newer format is refused, never half-read.
2. ``[typhoon] best_track = {storm_id, file}`` is resolved against a data directory
   (default: ``data/`` beside the scenario file) and replaced by inline ``track`` points;
   giving both ``track`` and ``best_track`` is an error.
3. Validation: unknown keys anywhere are errors (``extra="forbid"``), as are values out
   of range and inconsistent combinations (``end`` before ``start``, a cell with both or
   neither of ``peak_dbz`` / ``peak_rain_mm_h``).

Every error is a ``ScenarioError`` that names the file, the dotted key
(``typhoon.track[3].vmax_ms``) and the reason.
"""

from __future__ import annotations

import csv
import os
import tomllib
from collections.abc import Mapping
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from types import NoneType, UnionType
from typing import Any, Final, Literal, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from schemas.common import Level, UtcDatetime

SUPPORTED_FORMAT_VERSIONS: Final = (1,)
SCENARIOS_ENV: Final = "EARLYWARN_SCENARIOS_DIR"

StationKind = Literal["rain", "radar", "geohazard", "water_level", "tide"]
ALL_STATION_KINDS: Final[tuple[StationKind, ...]] = ("rain", "radar", "geohazard", "water_level", "tide")


class ScenarioError(ValueError):
    """A scenario file that cannot be used: which file, which key, why."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        lines = [f"{source}: {key}: {reason}" for key, reason in problems]
        super().__init__("\n".join(lines))

    @property
    def keys(self) -> list[str]:
        return [key for key, _ in self.problems]


def _numbers_only(annotation: object) -> bool:
    """``float``, ``int``, or an optional or a tuple of them: a key that takes numbers and nothing else."""
    if annotation in (float, int):
        return True
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is tuple:
        return bool(args) and all(a is Ellipsis or _numbers_only(a) for a in args)
    if origin in (Union, UnionType):
        return all(a is NoneType or _numbers_only(a) for a in args)
    return False


class _Frozen(BaseModel):
    # inf and nan are valid TOML floats, but no key means them.
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _numbers_are_numbers(cls, value: object, info: ValidationInfo) -> object:
        """``rate = true`` or ``rate = "0.5"`` is a mistake, not 1.0 or 0.5 (pydantic's lax mode would coerce)."""
        field = cls.model_fields.get(info.field_name or "")
        if field is None or not _numbers_only(field.annotation):
            return value
        for item in value if isinstance(value, list | tuple) else (value,):
            if isinstance(item, bool | str):
                raise ValueError(f"expected a number, got {type(item).__name__} {item!r}")
        return value


class TrackPoint(_Frozen):
    """One best-track record (CMA: 2-min mean maximum wind near the centre)."""

    time: UtcDatetime
    lat: float = Field(ge=-90.0, le=90.0)
    lon: float = Field(ge=-180.0, le=180.0)
    vmax_ms: float = Field(ge=0.0, le=100.0)
    mslp_hpa: float = Field(ge=850.0, le=1050.0)
    rmw_km: float | None = Field(default=None, gt=0.0, le=300.0, description="radius of max wind here")


class BestTrackRef(_Frozen):
    storm_id: str = Field(pattern=r"^\d{4}$", description="CMA 4-digit Chinese TC number, e.g. 1909")
    file: str = Field(min_length=1, description="CSV in the shared best-track layout, relative to the data dir")


class TyphoonConfig(_Frozen):
    """A parametric typhoon along a best track (see ``world/typhoon.py`` for the physics)."""

    name: str = Field(min_length=1)
    track: tuple[TrackPoint, ...] = Field(default=(), validate_default=True)
    best_track: BestTrackRef | None = None
    radius_max_wind_km: float = Field(default=30.0, gt=0.0, le=300.0)
    holland_b: float | None = Field(default=None, ge=0.8, le=2.5, description="None: from vmax and pressure")
    ambient_pressure_hpa: float = Field(default=1008.0, ge=990.0, le=1030.0)
    inflow_angle_deg: float = Field(default=20.0, ge=0.0, le=45.0)
    translation_share: float = Field(default=0.5, ge=0.0, le=1.0)
    land_wind_factor: float = Field(default=0.7, gt=0.0, le=1.0, description="10-m wind over land / over sea")
    gust_factor: tuple[float, float] = (1.4, 1.6)
    core_rain_mm_h: float = Field(default=22.0, ge=0.0, le=200.0, description="at the radius of max rain, vmax 40")
    rain_intensity_exponent: float = Field(default=0.5, ge=0.0, le=2.0)
    rain_radius_km: float = Field(default=60.0, gt=0.0, le=1000.0, description="e-folding beyond max rain")
    rainband_strength: float = Field(default=0.9, ge=0.0, le=5.0)
    rainband_count: int = Field(default=3, ge=1, le=8)
    rainband_pitch_deg: float = Field(default=15.0, ge=5.0, le=45.0)
    rainband_period_h: float = Field(default=6.0, gt=0.0, le=48.0)
    rainband_radius_km: float = Field(default=100.0, gt=0.0, le=1500.0)
    asymmetry: float = Field(default=0.3, ge=0.0, le=0.9, description="front-left rain enhancement")
    terrain_enhancement: float = Field(default=1.8, ge=1.0, le=4.0, description="max multiplier, windward")
    lee_reduction: float = Field(default=0.3, ge=0.0, le=0.9, description="max fractional cut, lee side")

    @field_validator("gust_factor")
    @classmethod
    def _gust_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not 1.0 <= low <= high <= 3.0:
            raise ValueError(f"need 1.0 <= min <= max <= 3.0, got [{low}, {high}]")
        return value

    @field_validator("track")
    @classmethod
    def _track_usable(cls, value: tuple[TrackPoint, ...]) -> tuple[TrackPoint, ...]:
        if len(value) < 2:
            raise ValueError("needs at least 2 points (or best_track, which load_scenario resolves into track)")
        if any(b.time <= a.time for a, b in pairwise(value)):
            raise ValueError("track times must increase strictly")
        return value


class ConvectiveCell(_Frozen):
    """One convective cell: where and when it starts, how it moves, grows, matures and decays."""

    id: str | None = None
    start: UtcDatetime = Field(description="initiation time")
    lon: float = Field(ge=-180.0, le=180.0)
    lat: float = Field(ge=-90.0, le=90.0)
    speed_kmh: float = Field(default=30.0, ge=0.0, le=150.0)
    heading_deg: float = Field(default=90.0, ge=0.0, le=360.0, description="direction of motion, from north")
    peak_dbz: float | None = Field(default=None, ge=20.0, le=75.0)
    peak_rain_mm_h: float | None = Field(default=None, gt=0.0, le=300.0)
    radius_km: float = Field(default=6.0, ge=1.0, le=50.0, description="Gaussian e-folding radius at maturity")
    growth_min: float = Field(default=20.0, ge=0.0, le=600.0)
    mature_min: float = Field(default=30.0, ge=0.0, le=1440.0)
    decay_min: float = Field(default=30.0, ge=0.0, le=600.0)
    outflow_wind_ms: float = Field(default=8.0, ge=0.0, le=40.0)

    @model_validator(mode="after")
    def _one_peak(self) -> ConvectiveCell:
        if (self.peak_dbz is None) == (self.peak_rain_mm_h is None):
            raise ValueError("give exactly one of peak_dbz or peak_rain_mm_h")
        if self.growth_min + self.mature_min + self.decay_min <= 0.0:
            raise ValueError("growth_min + mature_min + decay_min must be positive")
        return self


class BackgroundConfig(_Frozen):
    """Stratiform rain and the ambient wind, everywhere in the domain."""

    rain_mm_h: float = Field(default=0.0, ge=0.0, le=50.0)
    variation: float = Field(default=0.5, ge=0.0, le=1.0, description="relative spatial modulation")
    wavelength_km: float = Field(default=60.0, gt=0.0, le=1000.0)
    speed_kmh: float = Field(default=20.0, ge=0.0, le=150.0)
    heading_deg: float = Field(default=60.0, ge=0.0, le=360.0)
    start: UtcDatetime | None = None
    end: UtcDatetime | None = None
    ramp_min: float = Field(default=60.0, ge=0.0, le=1440.0)
    wind_ms: float = Field(default=3.0, ge=0.0, le=40.0, description="2-min mean at 10 m, open terrain")
    wind_from_deg: float = Field(default=90.0, ge=0.0, le=360.0)

    @model_validator(mode="after")
    def _window(self) -> BackgroundConfig:
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError("background end must be after its start")
        return self


class TideConfig(_Frozen):
    """Astronomical tide: one M2 constituent (period 12.42 h) [A]."""

    m2_amplitude_m: float = Field(default=2.0, ge=0.0, le=6.0)
    m2_phase_deg: float = Field(default=0.0, ge=-360.0, le=360.0, description="lag after 2000-01-01T00Z")
    mean_level_m: float = Field(default=0.3, ge=-5.0, le=5.0)
    high_water_at: UtcDatetime | None = Field(default=None, description="overrides m2_phase_deg")


class SurgeConfig(_Frozen):
    """Storm surge at the coast: inverse barometer plus onshore wind setup, lagged [A]."""

    inverse_barometer_m_per_hpa: float = Field(default=0.01, ge=0.0, le=0.05)
    wind_setup_m_per_ms2: float = Field(default=0.0012, ge=0.0, le=0.01)
    response_time_h: float = Field(default=1.5, gt=0.0, le=24.0)
    coast_normal_deg: float = Field(default=115.0, ge=0.0, le=360.0, description="direction the coast faces")


class RiverConfig(_Frozen):
    """Linear-reservoir response of one river's gauges [A]."""

    reservoir_k_h: float = Field(default=6.0, gt=0.0, le=240.0)
    warning_runoff_mm_h: float = Field(default=4.0, gt=0.0, le=100.0)
    normal_below_warning_m: float = Field(default=2.0, gt=0.0, le=20.0)
    basin_radius_km: float = Field(default=20.0, gt=0.0, le=100.0)
    tidal_reach_km: float = Field(default=10.0, ge=0.0, le=100.0, description="0: no tide")


DEFAULT_RIVERS: Final[dict[str, dict[str, float]]] = {
    "Ou": {"reservoir_k_h": 10.0, "warning_runoff_mm_h": 5.0, "normal_below_warning_m": 2.5,
           "basin_radius_km": 25.0, "tidal_reach_km": 25.0},
    "Feiyun": {"reservoir_k_h": 8.0, "warning_runoff_mm_h": 5.0, "normal_below_warning_m": 2.5,
               "basin_radius_km": 20.0, "tidal_reach_km": 20.0},
    "Ao": {"reservoir_k_h": 4.0, "warning_runoff_mm_h": 5.0, "normal_below_warning_m": 2.0,
           "basin_radius_km": 15.0, "tidal_reach_km": 15.0},
    "Wen-Rui canal": {"reservoir_k_h": 12.0, "warning_runoff_mm_h": 3.0, "normal_below_warning_m": 0.2,
                      "basin_radius_km": 10.0, "tidal_reach_km": 0.0},
}  # fmt: skip


class HydrologyConfig(_Frozen):
    runoff_coefficient: float = Field(default=0.7, ge=0.0, le=1.0)
    baseflow_mm_h: float = Field(default=0.2, ge=0.0, le=20.0)
    rating_exponent: float = Field(default=0.6, gt=0.0, le=2.0)
    rivers: dict[str, RiverConfig] = Field(
        default_factory=lambda: {name: RiverConfig(**values) for name, values in DEFAULT_RIVERS.items()}
    )
    default_river: RiverConfig = RiverConfig()

    @field_validator("rivers", mode="before")
    @classmethod
    def _merge_defaults(cls, value: object) -> object:
        if not isinstance(value, Mapping):
            return value
        return _rivers_with_defaults(value)

    def river(self, name: str) -> RiverConfig:
        return self.rivers.get(name, self.default_river)


def _rivers_with_defaults(given: Mapping[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {name: dict(values) for name, values in DEFAULT_RIVERS.items()}
    for name, values in given.items():
        if isinstance(values, RiverConfig):
            merged[name] = values
        elif isinstance(values, Mapping) and isinstance(merged.get(name), dict):
            merged[name] = {**merged[name], **values}
        else:
            merged[name] = values
    return merged


class GeoHazardConfig(_Frozen):
    """Which monitored slopes accelerate to failure, and how [A]."""

    failure_fraction: float = Field(default=0.0, ge=0.0, le=1.0, description="share of points susceptible")
    trigger_level: Level = Field(default="orange", description="colour of the point's effective-rain threshold")
    fallback_threshold_mm: float = Field(default=150.0, gt=0.0, description="when a point has no thresholds")
    lead_time_h: tuple[float, float] = (6.0, 18.0)
    creep_mm_per_day: tuple[float, float] = (0.2, 0.8)
    failure_velocity_mm_per_day: float = Field(default=500.0, gt=0.0, le=100000.0)
    slide_mm: float = Field(default=1500.0, ge=0.0, le=50000.0)
    initial_displacement_mm: tuple[float, float] = (0.0, 50.0)
    antecedent_effective_rain_mm: float = Field(default=0.0, ge=0.0, le=2000.0)
    report_after_failure: bool = False

    @field_validator("lead_time_h", "creep_mm_per_day", "initial_displacement_mm")
    @classmethod
    def _ordered_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not 0.0 <= low <= high:
            raise ValueError(f"need 0 <= min <= max, got [{low}, {high}]")
        return value

    @model_validator(mode="after")
    def _positive(self) -> GeoHazardConfig:
        if self.lead_time_h[0] <= 0.0 or self.creep_mm_per_day[0] <= 0.0:
            raise ValueError("lead_time_h and creep_mm_per_day must be positive")
        if self.failure_velocity_mm_per_day <= self.creep_mm_per_day[1]:
            raise ValueError("failure_velocity_mm_per_day must exceed the creep rate")
        return self


class LateDelay(_Frozen):
    distribution: Literal["exponential", "uniform", "lognormal"] = "exponential"
    mean_s: float = Field(default=300.0, gt=0.0, le=86400.0)
    min_s: float = Field(default=60.0, ge=0.0, le=86400.0)
    max_s: float = Field(default=3600.0, gt=0.0, le=86400.0)

    @model_validator(mode="after")
    def _bounds(self) -> LateDelay:
        if not self.min_s <= self.mean_s <= self.max_s:
            raise ValueError("need min_s <= mean_s <= max_s")
        return self


class PhantomRain(_Frozen):
    """A rain gauge that reports rain it never had, around ``rate_mm_h``, from ``start`` to ``end``
    (a test signal wired in, a mis-keyed station): what the rules' radar check must catch."""

    station_id: str
    start: UtcDatetime
    end: UtcDatetime
    rate_mm_h: float = Field(default=40.0, gt=0.0, le=300.0)

    @model_validator(mode="after")
    def _ordered(self) -> PhantomRain:
        if self.end <= self.start:
            raise ValueError("phantom rain must end after it starts")
        return self


class FaultConfig(_Frozen):
    """Deliberate sensor and delivery faults; every rate is a probability per report."""

    dropout_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    stuck_rate: float = Field(default=0.0, ge=0.0, le=1.0, description="chance a report starts a stuck spell")
    stuck_duration_s: int = Field(default=1800, ge=60, le=7 * 86400)
    spike_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    duplicate_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    late_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    late_delay: LateDelay = LateDelay()
    out_of_order_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    malformed_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    clock_skew_fraction: float = Field(default=0.0, ge=0.0, le=1.0, description="share of stations")
    clock_skew_s: float = Field(default=0.0, ge=0.0, le=86400.0, description="largest |skew|")
    phantom_rain: tuple[PhantomRain, ...] = Field(default=(), description="scripted, not drawn")


class NoiseConfig(_Frozen):
    rain_gauge_sigma: float = Field(default=0.1, ge=0.0, le=2.0, description="lognormal, multiplicative")
    rain_resolution_mm: float = Field(default=0.1, ge=0.0, le=1.0, description="tipping bucket; 0 = exact")
    wind_sigma: float = Field(default=0.1, ge=0.0, le=1.0)
    wind_dir_sigma_deg: float = Field(default=15.0, ge=0.0, le=180.0)
    water_level_sigma_m: float = Field(default=0.01, ge=0.0, le=1.0)
    displacement_sigma_mm: float = Field(default=0.5, ge=0.0, le=100.0)
    radar_dbz_sigma: float = Field(default=1.0, ge=0.0, le=10.0)


class RadarConfig(_Frozen):
    """Z = a R^b (§4.2): 300/1.4 is what the convection detector assumes."""

    zr_a: float = Field(default=300.0, gt=0.0)
    zr_b: float = Field(default=1.4, gt=0.0)
    min_echo_dbz: float = Field(default=5.0, ge=-30.0, le=40.0, description="weaker is 'no echo'")


class GridConfig(_Frozen):
    cell_deg: float = Field(default=0.01, ge=0.005, le=0.05)
    margin_deg: float = Field(default=0.6, ge=0.0, le=3.0, description="around the Wenzhou bbox")


class StationSelection(_Frozen):
    include_kinds: tuple[StationKind, ...] = ALL_STATION_KINDS
    include_prefixes: tuple[str, ...] = ()
    exclude_prefixes: tuple[str, ...] = ()
    sample_fraction: float = Field(default=1.0, gt=0.0, le=1.0)
    rain_aws_interval_s: int = Field(default=60, ge=60, le=3600)
    rain_mountain_interval_s: int = Field(default=300, ge=60, le=3600)
    geohazard_interval_s: int = Field(default=600, ge=60, le=86400)
    water_level_interval_s: int = Field(default=300, ge=60, le=86400)
    tide_interval_s: int = Field(default=300, ge=60, le=86400)

    @field_validator(
        "rain_aws_interval_s",
        "rain_mountain_interval_s",
        "geohazard_interval_s",
        "water_level_interval_s",
        "tide_interval_s",
    )
    @classmethod
    def _whole_minutes(cls, value: int) -> int:
        if value % 60:
            raise ValueError("report intervals must be whole minutes (the world ticks every 60 s)")
        return value


class ReplayDefaults(_Frozen):
    speed: float | Literal["max"] = Field(default=60.0, description="×real time, or 'max'")

    @field_validator("speed")
    @classmethod
    def _positive(cls, value: float | str) -> float | str:
        if not isinstance(value, str) and value <= 0:
            raise ValueError("speed must be positive or 'max'")
        return value


class TruthConfig(_Frozen):
    merge_gap_s: int = Field(default=600, ge=0, le=86400, description="join episodes closer than this")


TICK_S: Final = 60
MAX_SPAN: Final = timedelta(days=14)


class Scenario(_Frozen):
    format_version: Literal[1]
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=64)
    description: str = Field(min_length=1)
    seed: int = Field(ge=0, lt=2**63)
    start: UtcDatetime
    end: UtcDatetime
    grid: GridConfig = GridConfig()
    typhoon: TyphoonConfig | None = None
    cells: tuple[ConvectiveCell, ...] = ()
    background: BackgroundConfig = BackgroundConfig()
    tide: TideConfig = TideConfig()
    surge: SurgeConfig = SurgeConfig()
    hydrology: HydrologyConfig = HydrologyConfig()
    geohazard: GeoHazardConfig = GeoHazardConfig()
    faults: FaultConfig = FaultConfig()
    noise: NoiseConfig = NoiseConfig()
    radar: RadarConfig = RadarConfig()
    stations: StationSelection = StationSelection()
    replay: ReplayDefaults = ReplayDefaults()
    truth: TruthConfig = TruthConfig()

    @field_validator("start", "end")
    @classmethod
    def _whole_minute(cls, value: datetime) -> datetime:
        if value.second or value.microsecond:
            raise ValueError(f"must be on a whole minute (the world ticks every {TICK_S} s)")
        return value

    @field_validator("end")
    @classmethod
    def _span(cls, value: datetime, info: ValidationInfo) -> datetime:
        start = info.data.get("start")  # absent when start itself was invalid (its own error)
        if isinstance(start, datetime):
            if value <= start:
                raise ValueError("must be after start")
            if value - start > MAX_SPAN:
                raise ValueError(f"span longer than {MAX_SPAN.days} days")
        return value  # both on whole minutes: the span is a whole number of ticks

    @property
    def span_hours(self) -> float:
        return (self.end - self.start).total_seconds() / 3600.0

    @property
    def wind_hazard(self) -> Literal["typhoon", "gale"]:
        """Truth names strong wind 'typhoon' under a typhoon, else 'gale' (§1.3/§1.4)."""
        return "typhoon" if self.typhoon is not None else "gale"


# --------------------------------------------------------------------------- loading


def _key(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith(("function-", "tagged-union", "union[", "literal[")) or part in {"float", "str", "int"}:
            continue  # pydantic's internal validator names say nothing to an author
        else:
            out += f".{part}" if out else part
    return out or "(top level)"


def _reason(error: Mapping[str, Any]) -> str:
    if error.get("type") == "extra_forbidden":
        return "unknown key (not part of scenario format_version 1)"
    if error.get("type") == "missing":
        return "required key is missing"
    message = str(error.get("msg", "invalid"))
    return message.removeprefix("Value error, ")


def scenario_from_dict(raw: Mapping[str, Any], *, source: str = "<dict>", data_dir: Path | None = None) -> Scenario:
    """Validate a parsed scenario (already a dict); see the module docstring for the steps."""
    version = raw.get("format_version")
    if version is None:
        raise ScenarioError(source, [("format_version", "required: the scenario format version (this reads 1)")])
    if isinstance(version, bool) or not isinstance(version, int) or version not in SUPPORTED_FORMAT_VERSIONS:
        supported = ", ".join(str(v) for v in SUPPORTED_FORMAT_VERSIONS)
        raise ScenarioError(
            source, [("format_version", f"unsupported format_version {version!r}; this reads {supported}")]
        )
    data = dict(raw)
    typhoon = data.get("typhoon")
    if isinstance(typhoon, Mapping) and "best_track" in typhoon:
        data["typhoon"] = _resolve_best_track(typhoon, source, data_dir)
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        problems = [(_key(tuple(err["loc"])), _reason(err)) for err in exc.errors()]
        raise ScenarioError(source, problems) from None


def _resolve_best_track(typhoon: Mapping[str, Any], source: str, data_dir: Path | None) -> dict[str, Any]:
    out = dict(typhoon)
    if "track" in typhoon:
        raise ScenarioError(source, [("typhoon.best_track", "give either track or best_track, not both")])
    ref = typhoon["best_track"]
    if not isinstance(ref, Mapping) or "file" not in ref or "storm_id" not in ref:
        raise ScenarioError(
            source, [("typhoon.best_track", 'needs storm_id and file, e.g. {storm_id = "1909", file = "tracks.csv"}')]
        )
    if data_dir is None:
        raise ScenarioError(source, [("typhoon.best_track.file", "no data directory to resolve it against")])
    path = data_dir / str(ref["file"])
    storm_id = str(ref["storm_id"])
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = [row for row in csv.DictReader(handle) if row.get("storm_id") == storm_id]
    except OSError as exc:
        raise ScenarioError(source, [("typhoon.best_track.file", f"cannot read {path}: {exc.strerror}")]) from None
    if not rows:
        raise ScenarioError(source, [("typhoon.best_track.storm_id", f"no rows for storm_id {storm_id} in {path}")])
    try:
        out["track"] = [
            {
                "time": row["time_utc"],
                "lat": float(row["lat"]),
                "lon": float(row["lon"]),
                "vmax_ms": float(row["vmax_ms"]),
                "mslp_hpa": float(row["mslp_hpa"]),
            }
            for row in rows
        ]
    except (KeyError, ValueError) as exc:
        raise ScenarioError(
            source,
            [
                (
                    "typhoon.best_track.file",
                    f"{path} is not in the best-track layout (time_utc, lat, lon, vmax_ms, mslp_hpa, storm_id): {exc}",
                )
            ],
        ) from None
    return out


def parse_scenario(text: str, *, source: str = "<string>", data_dir: Path | None = None) -> Scenario:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(source, [("(syntax)", f"not valid TOML: {exc}")]) from None
    return scenario_from_dict(raw, source=source, data_dir=data_dir)


def load_scenario(path: str | os.PathLike[str], *, data_dir: Path | None = None) -> Scenario:
    """Read one scenario file; ``best_track`` files resolve against ``data_dir`` or ``<dir>/data``."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(str(file), [("(file)", f"cannot read: {exc.strerror}")]) from None
    return parse_scenario(text, source=str(file), data_dir=data_dir or file.parent / "data")


def shipped_scenarios_dir() -> Path:
    """``$EARLYWARN_SCENARIOS_DIR``, else ``loadtests/scenarios`` of this checkout."""
    env = os.environ.get(SCENARIOS_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "loadtests" / "scenarios"


def scenario_files(directory: Path | None = None) -> list[Path]:
    return sorted((directory or shipped_scenarios_dir()).glob("*.toml"))


def find_scenario(name_or_path: str, directory: Path | None = None) -> Path:
    """A path to an existing file, or the shipped scenario with that ``name`` / file stem."""
    as_path = Path(name_or_path)
    if as_path.suffix == ".toml" and as_path.is_file():
        return as_path
    for file in scenario_files(directory):
        if file.stem == name_or_path:
            return file
    for file in scenario_files(directory):
        try:
            if load_scenario(file).name == name_or_path:
                return file
        except ScenarioError:
            continue
    known = ", ".join(f.stem for f in scenario_files(directory)) or "none"
    raise ScenarioError(name_or_path, [("(name)", f"no such scenario; shipped: {known}")])


def span_text(start: datetime, end: datetime) -> str:
    hours = (end - start).total_seconds() / 3600.0
    return f"{start:%Y-%m-%dT%H:%MZ} → {end:%Y-%m-%dT%H:%MZ} ({hours:g} h)"
