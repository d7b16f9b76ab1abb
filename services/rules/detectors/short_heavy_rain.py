"""Short-duration heavy rain (SHR, 短时强降水) per gauge, observed and nowcast.

Numbers (domain standards §1.6): SHR is hourly rain ≥ 20 mm [S]; the graded bins
≥ 20/30/50/80 mm/h are common [K]; the suggested nowcast rule set is watch ≥ 20,
warning ≥ 30, severe ≥ 50 mm/h [A]. CMA has no SHR colour signal, so the colours here
are a design choice [A]:

    rain in 60 min   ≥ 20 mm   ≥ 30 mm   ≥ 50 mm   ≥ 80 mm
    level            blue      yellow    orange    red

Why this mapping and not yellow/orange/red for 20/30/50: 50 mm in one hour already meets
the rainstorm *orange* criterion (3 h ≥ 50 mm, §1.2), so SHR must not say less than orange
for it; 20 mm/h is only the definition of SHR (blue, "general" in §1.1); and ≥ 80 mm/h is
the top graded bin of §1.6, close to the > 75 mm in 1 h after which Wenzhou issued a red
rainstorm signal (§1.6 [S]). All four are data (``ShortHeavyRainThresholds``); set one to
``None`` to drop that level.

Observed (``assess_short_heavy_rain``), per gauge report::

    time ──────────────────────────────────────────────▶ t (report end)
             │◀────────────── 60 min ─────────────▶│
      ░░░░░░░│▓▓▓▓▓▓▓│▓▓▓▓▓▓▓│       │▓▓▓▓▓▓▓│▓▓▓▓▓▓▓│   ▓ report held, ░ evicted
                                 gap: adds nothing, coverage < 1

1. A report older than ``newest - allowed_lateness_s`` is too late: return ``None``
   (the adapter counts the drop); state is unchanged.
2. Upsert the report at its end time (epoch seconds): a redelivery overwrites itself.
3. Evict reports older than ``newest - allowed_lateness_s - window_s``: every report that
   can still be accepted has its whole window in state, and state is bounded by window
   length, not by uptime.
4. Sum the reports with ``t - window < end <= t`` (a report counts wholly in the window
   its end falls in). A late report is assessed at its own time, like the rainstorm rule.
5. The highest level whose threshold the sum reaches wins. Gaps add nothing: the sum is a
   lower bound, and the evidence carries ``window_coverage`` (Σ interval / window) so a
   reader can see that.

Nowcast (``assess_short_heavy_rain_forecast``): the radar nowcaster passes the forecast
60-min accumulation at a township and the predicted time it crosses the threshold; the
same thresholds give the level, with ``basis="forecast"``, certainty ``Likely`` and
``onset_at`` = the predicted crossing (clamped to the issue time if already crossed).
"""

from __future__ import annotations

import functools
from bisect import bisect_left
from datetime import datetime
from itertools import pairwise
from typing import NamedTuple

from pydantic import Field, model_validator

from schemas.assessment import Evidence, HazardAssessment
from schemas.common import LevelOrNone
from schemas.observations import RainObservation
from services.rules.detectors.common import (
    FrozenConfig,
    Table,
    epoch_s,
    new_table,
    upsert_row,
)

RULE_ID = "shr-observed-1h"
FORECAST_RULE_ID = "shr-nowcast-1h"


@functools.lru_cache(maxsize=256)
def _highest_first(
    red: float | None, orange: float | None, yellow: float | None, blue: float | None
) -> tuple[tuple[LevelOrNone, float], ...]:
    pairs: tuple[tuple[LevelOrNone, float | None], ...] = (
        ("red", red),
        ("orange", orange),
        ("yellow", yellow),
        ("blue", blue),
    )
    return tuple((level, mm) for level, mm in pairs if mm is not None)


class ShortHeavyRainThresholds(FrozenConfig):
    """60-min rain per level (§1.6); ``None`` disables a level. Must increase with level."""

    blue_mm: float | None = Field(default=20.0, gt=0.0)
    yellow_mm: float | None = Field(default=30.0, gt=0.0)
    orange_mm: float | None = Field(default=50.0, gt=0.0)
    red_mm: float | None = Field(default=80.0, gt=0.0)

    @model_validator(mode="after")
    def _increasing(self) -> ShortHeavyRainThresholds:
        values = [v for v in (self.blue_mm, self.yellow_mm, self.orange_mm, self.red_mm) if v is not None]
        if any(b <= a for a, b in pairwise(values)):
            msg = "SHR thresholds must increase from blue to red"
            raise ValueError(msg)
        return self

    def highest_first(self) -> tuple[tuple[LevelOrNone, float], ...]:
        return _highest_first(self.red_mm, self.orange_mm, self.yellow_mm, self.blue_mm)

    def level_for(self, rain_1h_mm: float) -> tuple[LevelOrNone, float | None]:
        """The highest level reached and its threshold; ``("none", None)`` below all."""
        for level, threshold in self.highest_first():
            if rain_1h_mm >= threshold:
                return level, threshold
        return "none", None


