"""Geo-hazard monitoring point: effective antecedent rainfall plus deformation.

Two independent lines of evidence per point, each compared with the point's *own*
thresholds ("一坡一阈值", domain standards §2.3 [S]); every number below is a placeholder
default [A] to be set per point.

Rain: window totals and effective antecedent rainfall (§2.3, Crozier/Glade form [K])::

    R_eff(t) = Σ_{i=0..n-1} K^i · R_i        R_i = rain in the 24 h block i days before t

- ``K`` = ``decay_factor`` per day (0.8 default: "common in Chinese operational work";
  0.84 also quoted), ``n`` = ``antecedent_days`` (21: the Zhejiang model's window [S]).
- Choice: *hourly bins, rolling 24-h blocks*. Reports arrive every 10 min at any hour, so
  rain is binned by the hour it ends in, and block ``i`` is hours ``24i … 24i+23`` back
  from the hour of ``t``. ``R_0`` is then the last 24 h (the triggering window), not the
  calendar day, which would reset at midnight in the middle of a storm.

- Window totals (optional, ``rain_windows``): the rain of the reports ending in
  ``(t - window, t]`` against the point's own per-colour thresholds (the registry's
  ``rain_1h_mm`` … ``rain_24h_mm``); a colour is reached when *any* window total or
  ``R_eff`` reaches it (``schemas.registry.GeoHazardInfo``). Reports carry the rain since
  the previous report, so a window total is exact to the reporting interval.

Deformation (§2.4, improved tangent angle, Xu Qiang et al. 2009 [K]):

- velocity ``v`` (mm/d): Theil–Sen slope of cumulative displacement over the last
  ``velocity_window_s`` (24 h). Theil–Sen, not least squares: one wild GNSS epoch must not
  read as acceleration.
- ``T(i) = S(i) / v_c`` with ``v_c`` the point's constant-velocity-stage rate, so
  ``ΔT/Δt = v / v_c`` and ``α = arctan(v / v_c)`` in degrees: 45° while the slope creeps at
  its usual rate, → 90° as it accelerates.
- Gate: unless the velocity's one-sided lower confidence bound (Sen's rank interval,
  ``velocity_confidence`` 99.9 % [A]; decisions.md §21) reaches ``min_velocity_mm_per_day``, the deformation
  level is ``none`` whatever α says (§2.4: α "combined with a minimum displacement-rate
  gate so that noise cannot trigger"). The bound, not the estimate: over a few hours of
  reports GNSS noise alone gives velocities of several mm/d.

::

    α (deg) 0 ────────── 45 ── 50 ───────────── 80 ──── 85 ──── 90
                        blue  yellow           orange    red          (§2.4 [S]; 50 = 45 + margin [A])
    v (mm/d) 0 ── gate 2 ── 2 ──── 5 ──── 10 ──── 20                  (§2.4 placeholder gates [A])
                           blue  yellow  orange  red

Steps per report:

1. Too late (older than ``newest - allowed_lateness_s``, or in an hour already folded):
   return ``None``; state unchanged.
2. Upsert the report (time, displacement, rain) at its epoch second: a redelivery
   overwrites itself.
3. Fold: rain of hours that ended before ``newest - allowed_lateness_s`` moves into hourly
   bins (no report there can change any more); old reports are evicted once folded and
   outside the velocity window, old bins once outside ``antecedent_days``. State is
   bounded by ``antecedent_days × 24`` bins plus one velocity window of reports.
4. Evaluate at the report's own time: rain level from ``R_eff`` and the window totals, deformation level from
   ``v`` and ``α`` (gated). Final level = the higher of the two. Why max and not "both":
   each table above stands alone in its source, and a slope already accelerating needs no
   rain to fail (nor does saturated ground need the slope to move first).

Township roll-up (``township_geohazard_rollup``): the highest point level, raised to red
when at least two points of the township are at orange or above (configurable): two
independent slopes failing together say the whole area is saturated.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from itertools import pairwise
from typing import Any

from pydantic import Field, model_validator

from schemas.assessment import Evidence, HazardAssessment
from schemas.common import Level, LevelOrNone
from schemas.observations import GeoHazardObservation
from services.rules.detectors.common import (
    FrozenConfig,
    Table,
    accepts,
    epoch_s,
    evict_before,
    max_level,
    new_table,
    newest_t,
    rank,
    rows_between,
    theil_sen_lower_bound,
    upsert_row,
)

RULE_ID = "geohazard-point"
HOUR_S = 3600
DAY_S = 86400


class LevelValues(FrozenConfig):
    """One threshold per level (reached when the value is ≥ it); ``None`` disables a level."""

    blue: float | None = None
    yellow: float | None = None
    orange: float | None = None
    red: float | None = None

    @model_validator(mode="after")
    def _increasing(self) -> LevelValues:
        values = [v for v in (self.blue, self.yellow, self.orange, self.red) if v is not None]
        if any(b <= a for a, b in pairwise(values)):
            msg = "thresholds must increase from blue to red"
            raise ValueError(msg)
        return self

    def level_for(self, value: float) -> tuple[LevelOrNone, float | None]:
        pairs: tuple[tuple[LevelOrNone, float | None], ...] = (
            ("red", self.red),
            ("orange", self.orange),
            ("yellow", self.yellow),
            ("blue", self.blue),
        )
        for level, threshold in pairs:
            if threshold is not None and value >= threshold:
                return level, threshold
        return "none", None


class RainWindow(FrozenConfig):
    """Rain over a rolling window against per-level thresholds (§2.3: 1/3/6/24 h per point)."""

    window_s: int = Field(gt=0, le=7 * DAY_S)
    mm: LevelValues


class GeoHazardPointThresholds(FrozenConfig):
    """One monitoring point's thresholds (§2.3 "one slope, one threshold"); defaults [A]."""

    effective_rain_mm: LevelValues = LevelValues(blue=100.0, yellow=150.0, orange=200.0, red=250.0)
    velocity_mm_per_day: LevelValues = LevelValues(blue=2.0, yellow=5.0, orange=10.0, red=20.0)
    tangent_angle_deg: LevelValues = LevelValues(blue=45.0, yellow=50.0, orange=80.0, red=85.0)
    min_velocity_mm_per_day: float = Field(default=2.0, ge=0.0, description="§2.4 gate: slower is noise")
    constant_velocity_mm_per_day: float = Field(
        default=0.5, gt=0.0, description="the point's constant-velocity-stage rate v_c (§2.4)"
    )
    decay_factor: float = Field(default=0.8, gt=0.0, le=1.0, description="K per day (§2.3: 0.8–0.9)")
    antecedent_days: int = Field(default=21, ge=1, le=60, description="§2.3: Zhejiang used 21 d")
    velocity_window_s: int = Field(default=DAY_S, gt=0)
    min_velocity_span_s: int = Field(
        default=12 * HOUR_S,
        ge=0,
        description="shorter coverage: no velocity (a mm/d rate from hours of epochs is noise) [A]",
    )
    min_velocity_reports: int = Field(default=4, ge=2)
    velocity_confidence: float = Field(
        default=0.999,
        ge=0.5,
        lt=1.0,
        description="one-sided confidence of the velocity's lower bound the gate uses [A]",
    )
    allowed_lateness_s: int = Field(default=HOUR_S, ge=0)
    rain_windows: tuple[RainWindow, ...] = Field(default=(), description="window totals; empty: R_eff only")

    @property
    def reports_kept_s(self) -> int:
        """How far back (before the newest report less the lateness) reports are needed."""
        return max((self.velocity_window_s, *(w.window_s for w in self.rain_windows)))


