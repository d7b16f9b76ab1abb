"""CMA rainstorm signal per gauge from observed rolling accumulations.

Thresholds (CMA Decree 16, domain standards §1.2): 12 h ≥ 50 mm blue, 6 h ≥ 50 mm
yellow, 3 h ≥ 50 mm orange, 3 h ≥ 100 mm red. They are data (``RainstormThresholds``),
not code; the highest level whose condition holds wins.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right

from pydantic import BaseModel, ConfigDict

from schemas.assessment import Evidence, HazardAssessment
from schemas.common import LevelOrNone
from schemas.observations import RainObservation
from services.rules.windows import Series, add_report


class RainstormRule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    level: LevelOrNone
    window_s: int
    threshold_mm: float


DEFAULT_RAINSTORM_RULES: tuple[RainstormRule, ...] = (
    RainstormRule(level="red", window_s=3 * 3600, threshold_mm=100.0),
    RainstormRule(level="orange", window_s=3 * 3600, threshold_mm=50.0),
    RainstormRule(level="yellow", window_s=6 * 3600, threshold_mm=50.0),
    RainstormRule(level="blue", window_s=12 * 3600, threshold_mm=50.0),
)
"""Highest level first; the first rule that holds gives the level."""

RULE_ID = "cma-rainstorm-observed"


_PLANS: dict[int, tuple[tuple[RainstormRule, ...], int, tuple[tuple[int, float, RainstormRule], ...]]] = {}


def _plan(rules: tuple[RainstormRule, ...]) -> tuple[int, tuple[tuple[int, float, RainstormRule], ...]]:
    """Longest window, and (window, threshold, rule) in rule order: plain values for the loop.

    Cached by identity (hashing the rule models on every report would cost more than this
    saves); the cache holds the tuple itself, so an id is never reused while cached.
    """
    cached = _PLANS.get(id(rules))
    if cached is None or cached[0] is not rules:
        if len(_PLANS) > 64:
            _PLANS.clear()
        plan = tuple((r.window_s, r.threshold_mm, r) for r in rules)
        cached = _PLANS[id(rules)] = (rules, max(rule.window_s for rule in rules), plan)
    return cached[1], cached[2]


def rainstorm_level(
    state: Series,
    end: int,
    rain_mm: float,
    rules: tuple[RainstormRule, ...] = DEFAULT_RAINSTORM_RULES,
    allowed_lateness_s: int = 600,
) -> tuple[RainstormRule | None, float]:
    """Fold a report ending at ``end`` into ``state``; the first rule that holds and its sum.

    A window's sum is ``round(sum(reports in the window), 3)`` as in ``windows.window_sums``,
    each distinct window summed once (a C-speed slice sum: twelve hours of one-minute reports
    are 720 additions, a few microseconds). The state holds the reports only, so a
    changelog entry is as small as the window allows.
    """
    times: list[int] = state["t"]
    amounts: list[float] = state["mm"]
    state.pop("cum", None)  # running totals kept by earlier versions: no longer stored
    if not times or end > times[-1]:
        times.append(end)
        amounts.append(rain_mm)
        hi = len(times)
    else:
        add_report(state, end, rain_mm)
        hi = -1
    longest, plan = _plan(rules)
    cut = bisect_left(times, (times[-1] or end) - longest - allowed_lateness_s)
    if cut:
        del times[:cut]
        del amounts[:cut]
        hi -= cut
    if hi < 0:
        hi = bisect_right(times, end)
    sums: dict[int, float] = {}
    for window_s, threshold_mm, rule in plan:
        total = sums.get(window_s)
        if total is None:
            total = sums[window_s] = round(sum(amounts[bisect_right(times, end - window_s) : hi]), 3)
        if total >= threshold_mm:
            return rule, total
    return None, 0.0


def rainstorm_evidence(station_id: str, rule: RainstormRule, total_mm: float) -> Evidence:
    return Evidence(
        station_id=station_id,
        metric=f"rain_{rule.window_s // 3600}h_mm",
        value=total_mm,
        threshold=rule.threshold_mm,
        window_s=rule.window_s,
    )


def assess_rainstorm(
    obs: RainObservation,
    state: Series,
    township_code: str,
    rules: tuple[RainstormRule, ...] = DEFAULT_RAINSTORM_RULES,
    allowed_lateness_s: int = 600,
) -> HazardAssessment:
    """Fold ``obs`` into the gauge's window ``state`` (``windows.new_series()``) and assess."""
    rule, total = rainstorm_level(state, int(obs.observed_at.timestamp()), obs.rain_mm, rules, allowed_lateness_s)
    return HazardAssessment(
        hazard="rainstorm",
        township_code=township_code,
        source_id=obs.station_id,
        assessed_at=obs.observed_at,
        level=rule.level if rule is not None else "none",
        rule_id=RULE_ID,
        evidence=(rainstorm_evidence(obs.station_id, rule, total),) if rule is not None else (),
    )
