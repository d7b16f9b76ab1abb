"""Canonical observations: what ingest publishes on ``obs.*`` topics, keyed by station id.

Bounds here are *physical plausibility* limits, not warning thresholds: a value outside
them cannot have been measured and is rejected with the field named.
"""

from __future__ import annotations

import base64
from typing import Annotated, Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field, TypeAdapter, model_validator

from schemas.common import Contract, StationId, TownshipCode, UtcDatetime


class ObservationBase(Contract):
    kind: str
    station_id: StationId
    observed_at: UtcDatetime
    source: str = Field(default="sim", max_length=64, description="feed or integrator that sent it")
    township_code: TownshipCode | None = Field(
        default=None, description="filled by ingest from the station registry (enrichment)"
    )

    @property
    def dedup_key(self) -> str:
        """Identity of a reading: the same station, kind and instant is the same reading."""
        kind: str = self.kind
        return f"{kind}|{self.station_id}|{self.observed_at.isoformat()}"


class RainObservation(ObservationBase):
    """Rain accumulated over ``interval_s`` ending at ``observed_at``.

    Automatic stations also report the 2-minute mean wind and the gust.
    """

    kind: Literal["rain"] = "rain"
    rain_mm: float = Field(ge=0.0, le=300.0, description="accumulation over the interval")
    interval_s: int = Field(default=60, ge=60, le=3600)
    wind_mean_ms: float | None = Field(default=None, ge=0.0, le=90.0)
    wind_gust_ms: float | None = Field(default=None, ge=0.0, le=110.0)
    wind_dir_deg: float | None = Field(default=None, ge=0.0, lt=360.0)

    @model_validator(mode="after")
    def _rain_rate_plausible(self) -> RainObservation:
        # 400 mm/h is above the highest hourly rainfall ever recorded in China.
        if self.rain_mm > 400.0 * self.interval_s / 3600.0 + 1e-9:
            msg = f"rain_mm {self.rain_mm} over {self.interval_s} s exceeds 400 mm/h"
            raise ValueError(msg)
        if (
            self.wind_mean_ms is not None
            and self.wind_gust_ms is not None
            and self.wind_gust_ms + 1e-9 < self.wind_mean_ms
        ):
            msg = "wind_gust_ms must not be below wind_mean_ms"
            raise ValueError(msg)
        return self


DBZ_OFFSET = 32.0
DBZ_SCALE = 2.0
DBZ_NO_ECHO = 0
MAX_PLAUSIBLE_DBZ = 80.0


class RadarScan(ObservationBase):
    """One reflectivity composite on a regular lon/lat grid, packed compactly.

    Encoding: row-major ``uint8`` bytes, base64. ``byte = round((dBZ + 32) * 2)``;
    ``0`` means no echo. That gives 0.5 dBZ resolution over -31.5 … 95.5 dBZ, the
    usual radar-product packing; values above 80 dBZ are physically implausible and
    rejected.
    """

    kind: Literal["radar"] = "radar"
    band: Literal["S", "X"]
    origin_lon: float = Field(ge=-180.0, le=180.0, description="west edge")
    origin_lat: float = Field(ge=-90.0, le=90.0, description="south edge")
    cell_deg: float = Field(gt=0.0, le=1.0)
    n_rows: int = Field(ge=1, le=2048)
    n_cols: int = Field(ge=1, le=2048)
    dbz_b64: str = Field(description="base64 of n_rows*n_cols uint8, row 0 = south")

    @model_validator(mode="after")
    def _grid_consistent(self) -> RadarScan:
        try:
            raw = base64.b64decode(self.dbz_b64, validate=True)
        except ValueError as exc:
            msg = f"dbz_b64 is not valid base64: {exc}"
            raise ValueError(msg) from exc
        if len(raw) != self.n_rows * self.n_cols:
            msg = f"dbz_b64 holds {len(raw)} cells, expected {self.n_rows}x{self.n_cols}"
            raise ValueError(msg)
        peak = max(raw) if raw else 0
        if peak and peak / DBZ_SCALE - DBZ_OFFSET > MAX_PLAUSIBLE_DBZ:
            msg = f"reflectivity {peak / DBZ_SCALE - DBZ_OFFSET:.1f} dBZ exceeds {MAX_PLAUSIBLE_DBZ}"
            raise ValueError(msg)
        return self

    def dbz(self) -> npt.NDArray[np.float32]:
        """The grid in dBZ, NaN where there is no echo; shape (n_rows, n_cols)."""
        raw = np.frombuffer(base64.b64decode(self.dbz_b64), dtype=np.uint8)
        grid = raw.astype(np.float32) / DBZ_SCALE - DBZ_OFFSET
        grid[raw == DBZ_NO_ECHO] = np.nan
        return grid.reshape(self.n_rows, self.n_cols)

    @staticmethod
    def pack_dbz(grid: npt.NDArray[np.floating]) -> str:
        """Pack a dBZ grid (NaN = no echo) into ``dbz_b64``."""
        clipped = np.clip(np.nan_to_num(grid, nan=-DBZ_OFFSET), -31.5, 95.5)
        raw = np.rint((clipped + DBZ_OFFSET) * DBZ_SCALE).astype(np.uint8)
        raw[np.isnan(grid)] = DBZ_NO_ECHO
        return base64.b64encode(raw.tobytes()).decode("ascii")


class GeoHazardObservation(ObservationBase):
    """A geo-hazard monitoring point: cumulative surface displacement and local rain."""

    kind: Literal["geohazard"] = "geohazard"
    displacement_mm: float = Field(ge=-5000.0, le=100000.0, description="cumulative since install")
    rain_mm: float | None = Field(default=None, ge=0.0, le=300.0, description="since previous report")
    interval_s: int = Field(default=600, ge=60, le=86400)


class WaterLevelObservation(ObservationBase):
    """River, canal or tide gauge stage above the station datum (1985 national datum).

    The bounds cover tide gauges below mean sea level and upstream river gauges in the
    hills (the registry's Feiyun and Ao gauges sit at 60-70 m); beyond them is a fault.
    """

    kind: Literal["water_level"] = "water_level"
    level_m: float = Field(ge=-10.0, le=500.0)


Observation = Annotated[
    RainObservation | RadarScan | GeoHazardObservation | WaterLevelObservation,
    Field(discriminator="kind"),
]
OBSERVATION_ADAPTER: TypeAdapter[RainObservation | RadarScan | GeoHazardObservation | WaterLevelObservation] = (
    TypeAdapter(Observation)
)

ObservationKind = Literal["rain", "radar", "geohazard", "water_level"]
