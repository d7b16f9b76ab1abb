"""Hazard assessments: what the evidence says now, per source and township.

Detectors publish one on ``hazard.assessments`` keyed ``hazard:township`` for every
observation they evaluate (level ``none`` included). That steady stream is also the
lifecycle's event-time clock: a township's warnings advance when its sources report.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from schemas.common import Contract, Hazard, LevelOrNone, StationId, TownshipCode, UtcDatetime


class Evidence(Contract):
    """One measured or forecast quantity compared with one threshold."""

    station_id: StationId
    metric: str = Field(max_length=64, description="e.g. rain_3h_mm")
    value: float
    threshold: float | None = None
    window_s: int | None = Field(default=None, ge=0)
    basis: Literal["observed", "forecast"] = "observed"


class HazardAssessment(Contract):
    kind: Literal["assessment"] = "assessment"
    hazard: Hazard
    township_code: TownshipCode
    source_id: StationId = Field(description="station or radar whose evidence this is")
    assessed_at: UtcDatetime = Field(description="event time of the triggering observation")
    level: LevelOrNone
    rule_id: str = Field(max_length=64)
    onset_at: UtcDatetime | None = Field(default=None, description="forecast onset, if predicted")
    certainty: Literal["Observed", "Likely", "Possible", "Unlikely"] = "Observed"
    evidence: tuple[Evidence, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.hazard}:{self.township_code}"