class ShortHeavyRainConfig(FrozenConfig):
    thresholds: ShortHeavyRainThresholds = ShortHeavyRainThresholds()
    window_s: int = Field(default=3600, gt=0, description="rolling accumulation window (§1.6: hourly)")
    allowed_lateness_s: int = Field(default=600, ge=0, description="reports older than newest - this are dropped")


DEFAULT_SHR_CONFIG = ShortHeavyRainConfig()


def new_gauge_state() -> Table:
    """Per-gauge state: report end times with their rain and interval."""
    return new_table("mm", "interval_s")


class ShrObserved(NamedTuple):
    level: LevelOrNone
    threshold: float | None
    rain_1h_mm: float
    coverage: float
    """Σ interval / window over the reports summed; computed only when ``level`` is not none."""


def short_heavy_rain_level(
    state: Table, end: int, rain_mm: float, interval_s: int, config: ShortHeavyRainConfig = DEFAULT_SHR_CONFIG
) -> ShrObserved | None:
    """Fold a report ending at ``end`` into ``state`` and find its level; ``None``: too late."""
    times: list[int] = state["t"]
    if times and end < times[-1] - config.allowed_lateness_s:
        return None
    if not times or end > times[-1]:
        times.append(end)
        state["mm"].append(rain_mm)
        state["interval_s"].append(float(interval_s))
    else:
        upsert_row(state, end, {"mm": rain_mm, "interval_s": float(interval_s)})
    window = config.window_s
    amounts: list[float] = state["mm"]
    intervals: list[float] = state["interval_s"]
    cut = bisect_left(times, times[-1] - config.allowed_lateness_s - window + 1)  # evict_before
    if cut:
        del times[:cut]
        del amounts[:cut]
        del intervals[:cut]
    # rows_between(state, end - window, end)
    lo = bisect_left(times, end - window + 1)
    hi = len(times) if times[-1] == end else bisect_left(times, end + 1)
    rain_1h_mm = round(sum(amounts[lo:hi]), 3)
    for level, threshold in config.thresholds.highest_first():  # ShortHeavyRainThresholds.level_for
        if rain_1h_mm >= threshold:
            coverage = min(1.0, sum(intervals[lo:hi]) / window)
            return ShrObserved(level, threshold, rain_1h_mm, coverage)
    return ShrObserved("none", None, rain_1h_mm, 0.0)


def short_heavy_rain_evidence(
    station_id: str, found: ShrObserved, config: ShortHeavyRainConfig
) -> tuple[Evidence, ...]:
    return (
        Evidence(
            station_id=station_id,
            metric="rain_1h_mm",
            value=found.rain_1h_mm,
            threshold=found.threshold,
            window_s=config.window_s,
        ),
        Evidence(station_id=station_id, metric="window_coverage", value=round(found.coverage, 3)),
    )


def assess_short_heavy_rain(
    obs: RainObservation,
    state: Table,
    township_code: str,
    config: ShortHeavyRainConfig = DEFAULT_SHR_CONFIG,
) -> HazardAssessment | None:
    """Fold ``obs`` into the gauge's ``state`` (``new_gauge_state()``) and assess it.

    Returns ``None`` when the report is older than the allowed lateness (dropped).
    """
    found = short_heavy_rain_level(state, epoch_s(obs.observed_at), obs.rain_mm, obs.interval_s, config)
    if found is None:
        return None
    return HazardAssessment(
        hazard="short_heavy_rain",
        township_code=township_code,
        source_id=obs.station_id,
        assessed_at=obs.observed_at,
        level=found.level,
        rule_id=RULE_ID,
        evidence=short_heavy_rain_evidence(obs.station_id, found, config) if found.level != "none" else (),
    )


def assess_short_heavy_rain_forecast(
    township_code: str,
    source_id: str,
    issued_at: datetime,
    forecast_rain_1h_mm: float,
    onset_at: datetime | None,
    config: ShortHeavyRainConfig = DEFAULT_SHR_CONFIG,
    rule_id: str = FORECAST_RULE_ID,
) -> HazardAssessment:
    """SHR from a nowcast 60-min accumulation at a township (radar or NWP).

    ``onset_at`` is the predicted time the accumulation crosses the threshold of the level
    it reaches; ``None`` means "already" (the issue time is used).
    """
    level, threshold = config.thresholds.level_for(forecast_rain_1h_mm)
    if level == "none":
        return HazardAssessment(
            hazard="short_heavy_rain",
            township_code=township_code,
            source_id=source_id,
            assessed_at=issued_at,
            level="none",
            rule_id=rule_id,
            certainty="Likely",
        )
    onset = issued_at if onset_at is None or onset_at < issued_at else onset_at
    return HazardAssessment(
        hazard="short_heavy_rain",
        township_code=township_code,
        source_id=source_id,
        assessed_at=issued_at,
        level=level,
        rule_id=rule_id,
        onset_at=onset,
        certainty="Likely",
        evidence=(
            Evidence(
                station_id=source_id,
                metric="rain_1h_forecast_mm",
                value=round(forecast_rain_1h_mm, 2),
                threshold=threshold,
                window_s=config.window_s,
                basis="forecast",
            ),
        ),
    )
