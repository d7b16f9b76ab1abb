"""Topic names: one place, so no service spells a topic by hand."""

from __future__ import annotations

from typing import Final

OBS_RAIN: Final = "obs.rain"
OBS_RADAR: Final = "obs.radar"
OBS_GEOHAZARD: Final = "obs.geohazard"
OBS_WATER: Final = "obs.water"
OBS_REJECTED: Final = "obs.rejected"
ASSESSMENTS: Final = "hazard.assessments"
WARNINGS: Final = "warnings"
DELIVERIES: Final = "deliveries"
RECEIPTS: Final = "receipts"
COMMANDS: Final = "commands"
COVERAGE: Final = "coverage"
ADVISORIES: Final = "advisories"

OBS_TOPIC_BY_KIND: Final[dict[str, str]] = {
    "rain": OBS_RAIN,
    "radar": OBS_RADAR,
    "geohazard": OBS_GEOHAZARD,
    "water_level": OBS_WATER,
}

ALL_TOPICS: Final = (
    OBS_RAIN,
    OBS_RADAR,
    OBS_GEOHAZARD,
    OBS_WATER,
    OBS_REJECTED,
    ASSESSMENTS,
    WARNINGS,
    DELIVERIES,
    RECEIPTS,
    COMMANDS,
    COVERAGE,
    ADVISORIES,
)
