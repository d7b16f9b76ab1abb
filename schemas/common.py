"""Shared scalar types for every contract.

Every timestamp in earlywarn is an aware UTC datetime on *event time* (when the thing
happened at the sensor), never the wall clock of the process that handles it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints


def _to_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        msg = "timestamp must carry a time zone (ISO 8601 with Z or an offset)"
        raise ValueError(msg)
    return value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_to_utc)]
"""An aware datetime, normalised to UTC."""

StationId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]
TownshipCode = Annotated[str, StringConstraints(pattern=r"^\d{9}$")]
"""NBS 9-digit township-level code (Longgang, which has none, is 330383000)."""

Level = Literal["blue", "yellow", "orange", "red"]
"""CMA signal colours, lowest to highest (§1.1 of the domain standards)."""

LevelOrNone = Literal["none", "blue", "yellow", "orange", "red"]

LEVEL_RANK: dict[str, int] = {"none": 0, "blue": 1, "yellow": 2, "orange": 3, "red": 4}
RANK_LEVEL: dict[int, str] = {rank: level for level, rank in LEVEL_RANK.items()}

Hazard = Literal[
    "rainstorm",
    "short_heavy_rain",
    "convection",
    "geohazard",
    "flood",
    "tide",
    "gale",
    "typhoon",
]


class Contract(BaseModel):
    """Base of every message on a topic: frozen, strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=False)


def utc_now() -> datetime:
    """Wall-clock now in UTC; only edges (HTTP receive time) may call this."""
    return datetime.now(UTC)


NonNegativeMm = Annotated[float, Field(ge=0.0)]
