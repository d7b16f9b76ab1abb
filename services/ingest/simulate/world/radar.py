"""Radar reflectivity from the true rain field, through the Z–R relation (§4.2).

    Z   = a · R^b               (mm⁶ m⁻³; R in mm/h; default a = 300, b = 1.4, WSR-88D
                                  convective, which §4.2 prefers for Wenzhou and which
                                  the convection detector inverts)
    dBZ = 10 · log10(Z)         below ``min_echo_dbz``: no echo (NaN)

Per radar (``station.radar``: band, range, scan interval), a scan is the model-grid window
around the site, cells beyond ``range_km`` set to no echo, plus Gaussian dBZ noise on
echoing cells (``noise.radar_dbz_sigma``). Beam height, attenuation and clutter are not
modelled: every radar sees the surface rain field [A].
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from schemas.observations import RadarScan
from services.ingest.simulate.world.grid import KM_PER_DEG_LAT, ModelGrid, km_per_deg_lon

FloatArray = npt.NDArray[np.float64]
_MIN_RATE = 1e-6


def rate_to_dbz(rate_mm_h: npt.ArrayLike, a: float, b: float, min_echo_dbz: float) -> FloatArray:
    rate = np.asarray(rate_mm_h, dtype=np.float64)
    with np.errstate(divide="ignore"):
        dbz = 10.0 * np.log10(a) + 10.0 * b * np.log10(np.maximum(rate, _MIN_RATE))
    result: FloatArray = np.where(dbz >= min_echo_dbz, dbz, np.nan)
    return result


def dbz_to_rate_mm_h(dbz: npt.ArrayLike, a: float, b: float) -> FloatArray:
    result: FloatArray = (10.0 ** (np.asarray(dbz, dtype=np.float64) / 10.0) / a) ** (1.0 / b)
    return result


@dataclass(frozen=True, slots=True)
class RadarSite:
    station_id: str
    band: str
    lon: float
    lat: float
    range_km: float
    interval_s: int
    rows: tuple[int, int]
    cols: tuple[int, int]
    outside: npt.NDArray[np.bool_]  # cells of the window beyond range
    origin_lon: float
    origin_lat: float
    cell_deg: float

    @classmethod
    def build(
        cls, station_id: str, band: str, lon: float, lat: float, range_km: float, interval_s: int, grid: ModelGrid
    ) -> RadarSite:
        dlat = range_km / KM_PER_DEG_LAT
        dlon = range_km / km_per_deg_lon(lat)
        r0, r1, c0, c1 = grid.window(lon - dlon, lat - dlat, lon + dlon, lat + dlat)
        if r1 <= r0 or c1 <= c0:  # radar off the grid: one dummy cell at the nearest corner
            r0, r1 = (0, 1) if lat < grid.lat0 else (grid.n_rows - 1, grid.n_rows)
            c0, c1 = (0, 1) if lon < grid.lon0 else (grid.n_cols - 1, grid.n_cols)
        dx = (grid.lon[c0:c1][None, :] - lon) * km_per_deg_lon(lat)
        dy = (grid.lat[r0:r1][:, None] - lat) * KM_PER_DEG_LAT
        outside = np.hypot(dx, dy) > range_km
        return cls(
            station_id=station_id,
            band=band,
            lon=lon,
            lat=lat,
            range_km=range_km,
            interval_s=interval_s,
            rows=(r0, r1),
            cols=(c0, c1),
            outside=outside,
            origin_lon=grid.lon0 + c0 * grid.cell_deg,
            origin_lat=grid.lat0 + r0 * grid.cell_deg,
            cell_deg=grid.cell_deg,
        )

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows[1] - self.rows[0], self.cols[1] - self.cols[0])

    def dbz(
        self,
        rain_grid: FloatArray,
        a: float,
        b: float,
        min_echo_dbz: float,
        noise: FloatArray | None,
    ) -> FloatArray:
        window = rain_grid[self.rows[0] : self.rows[1], self.cols[0] : self.cols[1]]
        dbz = rate_to_dbz(window, a, b, min_echo_dbz)
        if noise is not None:
            dbz = dbz + noise
            dbz[dbz < min_echo_dbz] = np.nan
        dbz[self.outside] = np.nan
        return dbz

    def scan_fields(self, dbz: FloatArray, at: datetime) -> dict[str, Any]:
        """The fields of a ``RadarScan`` (built, and validated, after the fault stage)."""
        return {
            "station_id": self.station_id,
            "observed_at": at,
            "band": "S" if self.band == "S" else "X",
            "origin_lon": round(self.origin_lon, 6),
            "origin_lat": round(self.origin_lat, 6),
            "cell_deg": self.cell_deg,
            "n_rows": self.shape[0],
            "n_cols": self.shape[1],
            "dbz_b64": RadarScan.pack_dbz(dbz),
        }
