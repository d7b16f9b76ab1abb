"""earlywarn contracts: the messages on every topic, shared by all services.

Integrators should write against the JSON Schemas exported into ``schemas/json/``.
"""

from schemas.assessment import Evidence, HazardAssessment
from schemas.common import LEVEL_RANK, Hazard, Level, LevelOrNone
from schemas.delivery import DeliveryJob, DeliveryReceipt
from schemas.observations import (
    OBSERVATION_ADAPTER,
    GeoHazardObservation,
    Observation,
    RadarScan,
    RainObservation,
    WaterLevelObservation,
)
from schemas.rejected import RejectedRecord
from schemas.warning import WarningMessage

__all__ = [
    "LEVEL_RANK",
    "OBSERVATION_ADAPTER",
    "DeliveryJob",
    "DeliveryReceipt",
    "Evidence",
    "GeoHazardObservation",
    "Hazard",
    "HazardAssessment",
    "Level",
    "LevelOrNone",
    "Observation",
    "RadarScan",
    "RainObservation",
    "RejectedRecord",
    "WarningMessage",
    "WaterLevelObservation",
]
