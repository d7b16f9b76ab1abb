"""Geo-hazard monitoring points: effective rainfall, creep, and acceleration to failure [A].

Per point (a registry ``geohazard`` station):

1. **Effective rainfall** (§2.3, the same block form as the rules' detector)::

       R_eff(t) = Σ_i K^i · R_i  +  R_ant · K^(days since start)

   ``R_i`` is the rain in 24-h block *i* back from ``t`` (block 0 = the partial hour plus
   the last 24 whole hours), ``K`` the point's ``decay_factor``, over its
   ``effective_rain_window_days``; ``R_ant`` is ``antecedent_effective_rain_mm``.
2. **Susceptible** points — a ``failure_fraction`` share, drawn per point from the seed —
   start to accelerate when ``R_eff`` reaches the point's ``effective_rain_mm`` threshold
   at ``trigger_level`` (orange by default; ``fallback_threshold_mm`` if it has none).
3. **Displacement**: every point creeps at its constant rate ``v_c`` (drawn from
   ``creep_mm_per_day``). After the trigger the velocity grows exponentially and reaches
   ``failure_velocity_mm_per_day`` at failure, ``L`` hours later (drawn from
   ``lead_time_h``)::

       v(τ) = v_c · e^(τ/τe),  τe = L / ln(v_fail / v_c)
       S(τ) = S_trigger + v_c · τe · (e^(τ/τe) − 1)

   The improved tangent angle α = arctan(v / v_c) (§2.4) then climbs from 45° towards 90°
   over the last hours, which is what the detector looks for.
4. **Failure** at ``trigger + L``: recorded in the truth; the next report carries the
   displacement plus ``slide_mm``, and then the point falls silent (its sensor went with the
   slope) unless ``report_after_failure``.

Reports every ``geohazard_interval_s`` (600 s): displacement + Gaussian noise
(``displacement_sigma_mm``), and the rain since the previous report from the point's own
gauge (multiplicative noise, 0.1 mm resolution).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from schemas.common import Level
from services.ingest.simulate.scenario import GeoHazardConfig, NoiseConfig
from services.ingest.simulate.truth import GroundTruth
from services.ingest.simulate.world import rng
from services.ingest.simulate.world.fields import PointSet
from services.ingest.simulate.world.network import GeoHazardInfoLike

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
DAY_S = 86400.0
NOISE_WIDTH = 2


def _threshold(info: GeoHazardInfoLike | None, level: Level, fallback: float) -> float:
    if info is None:
        return fallback
    value: float = getattr(info.effective_rain_mm, level)
    return value


class Slopes:
    def __init__(
        self,
        points: PointSet,
        townships: Sequence[str | None],
        infos: Sequence[GeoHazardInfoLike | None],
        config: GeoHazardConfig,
        noise: NoiseConfig,
        seed: int,
        start: datetime,
        interval_s: int,
    ) -> None:
        self.points = points
        self.townships = list(townships)
        self.config = config
        self.noise = noise
        self.interval_s = interval_s
        self.start_s = start.timestamp()
        n = len(points)
        self.threshold = np.array(
            [_threshold(info, config.trigger_level, config.fallback_threshold_mm) for info in infos]
        )
        self.decay = np.array([info.decay_factor if info is not None else 0.8 for info in infos])
        days = [info.effective_rain_window_days if info is not None else 21 for info in infos]
        self.n_hours = max(days, default=1) * 24
        hours = np.arange(self.n_hours)
        # weight of whole hour j back (0 = most recent): K^(j // 24) inside the point's window
        self.weights = np.where(
            hours[None, :] < (np.asarray(days)[:, None] * 24), self.decay[:, None] ** (hours[None, :] // 24), 0.0
        )
        self.hours = np.zeros((n, self.n_hours))
        self.partial = np.zeros(n)
        self.minutes_in_hour = 0
        self.since_report = np.zeros(n)
        setup = [rng.station_generator(seed, rng.SETUP, f"slope:{sid}").random(4) for sid in points.ids]
        draws = np.array(setup).reshape(n, 4)
        lo, hi = config.creep_mm_per_day
        self.creep = lo + (hi - lo) * draws[:, 0]  # mm/day
        self.susceptible = draws[:, 1] < config.failure_fraction
        l_lo, l_hi = config.lead_time_h
        self.lead_s = np.round((l_lo + (l_hi - l_lo) * draws[:, 2]) * 3600.0)  # whole seconds
        d_lo, d_hi = config.initial_displacement_mm
        self.base_mm = d_lo + (d_hi - d_lo) * draws[:, 3]
        self.trigger_s = np.full(n, np.nan)
        self.trigger_mm = np.zeros(n)
        self.fail_s = np.full(n, np.nan)
        self.failed = np.zeros(n, dtype=bool)
        self.silent = np.zeros(n, dtype=bool)
        self.slide_pending = np.zeros(n, dtype=bool)
        self.effective_mm = np.zeros(n)
        self.streams = rng.StationStreams(seed, rng.NOISE, points.ids, NOISE_WIDTH)

    def displacement_mm(self, t_s: float) -> FloatArray:
        """True cumulative displacement at ``t_s`` (closed form; see the module docstring)."""
        creep = self.creep * (t_s - self.start_s) / DAY_S
        out = self.base_mm + creep
        accel = ~np.isnan(self.trigger_s)
        if accel.any():
            i = np.flatnonzero(accel)
            tau = np.clip(t_s - self.trigger_s[i], 0.0, self.lead_s[i])
            tau_e = self.lead_s[i] / np.log(self.config.failure_velocity_mm_per_day / self.creep[i])
            v_c = self.creep[i] / DAY_S
            out[i] = self.trigger_mm[i] + v_c * tau_e * np.expm1(tau / tau_e)
        out[self.failed] += self.config.slide_mm
        return out

    def step(self, t: datetime, minute_mm: FloatArray, truth: GroundTruth) -> None:
        t_s = t.timestamp()
        self.partial += minute_mm
        self.since_report += minute_mm
        self.minutes_in_hour += 1
        if self.minutes_in_hour == 60:
            self.hours = np.roll(self.hours, 1, axis=1)
            self.hours[:, 0] = self.partial
            self.partial[:] = 0.0
            self.minutes_in_hour = 0
        antecedent = self.config.antecedent_effective_rain_mm * self.decay ** ((t_s - self.start_s) / DAY_S)
        self.effective_mm = self.partial + np.einsum("ij,ij->i", self.hours, self.weights) + antecedent
        trigger = self.susceptible & np.isnan(self.trigger_s) & (self.effective_mm >= self.threshold)
        if trigger.any():
            i = np.flatnonzero(trigger)
            before = self.displacement_mm(t_s)
            self.trigger_s[i] = t_s
            self.trigger_mm[i] = before[i]
            self.fail_s[i] = t_s + self.lead_s[i]
        due = ~self.failed & (self.fail_s <= t_s)
        for k in np.flatnonzero(due):
            when = datetime.fromtimestamp(float(self.fail_s[k]), tz=UTC)
            truth.record_failure(self.points.ids[k], self.townships[k], when)
            self.failed[k] = True
            self.slide_pending[k] = True

    def report(self, at: datetime) -> tuple[IntArray, list[dict[str, Any]]]:
        idx = np.flatnonzero(~self.silent).astype(np.intp)
        if idx.size == 0:
            return idx, []
        t_s = at.timestamp()
        true_mm = self.displacement_mm(t_s)
        u = self.streams.draw(idx)
        z = rng.normal_from_uniform(u)
        disp = true_mm[idx] + self.noise.displacement_sigma_mm * z[:, 0]
        sigma = self.noise.rain_gauge_sigma
        measured = self.since_report[idx] * np.exp(sigma * z[:, 1] - 0.5 * sigma * sigma)
        rain = np.round(np.minimum(measured, 300.0), 1)
        self.since_report[:] = 0.0
        reports: list[dict[str, Any]] = []
        ids = self.points.ids
        for row, i in enumerate(idx):
            reports.append(
                {
                    "station_id": ids[i],
                    "observed_at": at,
                    "displacement_mm": round(float(disp[row]), 2),
                    "rain_mm": float(rain[row]),
                    "interval_s": self.interval_s,
                }
            )
        just_slid = self.slide_pending[idx]
        if just_slid.any():
            self.slide_pending[idx[just_slid]] = False
            if not self.config.report_after_failure:
                self.silent[idx[just_slid]] = True
        return idx, reports


def tangent_angle_deg(velocity_mm_per_day: float, creep_mm_per_day: float) -> float:
    """α = arctan(v / v_c), §2.4 — for tests and docs."""
    return math.degrees(math.atan(velocity_mm_per_day / creep_mm_per_day))
