"""Shared bits: records as a bus delivers them, and reading what a processor emitted."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from schemas import topics
from schemas.assessment import HazardAssessment
from schemas.rejected import RejectedRecord
from services.common.bus.base import Emit, Record
from services.common.metrics import Metrics

T0_MS = 1_565_352_000_000  # 2019-08-09T12:00Z


def record(topic: str, value: bytes | BaseModel, offset: int = 0, key: str | None = None) -> Record:
    raw = value.model_dump_json().encode() if isinstance(value, BaseModel) else value
    if key is None and isinstance(value, BaseModel):
        key = getattr(value, "station_id", None)
    return Record(topic, 0, offset, key, raw, T0_MS)


def assessments(emits: list[Emit]) -> list[HazardAssessment]:
    return [HazardAssessment.model_validate_json(e.value) for e in emits if e.topic == topics.ASSESSMENTS]


def rejections(emits: list[Emit]) -> list[RejectedRecord]:
    return [RejectedRecord.model_validate_json(e.value) for e in emits if e.topic == topics.OBS_REJECTED]


def metric(metrics: Metrics, name: str, **labels: str) -> float:
    for family in metrics.registry.collect():
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def json_round_trip(state: dict[str, Any]) -> None:
    """State must survive the Kafka runtime's changelog (JSON)."""
    import json

    assert json.loads(json.dumps(state, allow_nan=False)) == state  # strict JSON: the changelog is orjson
