"""Water-level and tide gauges: level, rate of rise, and projected crossing.

Levels (domain standards §3.2, MWR flood signals [S]) for a river gauge::

    level_m ──────┬──────────────┬──────────────┬──────────────┬──────────▶
                  warning − 0.3  warning        guaranteed     historical max
    level   none  │ blue         │ yellow       │ orange       │ red
                  "near warning"  ≥ warning      ≥ guaranteed   ≥ record

"Near" the warning level is read as within ``near_warning_margin_m`` (0.3 m [A]) below it.
Tide gauges use the four-colour warning tides of GB/T 17839-2011 (§3.1 [S]) directly,
hazard ``tide``; their per-station values are configuration (§3.3 has only the single
pre-2011 warning tide, e.g. 温州 4.00 m [D]).

Rate of rise (§3.6 [A], no national standard exists): attention ≥ 0.3 m/h → blue,
warning ≥ 0.5 m/h → yellow, danger ≥ 1.0 m/h → orange, over ``rate_window_s`` (30 min).
Off for tide gauges: an M2 tide (§3.5) of 2 m amplitude rises at up to 2π·2/12.42 ≈ 1 m/h [D].

Projection (so the warning comes *before* the crossing, §3.6 "projected to reach the
warning level within 60 min by linear extrapolation of the last 30 min")::

    level_m                          ╱ projected (slope fitted over fit window)
      yellow ─────────────────────╳──────────────── crossing = onset_at
                            ●  ╱
                       ●  ●            horizon (3 h rivers, 1 h tides)
                  ●  ●  │◀─────────── projection_horizon_s ──────────▶│
           ───────────── t (now)

Steps per reading:

1. Too late (older than ``newest - allowed_lateness_s``): return ``None``, state unchanged.
2. Upsert the reading at its epoch second (a redelivery overwrites itself); evict readings
   older than the longest window plus the lateness.
3. Evaluate at the reading's own time with the readings up to it:
   a. observed level from the thresholds;
   b. rate of rise: Theil–Sen slope over ``rate_window_s`` (robust to one spiked reading),
      only when ≥ ``min_fit_readings`` readings span ≥ half the window (a gap gives no
      rate rather than a rate from two distant readings);
   c. projection over ``projection_fit_window_s``: ``linear`` (Theil–Sen line) for rivers;
      ``tidal`` for tides: least squares of ``a + b·cos ωt + c·sin ωt`` with the M2 period
      (12.42 h, §3.5), which turns at high water where a line (or a parabola fitted to the
      flank) overshoots; the offset ``a`` absorbs a slowly varying surge. The fitted shape
      is anchored at the current reading, sampled every minute, and counts only while
      rising faster than ``min_rise_m_per_h``. The highest level crossed within the horizon
      is the projected level; its first crossing minute is ``onset_at``.
4. Level = max(observed, rate, projected). When the projection alone gives the highest
   level the assessment is ``basis="forecast"``, certainty ``Likely``, with ``onset_at``;
   otherwise it is ``Observed``.
"""

from __future__ import annotations

import math
from itertools import pairwise
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field, model_validator

from schemas.assessment import Evidence, HazardAssessment
from schemas.common import LevelOrNone
from schemas.observations import WaterLevelObservation
from services.rules.detectors.common import (
    FrozenConfig,
    Table,
    accepts,
    epoch_s,
    evict_before,
    from_epoch_s,
    max_level,
    new_table,
    newest_t,
    rank,
    rows_between,
    theil_sen_slope,
    upsert_row,
)

RULE_ID = "water-level"


class GaugeLevels(FrozenConfig):
    """Stage per level in the gauge's datum (m); ``None`` disables a level."""

    blue_m: float | None = None
    yellow_m: float | None = None
    orange_m: float | None = None
    red_m: float | None = None

    @model_validator(mode="after")
    def _increasing(self) -> GaugeLevels:
        values = [v for v in (self.blue_m, self.yellow_m, self.orange_m, self.red_m) if v is not None]
        if not values:
            msg = "a gauge needs at least one level"
            raise ValueError(msg)
        if any(b <= a for a, b in pairwise(values)):
            msg = "gauge levels must increase from blue to red"
            raise ValueError(msg)
        return self

    def ascending(self) -> tuple[tuple[LevelOrNone, float], ...]:
        pairs: tuple[tuple[LevelOrNone, float | None], ...] = (
            ("blue", self.blue_m),
            ("yellow", self.yellow_m),
            ("orange", self.orange_m),
            ("red", self.red_m),
        )
        return tuple((level, m) for level, m in pairs if m is not None)

    def level_for(self, level_m: float) -> tuple[LevelOrNone, float | None]:
        reached: tuple[LevelOrNone, float | None] = ("none", None)
        for level, threshold in self.ascending():
            if level_m >= threshold:
                reached = (level, threshold)
        return reached


