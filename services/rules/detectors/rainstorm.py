"""CMA rainstorm signal per gauge from observed rolling accumulations.

Thresholds (CMA Decree 16, domain standards §1.2): 12 h ≥ 50 mm blue, 6 h ≥ 50 mm
yellow, 3 h ≥ 50 mm orange, 3 h ≥ 100 mm red. They are data (``RainstormThresholds``),
not code; the highest level whose condition holds wins.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from schemas.assessment import Evidence, HazardAssessment
from schemas.common import LevelOrNone
from schemas.observations import RainObservation
from services.rules.windows import Series, add_report, evict_before, newest, window_sums


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


def assess_rainstorm(
    obs: RainObservation,
    state: Series,
    township_code: str,
    rules: tuple[RainstormRule, ...] = DEFAULT_RAINSTORM_RULES,
    allowed_lateness_s: int = 600,
) -> HazardAssessment:
    """Fold ``obs`` into the gauge's window ``state`` (``windows.new_series()``) and assess."""
    end = int(obs.observed_at.timestamp())
    add_report(state, end, obs.rain_mm)
    longest = max(rule.window_s for rule in rules)
    evict_before(state, (newest(state) or end) - longest - allowed_lateness_s)
    sums = window_sums(state, end, {rule.window_s for rule in rules})
    level: LevelOrNone = "none"
    evidence: tuple[Evidence, ...] = ()
    for rule in rules:
        if sums[rule.window_s] >= rule.threshold_mm:
            level = rule.level
            evidence = (
                Evidence(
                    station_id=obs.station_id,
                    metric=f"rain_{rule.window_s // 3600}h_mm",
                    value=sums[rule.window_s],
                    threshold=rule.threshold_mm,
                    window_s=rule.window_s,
                ),
            )
            break
    return HazardAssessment(
        hazard="rainstorm",
        township_code=township_code,
        source_id=obs.station_id,
        assessed_at=obs.observed_at,
        level=level,
        rule_id=RULE_ID,
        evidence=evidence,
    )
