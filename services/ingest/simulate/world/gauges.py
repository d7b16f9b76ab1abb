"""Rain gauges: accumulate the true rain at the gauge, report it with noise (and wind).

Per minute the true rain at each gauge (bilinear sample of the rain-rate grid, trapezoid
between the minute's two instants) is added to an accumulator. At each report time
(every ``rain_aws_interval_s`` = 60 s for automatic stations, ``rain_mountain_interval_s``
= 300 s for mountain gauges)::

    measured  = true · exp(σ·z − σ²/2)            multiplicative, mean-preserving (σ = rain_gauge_sigma)
    bucket   += measured
    rain_mm   = ⌊bucket / res⌋ · res; bucket −= rain_mm      tipping bucket, remainder carried
    wind      = true 2-min mean · (1 + σw·z)        automatic stations that report wind
    gust      = wind · U(gust_factor)               1.4–1.6 by default (§ typhoon gusts)
    direction = true direction + σd·z  (mod 360)

A rain value is clipped at the contract's plausibility limit (400 mm/h over the interval,
rounded down to the 0.001 mm the report carries) and a gust at the contract's 110 m/s: a
real gauge saturates rather than reporting the impossible.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from services.ingest.simulate.scenario import NoiseConfig
from services.ingest.simulate.world import rng
from services.ingest.simulate.world.fields import PointSet, PointWind

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

NOISE_WIDTH = 4
MAX_GUST_MS = 110.0  # the contract's ceiling (schemas.observations.RainObservation)
_RAIN, _WIND, _GUST, _DIR = range(NOISE_WIDTH)


class RainGauges:
    def __init__(
        self,
        points: PointSet,
        reports_wind: Sequence[bool],
        interval_s: int,
        noise: NoiseConfig,
        gust_factor: tuple[float, float],
        seed: int,
    ) -> None:
        self.points = points
        self.reports_wind = np.asarray(reports_wind, dtype=bool)
        self.interval_s = interval_s
        self.noise = noise
        self.gust_factor = gust_factor
        n = len(points)
        self.true_mm = np.zeros(n)
        self.bucket_mm = np.zeros(n)
        self.streams = rng.StationStreams(seed, rng.NOISE, points.ids, NOISE_WIDTH)
        self.all = np.arange(n, dtype=np.intp)
        # rounded *down* to the reported 0.001 mm: rounding 6.6667 to 6.667 would exceed 400 mm/h
        self.max_mm = math.floor(min(300.0, 400.0 * interval_s / 3600.0) * 1000.0) / 1000.0

    def accumulate(self, minute_mm: FloatArray) -> None:
        self.true_mm += minute_mm

    def report(self, at: datetime, wind: PointWind | None) -> tuple[IntArray, list[dict[str, Any]]]:
        """Measured reports of every gauge for the interval ending at ``at``; resets the accumulators."""
        n = len(self.points)
        if n == 0:
            return self.all, []
        u = self.streams.draw(self.all)
        z = rng.normal_from_uniform(u)
        sigma = self.noise.rain_gauge_sigma
        measured = self.true_mm * np.exp(sigma * z[:, _RAIN] - 0.5 * sigma * sigma)
        self.true_mm[:] = 0.0
        res = self.noise.rain_resolution_mm
        if res > 0.0:
            self.bucket_mm += measured
            tipped = np.floor(self.bucket_mm / res + 1e-9) * res
            self.bucket_mm -= tipped
            measured = tipped
        rain = np.minimum(np.round(measured, 3), self.max_mm)
        reports: list[dict[str, Any]] = []
        if wind is not None:
            mean = np.clip(wind.speed_ms * (1.0 + self.noise.wind_sigma * z[:, _WIND]), 0.0, 70.0)
            g0, g1 = self.gust_factor
            mean_r = np.round(mean, 1)
            gust = np.maximum(np.round(mean * (g0 + (g1 - g0) * u[:, _GUST]), 1), mean_r)
            np.minimum(gust, MAX_GUST_MS, out=gust)
            direction = np.mod(np.round(wind.from_deg + self.noise.wind_dir_sigma_deg * z[:, _DIR], 1), 360.0)
            direction[direction >= 360.0] = 0.0
        ids = self.points.ids
        for i in range(n):
            fields: dict[str, Any] = {
                "station_id": ids[i],
                "observed_at": at,
                "rain_mm": float(rain[i]),
                "interval_s": self.interval_s,
            }
            if wind is not None and self.reports_wind[i]:
                fields["wind_mean_ms"] = float(mean_r[i])
                fields["wind_gust_ms"] = float(gust[i])
                fields["wind_dir_deg"] = float(direction[i])
            reports.append(fields)
        return self.all, reports