class RateOfRise(FrozenConfig):
    """Rise rates per level (§3.6 [A]); plain networks (温瑞塘河) want ≈ 0.1 m/h."""

    blue_m_per_h: float | None = 0.3
    yellow_m_per_h: float | None = 0.5
    orange_m_per_h: float | None = 1.0

    def level_for(self, rate_m_per_h: float) -> tuple[LevelOrNone, float | None]:
        pairs: tuple[tuple[LevelOrNone, float | None], ...] = (
            ("orange", self.orange_m_per_h),
            ("yellow", self.yellow_m_per_h),
            ("blue", self.blue_m_per_h),
        )
        for level, threshold in pairs:
            if threshold is not None and rate_m_per_h >= threshold:
                return level, threshold
        return "none", None


M2_PERIOD_S = 44_712
"""The principal lunar semidiurnal period, 12.42 h (§3.5)."""


class WaterGaugeConfig(FrozenConfig):
    hazard: Literal["flood", "tide"] = "flood"
    levels: GaugeLevels
    rate_of_rise: RateOfRise | None = RateOfRise()
    rate_window_s: int = Field(default=1800, gt=0, description="§3.6: sustained over 30 min")
    projection: Literal["linear", "tidal", "none"] = "linear"
    projection_fit_window_s: int = Field(default=1800, gt=0, description="§3.6: the last 30 min")
    projection_horizon_s: int = Field(default=3 * 3600, gt=0)
    tidal_period_s: float = Field(default=M2_PERIOD_S, gt=0.0, description="M2 (§3.5)")
    min_rise_m_per_h: float = Field(default=0.05, ge=0.0, description="slower rises are not projected")
    min_fit_readings: int = Field(default=3, ge=2)
    allowed_lateness_s: int = Field(default=600, ge=0)


def river_gauge(
    warning_level_m: float,
    guaranteed_level_m: float | None = None,
    historical_max_m: float | None = None,
    near_warning_margin_m: float = 0.3,
) -> WaterGaugeConfig:
    """A river gauge with the §3.2 mapping from its warning / guaranteed / record levels."""
    return WaterGaugeConfig(
        hazard="flood",
        levels=GaugeLevels(
            blue_m=warning_level_m - near_warning_margin_m if near_warning_margin_m > 0 else None,
            yellow_m=warning_level_m,
            orange_m=guaranteed_level_m,
            red_m=historical_max_m,
        ),
    )


def tide_gauge(blue_m: float, yellow_m: float, orange_m: float, red_m: float) -> WaterGaugeConfig:
    """A tide gauge with four-colour warning tides (§3.1); M2 fit over one period, 1 h ahead.

    The harmonic is fitted over a whole M2 period (12.42 h, §3.5): over a few hours the
    constant, cosine and sine terms are nearly collinear, so a fit there extrapolates noise
    on a still reach into a metre-scale "tide" (a quiet day's canal gauge projected from
    2.98 m to its guaranteed level within the hour). Until half a period is on record the
    gauge is judged on its observed level only.
    """
    return WaterGaugeConfig(
        hazard="tide",
        levels=GaugeLevels(blue_m=blue_m, yellow_m=yellow_m, orange_m=orange_m, red_m=red_m),
        rate_of_rise=None,
        projection="tidal",
        projection_fit_window_s=M2_PERIOD_S,
        projection_horizon_s=3600,
    )


def new_gauge_state() -> Table:
    return new_table("level_m")


def _enough(times: list[int], window_s: int, config: WaterGaugeConfig) -> bool:
    return len(times) >= config.min_fit_readings and times[-1] - times[0] >= window_s / 2


def _rise_rate_m_per_h(state: Table, at: int, config: WaterGaugeConfig) -> float | None:
    rows = rows_between(state, at - config.rate_window_s, at)
    times: list[int] = state["t"][rows]
    if not _enough(times, config.rate_window_s, config):
        return None
    slope, _ = theil_sen_slope([float(t - at) for t in times], state["level_m"][rows])
    return slope * 3600.0