DEFAULT_POINT_THRESHOLDS = GeoHazardPointThresholds()


class RollupPolicy(FrozenConfig):
    escalate_from: Level = "orange"
    escalate_min_points: int = Field(default=2, ge=2)
    escalate_to: Level = "red"


DEFAULT_ROLLUP = RollupPolicy()


def new_point_state() -> dict[str, Any]:
    """Per-point state: recent reports, closed hourly rain bins, and the fold mark."""
    return {"reports": new_table("disp_mm", "rain_mm"), "hourly": new_table("mm"), "folded_until": None}


def _hour_end(epoch: int) -> int:
    return -(-epoch // HOUR_S) * HOUR_S


def effective_rainfall_mm(daily_rain_mm: Sequence[float], decay_factor: float) -> float:
    """``Σ K^i · R_i`` with ``daily_rain_mm[0]`` the most recent day (§2.3)."""
    return sum(mm * decay_factor**i for i, mm in enumerate(daily_rain_mm))


def tangent_angle_deg(velocity_mm_per_day: float, constant_velocity_mm_per_day: float) -> float:
    """Improved tangent angle ``arctan(v / v_c)`` in degrees (§2.4)."""
    return math.degrees(math.atan(velocity_mm_per_day / constant_velocity_mm_per_day))


def _fold(state: dict[str, Any], config: GeoHazardPointThresholds) -> None:
    reports: Table = state["reports"]
    hourly: Table = state["hourly"]
    newest = newest_t(reports)
    if newest is None:
        return
    cut = (newest - config.allowed_lateness_s) // HOUR_S * HOUR_S
    folded: int | None = state["folded_until"]
    if folded is None or cut > folded:
        start = -(10**12) if folded is None else folded
        for t, rain in zip(reports["t"], reports["rain_mm"], strict=True):
            end = _hour_end(t)
            if start < end <= cut and rain is not None:
                index = hourly["t"].index(end) if end in hourly["t"] else None
                if index is None:
                    upsert_row(hourly, end, {"mm": rain})
                else:
                    hourly["mm"][index] += rain
        state["folded_until"] = cut
        folded = cut
    evict_before(hourly, newest - config.allowed_lateness_s - config.antecedent_days * DAY_S)
    oldest_needed = min(newest - config.allowed_lateness_s - config.reports_kept_s, folded - HOUR_S)
    evict_before(reports, oldest_needed + 1)


def _rain_by_hour(state: dict[str, Any], at: int) -> dict[int, float]:
    """Rain per hour end up to ``at``: folded bins plus the open reports."""
    folded: int | None = state["folded_until"]
    hourly: Table = state["hourly"]
    by_hour = dict(zip(hourly["t"], hourly["mm"], strict=True))
    reports: Table = state["reports"]
    for t, rain in zip(reports["t"], reports["rain_mm"], strict=True):
        end = _hour_end(t)
        if t <= at and rain is not None and (folded is None or end > folded):
            by_hour[end] = by_hour.get(end, 0.0) + rain
    return by_hour


def _effective_rain_at(state: dict[str, Any], at: int, config: GeoHazardPointThresholds) -> float:
    now_hour = _hour_end(at)
    daily = [0.0] * config.antecedent_days
    for end, mm in _rain_by_hour(state, at).items():
        age_h = (now_hour - end) // HOUR_S
        if 0 <= age_h < config.antecedent_days * 24:
            daily[age_h // 24] += mm
    return effective_rainfall_mm(daily, config.decay_factor)


def _velocity_at(state: dict[str, Any], at: int, config: GeoHazardPointThresholds) -> tuple[float, float] | None:
    """(velocity, its lower confidence bound) in mm/d; ``None`` on too short a record."""
    reports: Table = state["reports"]
    rows = rows_between(reports, at - config.velocity_window_s, at)
    times = reports["t"][rows]
    if len(times) < config.min_velocity_reports or times[-1] - times[0] < config.min_velocity_span_s:
        return None
    slope, lower = theil_sen_lower_bound(
        [float(t - times[0]) for t in times], reports["disp_mm"][rows], config.velocity_confidence
    )
    return slope * DAY_S, lower * DAY_S


def _window_rain_mm(state: dict[str, Any], at: int, window_s: int) -> float:
    reports: Table = state["reports"]
    rows = rows_between(reports, at - window_s, at)
    amounts: list[float | None] = reports["rain_mm"][rows]
    return round(sum(mm for mm in amounts if mm is not None), 2)


def assess_geohazard(
    obs: GeoHazardObservation,
    state: dict[str, Any],
    township_code: str,
    thresholds: GeoHazardPointThresholds = DEFAULT_POINT_THRESHOLDS,
) -> HazardAssessment | None:
    """Fold ``obs`` into the point's ``state`` (``new_point_state()``) and assess it.

    Returns ``None`` when the report is too late to be folded in (dropped).
    """
    at = epoch_s(obs.observed_at)
    folded: int | None = state["folded_until"]
    if not accepts(state["reports"], at, thresholds.allowed_lateness_s) or (
        folded is not None and _hour_end(at) <= folded
    ):
        return None
    upsert_row(state["reports"], at, {"disp_mm": obs.displacement_mm, "rain_mm": obs.rain_mm})
    _fold(state, thresholds)
    station = obs.station_id
    effective_rain = round(_effective_rain_at(state, at, thresholds), 2)
    rain_level, rain_threshold = thresholds.effective_rain_mm.level_for(effective_rain)
    evidence: list[Evidence] = [
        Evidence(
            station_id=station,
            metric="effective_rain_mm",
            value=effective_rain,
            threshold=rain_threshold,
            window_s=thresholds.antecedent_days * DAY_S,
        )
    ]
    for window in thresholds.rain_windows:
        total = _window_rain_mm(state, at, window.window_s)
        window_level, window_threshold = window.mm.level_for(total)
        if window_level != "none":
            rain_level = max_level((rain_level, window_level))
            evidence.append(
                Evidence(
                    station_id=station,
                    metric=f"rain_{window.window_s // HOUR_S}h_mm",
                    value=total,
                    threshold=window_threshold,
                    window_s=window.window_s,
                )
            )
    deformation_level: LevelOrNone = "none"
    estimate = _velocity_at(state, at, thresholds)
    if estimate is not None:
        velocity, velocity_lower = estimate
        angle = tangent_angle_deg(velocity, thresholds.constant_velocity_mm_per_day)
        velocity_level, velocity_threshold = thresholds.velocity_mm_per_day.level_for(velocity)
        angle_level, angle_threshold = thresholds.tangent_angle_deg.level_for(angle)
        # the gate asks whether the slope is *known* to move faster than noise allows: its
        # lower confidence bound, not the estimate (a short or noisy record widens it)
        gated = velocity_lower < thresholds.min_velocity_mm_per_day
        if not gated:
            deformation_level = max_level((velocity_level, angle_level))
        evidence += [
            Evidence(
                station_id=station,
                metric="velocity_mm_per_day",
                value=round(velocity, 3),
                threshold=None if gated else velocity_threshold,
                window_s=thresholds.velocity_window_s,
            ),
            Evidence(
                station_id=station,
                metric="velocity_lower_bound_mm_per_day",
                value=round(velocity_lower, 3),
                threshold=thresholds.min_velocity_mm_per_day,
                window_s=thresholds.velocity_window_s,
            ),
            Evidence(
                station_id=station,
                metric="tangent_angle_deg",
                value=round(angle, 2),
                threshold=None if gated else angle_threshold,
                window_s=thresholds.velocity_window_s,
            ),
        ]
    return HazardAssessment(
        hazard="geohazard",
        township_code=township_code,
        source_id=station,
        assessed_at=obs.observed_at,
        level=max_level((rain_level, deformation_level)),
        rule_id=RULE_ID,
        evidence=tuple(evidence),
    )


def township_geohazard_rollup(point_levels: Iterable[str], policy: RollupPolicy = DEFAULT_ROLLUP) -> LevelOrNone:
    """Township geo-hazard level from its monitoring points' levels (see module doc)."""
    levels = list(point_levels)
    highest = max_level(levels)
    at_or_above = sum(1 for level in levels if rank(level) >= rank(policy.escalate_from))
    if at_or_above >= policy.escalate_min_points:
        return max_level((highest, policy.escalate_to))
    return highest
