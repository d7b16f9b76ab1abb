"""Rainstorm nowcast: the radar's observed rain plus its forecast rain, per township.

CMA Decree 16 (§1.2 [S]) gives each rainstorm colour two conditions: the window's rain
*will reach* the threshold, or *has reached* it and rain is likely to continue. The gauges
(``rainstorm``) judge what has fallen; this detector judges what will, where the radar's
nowcast reaches (`radar-rainstorm-nowcast`). §1.2's rule-engine form [A] is
``max(obs_accum(window), fcst_accum(window)) ≥ threshold``; the radar's horizon (90 min) is
shorter than the windows (3 h and more), so the forecast half is the rolling window that
*ends in the forecast*: for each step ``h`` of the horizon,

    total(h) = observed(t + h − W, t] + forecast(t, t + h]

- **observed**: the radar's own QPE at the township (Z–R of the scan, the mean rain rate over
  the grid cells within ``radius_km`` of the township's reference point, no echo = 0), the
  trapezoid between consecutive scans, kept in ``bucket_s`` buckets. A gap between scans
  longer than ``max_gap_s`` adds nothing, and only buckets wholly inside the window count,
  so it is a lower bound, like the gauges' sums.
- **forecast**: the township's forecast rain rate at each step of the cell nowcast
  (``convection.nowcast_swaths``: tracked cells ≥ 35 dBZ, extrapolated), trapezoid.

A rule (level, window ``W``, threshold) holds when, for some step ``h`` of the horizon,
``total(h) ≥ threshold`` with ``forecast(t, t + h] ≥ min_forecast_mm`` (rain is forecast to
continue: without forecast rain there is nothing to add to what the gauges say) and
``observed(t + h − W, t] ≥ min_observed_fraction · threshold`` (half, by default: the
forecast completes an accumulation under way; extrapolated cells alone are not skilful
enough at township scale to announce a 3-h rainstorm, decision 28). Only rules
whose window is at least the horizon and at most ``max_window_s`` are nowcast; by default
the 3-h rules, orange and red, as the domain notes suggest ("feed 3-h accumulations into the
暴雨 orange/red rules", §1.6 [A]). ``onset_at`` is ``t`` when the radar's observed rain
already reaches the threshold, else the end of the first step whose total does.

Timeline, one township, X-band scans every minute, orange (3 h ≥ 50 mm)::

    time            10:00        11:30                 12:00
    radar observed  ───── 20 mm/h stratiform ─────▶ 40 mm by 12:00
    cell forecast                                      + 15 mm over 12:05–12:30
    total(h)                                           40 + 15 = 55 ≥ 50 at h = 25 min
    assessment                                         orange, onset 12:25, Likely

State (in the radar's state, JSON-compatible, bounded by ``max_window_s`` / ``bucket_s``
buckets of the townships' values)::

    {"n": townships, "last": last scan s, "prev": rates at it | None,
     "t": [bucket starts], "mm": [[mm per township], …]}   (only buckets with rain)

Limits: the observed half is unadjusted radar QPE (no gauge merging): a Z–R bias is a bias
in the warning. Stratiform rain below the cell threshold (35 dBZ) counts as observed but is
not forecast: only cells are extrapolated.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from pydantic import Field

from schemas.common import LevelOrNone
from services.rules.detectors.common import KM_PER_DEG_LAT, FrozenConfig
from services.rules.detectors.rainstorm import DEFAULT_RAINSTORM_RULES, RainstormRule

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
RULE_ID = "radar-rainstorm-nowcast"


class RainstormNowcastConfig(FrozenConfig):
    enabled: bool = True
    rules: tuple[RainstormRule, ...] = DEFAULT_RAINSTORM_RULES
    max_window_s: int = Field(
        default=3 * 3600, gt=0, description="[A] rules with longer windows are left to the gauges (§1.6: 3-h rules)"
    )
    bucket_s: int = Field(default=300, gt=0, description="the observed rain's time resolution")
    radius_km: float = Field(default=1.0, ge=0.0, description="[A] QPE: mean rain rate within this of the township")
    max_gap_s: int = Field(
        default=720, gt=0, description="[A] two S-band cycles: a longer gap between scans adds no rain"
    )
    min_forecast_mm: float = Field(
        default=1.0, ge=0.0, description="[A] 'rain likely to continue': forecast rain needed for a rule to hold"
    )
    min_observed_fraction: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="[A] the radar's observed rain in the window must be at least this share of the threshold: "
        "the forecast completes an accumulation under way, it does not make one alone (decision 28)",
    )

    def nowcast_rules(self, horizon_s: int) -> tuple[RainstormRule, ...]:
        """The rules this detector judges, highest first (``rules`` order)."""
        return tuple(r for r in self.rules if r.level != "none" and horizon_s <= r.window_s <= self.max_window_s)


DEFAULT_RAINSTORM_NOWCAST = RainstormNowcastConfig()


@dataclass(frozen=True, slots=True)
class PointSampling:
    """Per township (all of them, in order): the grid cells it averages, as flat indices."""

    flat: IntArray
    owner: IntArray
    counts: FloatArray


class Points(Protocol):
    """Township reference points (``convection.TownshipPoints``), hashed by identity."""

    @property
    def lon(self) -> FloatArray: ...
    @property
    def lat(self) -> FloatArray: ...


@lru_cache(maxsize=32)
def point_sampling(
    points: Points,
    origin_lon: float,
    origin_lat: float,
    cell_deg: float,
    n_rows: int,
    n_cols: int,
    radius_km: float,
) -> PointSampling:
    """The on-grid cells within ``radius_km`` (a square of them) of each point; per radar geometry, cached."""
    k = math.ceil(radius_km / (cell_deg * KM_PER_DEG_LAT)) if radius_km > 0 else 0
    flat: list[int] = []
    owner: list[int] = []
    counts = np.zeros(points.lon.size)
    for i, (x, y) in enumerate(zip(points.lon.tolist(), points.lat.tolist(), strict=True)):
        row, col = math.floor((y - origin_lat) / cell_deg), math.floor((x - origin_lon) / cell_deg)
        for r in range(max(0, row - k), min(n_rows, row + k + 1)):
            for c in range(max(0, col - k), min(n_cols, col + k + 1)):
                flat.append(r * n_cols + c)
                owner.append(i)
                counts[i] += 1
    return PointSampling(np.array(flat, dtype=np.intp), np.array(owner, dtype=np.intp), counts)


def sample_rates(
    dbz_grid: npt.NDArray[np.floating[Any]], sampling: PointSampling, rate_of: Callable[[FloatArray], FloatArray]
) -> FloatArray:
    """Mean rain rate (mm/h, ``rate_of`` the dBZ; no echo is NaN) per township over its cells;
    0 where it has none on the grid."""
    n = sampling.counts.size
    if not sampling.flat.size:
        return np.zeros(n)
    rates = rate_of(np.asarray(dbz_grid, dtype=np.float64).ravel()[sampling.flat])
    total = np.bincount(sampling.owner, weights=rates, minlength=n)
    means: FloatArray = np.divide(total, sampling.counts, out=np.zeros(n), where=sampling.counts > 0)
    return means


def cumulative_rain_mm(rate_mm_h: FloatArray, step_s: int) -> FloatArray:
    """Rain from step 0 to each step (trapezoid between steps), per row: (T, K), column 0 is 0."""
    interval = (rate_mm_h[:, 1:] + rate_mm_h[:, :-1]) * 0.5 * step_s / 3600.0
    cumulative: FloatArray = np.concatenate([np.zeros((rate_mm_h.shape[0], 1)), np.cumsum(interval, axis=1)], axis=1)
    return cumulative


def new_qpe_state(n_townships: int) -> dict[str, Any]:
    return {"n": n_townships, "last": None, "prev": None, "t": [], "mm": []}


def fold_qpe(state: dict[str, Any], scan_s: int, rates: FloatArray, config: RainstormNowcastConfig) -> None:
    """Add the rain since the last scan (trapezoid of the two scans' rates) to its bucket.

    ``rates``: mm/h per township at ``scan_s``. A scan at or before the last one folded adds
    nothing (a redelivery; late scans are dropped by the caller). After a gap longer than
    ``max_gap_s`` the interval adds nothing: the rain in it is unknown.
    """
    last: int | None = state["last"]
    if last is not None and scan_s <= last:
        return
    prev = state["prev"]
    if last is not None and scan_s - last <= config.max_gap_s:
        before = np.asarray(prev, dtype=np.float64) if prev is not None else np.zeros(rates.size)
        added = (before + rates) * 0.5 * (scan_s - last) / 3600.0
        if np.any(added > 0):
            _add(state, scan_s, added, config.bucket_s)
    state["last"] = scan_s
    state["prev"] = np.round(rates, 3).tolist() if np.any(rates > 0) else None
    horizon = scan_s - config.max_window_s - config.bucket_s
    while state["t"] and state["t"][0] < horizon:
        del state["t"][0], state["mm"][0]


def _add(state: dict[str, Any], scan_s: int, added: FloatArray, bucket_s: int) -> None:
    start = (scan_s - 1) // bucket_s * bucket_s  # bucket (start, start + bucket_s] holds scan_s
    starts: list[int] = state["t"]
    if starts and starts[-1] == start:
        state["mm"][-1] = np.round(np.asarray(state["mm"][-1], dtype=np.float64) + added, 3).tolist()
    else:
        starts.append(start)
        state["mm"].append(np.round(added, 3).tolist())


@dataclass(frozen=True, slots=True)
class RainstormNowcast:
    """One township's nowcast that reaches a rule."""

    level: LevelOrNone
    threshold_mm: float
    window_s: int
    total_mm: float
    observed_mm: float
    forecast_mm: float
    lead_s: int
    """step ``h`` of the total given (the rule's highest)"""
    onset_s: int


def rainstorm_nowcast(
    state: dict[str, Any],
    scan_s: int,
    towns: IntArray,
    forecast_rate_mm_h: FloatArray,
    step_s: int,
    config: RainstormNowcastConfig = DEFAULT_RAINSTORM_NOWCAST,
) -> list[RainstormNowcast | None]:
    """Per township ``towns[i]`` (indices into the state's townships), the highest rule that holds.

    ``forecast_rate_mm_h``: (len(towns), K) forecast rate at steps ``0, step_s, …``.
    """
    n_steps = forecast_rate_mm_h.shape[1] if forecast_rate_mm_h.ndim == 2 else 0
    rules = config.nowcast_rules((n_steps - 1) * step_s) if n_steps > 1 else ()
    out: list[RainstormNowcast | None] = [None] * len(towns)
    if not rules or not len(towns):
        return out
    forecast = cumulative_rain_mm(forecast_rate_mm_h, step_s)  # (T, K)
    continuing = forecast >= config.min_forecast_mm
    if not continuing.any():
        return out
    starts = np.asarray(state["t"], dtype=np.int64)
    buckets = np.asarray(state["mm"], dtype=np.float64)[:, towns] if state["mm"] else np.zeros((0, len(towns)))
    # suffix[i] = rain in buckets i…end; a window from ``since`` takes the buckets starting at or after it
    suffix = np.concatenate([np.cumsum(buckets[::-1], axis=0)[::-1], np.zeros((1, len(towns)))], axis=0)
    offsets = np.arange(n_steps, dtype=np.int64) * step_s
    for rule in rules:  # highest first: a township keeps the first rule that holds
        first = np.searchsorted(starts, scan_s + offsets - rule.window_s, side="left")
        observed = suffix[first].T  # (T, K)
        total = observed + forecast
        under_way = observed >= config.min_observed_fraction * rule.threshold_mm
        holds = (total >= rule.threshold_mm) & continuing & under_way
        for i in np.flatnonzero(holds.any(axis=1)).tolist():
            if out[i] is not None:
                continue
            best = int(np.argmax(np.where(holds[i], total[i], -np.inf)))
            now = bool(observed[i, 0] >= rule.threshold_mm)
            onset = scan_s if now else scan_s + int(offsets[int(np.argmax(total[i] >= rule.threshold_mm))])
            out[i] = RainstormNowcast(
                level=rule.level,
                threshold_mm=rule.threshold_mm,
                window_s=rule.window_s,
                total_mm=round(float(total[i, best]), 1),
                observed_mm=round(float(observed[i, best]), 1),
                forecast_mm=round(float(forecast[i, best]), 1),
                lead_s=int(offsets[best]),
                onset_s=onset,
            )
    return out