def _projection(state: Table, at: int, level_now: float, config: WaterGaugeConfig) -> npt.NDArray[np.float64] | None:
    """Projected stage every minute over the horizon (index = minutes from ``at``), anchored
    at the current reading; ``None`` when there is no projection (too few readings, not
    rising fast enough)."""
    rows = rows_between(state, at - config.projection_fit_window_s, at)
    times: list[int] = state["t"][rows]
    if config.projection == "none" or not _enough(times, config.projection_fit_window_s, config):
        return None
    x = np.array([(t - at) / 3600.0 for t in times])
    y = np.array(state["level_m"][rows], dtype=np.float64)
    ahead_h = np.arange(0, config.projection_horizon_s // 60 + 1) / 60.0
    if config.projection == "linear":
        slope, _ = theil_sen_slope(x, y)
        if slope < config.min_rise_m_per_h:
            return None
        projected: npt.NDArray[np.float64] = level_now + slope * ahead_h
        return projected
    omega = 2.0 * math.pi * 3600.0 / config.tidal_period_s
    basis = np.column_stack([np.ones_like(x), np.cos(omega * x), np.sin(omega * x)])
    (_, cos_k, sin_k), *_ = np.linalg.lstsq(basis, y, rcond=None)
    slope = float(omega * sin_k)  # d/dh of cos_k·cos(ωh) + sin_k·sin(ωh) at h = 0
    if slope < config.min_rise_m_per_h:
        return None
    shape = cos_k * np.cos(omega * ahead_h) + sin_k * np.sin(omega * ahead_h)
    return np.asarray(level_now + shape - cos_k, dtype=np.float64)


def assess_water_level(
    obs: WaterLevelObservation,
    state: Table,
    township_code: str,
    gauge: WaterGaugeConfig,
) -> HazardAssessment | None:
    """Fold ``obs`` into the gauge's ``state`` (``new_gauge_state()``) and assess it.

    Returns ``None`` when the reading is older than the allowed lateness (dropped).
    """
    at = epoch_s(obs.observed_at)
    if not accepts(state, at, gauge.allowed_lateness_s):
        return None
    upsert_row(state, at, {"level_m": obs.level_m})
    longest = max(gauge.rate_window_s, gauge.projection_fit_window_s)
    evict_before(state, (newest_t(state) or at) - gauge.allowed_lateness_s - longest)
    station = obs.station_id
    level_m = obs.level_m
    observed_level, observed_threshold = gauge.levels.level_for(level_m)
    evidence: list[Evidence] = [
        Evidence(station_id=station, metric="level_m", value=round(level_m, 3), threshold=observed_threshold)
    ]
    rate_level: LevelOrNone = "none"
    rate = _rise_rate_m_per_h(state, at, gauge)
    if rate is not None:
        rate_threshold: float | None = None
        if gauge.rate_of_rise is not None:
            rate_level, rate_threshold = gauge.rate_of_rise.level_for(rate)
        evidence.append(
            Evidence(
                station_id=station,
                metric="rise_rate_m_per_h",
                value=round(rate, 3),
                threshold=rate_threshold,
                window_s=gauge.rate_window_s,
            )
        )
    observed = max_level((observed_level, rate_level))
    projected_level: LevelOrNone = "none"
    projected_threshold = 0.0
    onset_s: float | None = None
    curve = _projection(state, at, level_m, gauge)
    for level, threshold in gauge.levels.ascending():
        if curve is None or rank(level) <= rank(observed) or level_m >= threshold:
            continue
        crossed = np.nonzero(curve >= threshold)[0]
        if crossed.size:
            projected_level, onset_s = level, float(crossed[0] * 60)
            projected_threshold = threshold
    if rank(projected_level) > rank(observed) and onset_s is not None:
        evidence.append(
            Evidence(
                station_id=station,
                metric="projected_level_m",
                value=projected_threshold,
                threshold=projected_threshold,
                window_s=round(onset_s),
                basis="forecast",
            )
        )
        return HazardAssessment(
            hazard=gauge.hazard,
            township_code=township_code,
            source_id=station,
            assessed_at=obs.observed_at,
            level=projected_level,
            rule_id=f"{RULE_ID}-projected",
            onset_at=from_epoch_s(at + round(onset_s)),
            certainty="Likely",
            evidence=tuple(evidence),
        )
    return HazardAssessment(
        hazard=gauge.hazard,
        township_code=township_code,
        source_id=station,
        assessed_at=obs.observed_at,
        level=observed,
        rule_id=RULE_ID,
        evidence=tuple(evidence),
    )
