"""Tropical-cyclone advisories: the forecast track a meteorological office issues.

The typhoon signal (CMA §1.3) is a forecast of impact — "may be affected within 24 h" —
so the rules need the storm's forecast track, not only what the anemometers say. An
advisory carries the track from its issue time forward; the newest advisory issued at or
before an observation's time is the one that observation is judged with.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Literal

from pydantic import Field, model_validator

from schemas.common import Contract, UtcDatetime


class AdvisoryPoint(Contract):
    at: UtcDatetime
    lon: float = Field(ge=-180.0, le=180.0)
    lat: float = Field(ge=-90.0, le=90.0)
    vmax_ms: float = Field(ge=0.0, le=100.0, description="maximum 2-min mean wind near the centre, m/s")


class StormAdvisory(Contract):
    kind: Literal["storm_advisory"] = "storm_advisory"
    storm_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
    name: str = Field(min_length=1, max_length=64)
    issued_at: UtcDatetime
    source: str = Field(default="forecast-office", min_length=1, max_length=64)
    points: tuple[AdvisoryPoint, ...] = Field(min_length=1, max_length=200)

    @model_validator(mode="after")
    def _chronological(self) -> StormAdvisory:
        if any(b.at <= a.at for a, b in pairwise(self.points)):
            msg = "points: forecast points must be in strictly increasing time order"
            raise ValueError(msg)
        return self
