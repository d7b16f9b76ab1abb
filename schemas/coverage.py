"""Delivery coverage: who a warning reached, per township and channel, from receipts.

Dispatch publishes a ``CoverageReport`` on the ``coverage`` topic (key: warning id) whenever
the numbers for a warning change materially, including the list of townships not reached
yet; the console shows it and a metric counts unreached townships.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from schemas.common import Contract, TownshipCode, UtcDatetime


class TownshipCoverage(Contract):
    township_code: TownshipCode
    channel: str = Field(max_length=32)
    targeted_population: int = Field(ge=0)
    reached_population: int = Field(ge=0)
    targets: int = Field(ge=0)
    delivered: int = Field(ge=0)
    failed: int = Field(ge=0)


class CoverageReport(Contract):
    kind: Literal["coverage"] = "coverage"
    warning_id: str = Field(max_length=150)
    message_id: str = Field(max_length=160)
    at: UtcDatetime
    townships: tuple[TownshipCoverage, ...]
    unreached_townships: tuple[TownshipCode, ...] = ()
    complete: bool = Field(default=False, description="every target has a final state")
