"""Assessments written straight to the bytes ``HazardAssessment.model_dump_json()`` gives.

For the rain hot path (one report → two or three assessments): building and dumping a
pydantic model per assessment costs more than the detection itself. The layout here is
the model's, field by field in declaration order; the variable parts are either
``pydantic_core.to_json`` output (datetimes, the evidence list: the same serializer the
model uses, so floats and times come out identically) or strings whose contract admits no
character JSON must escape (station ids ``[A-Za-z0-9_.:-]``, 9-digit township codes, and
the literals for hazard, level, certainty and rule id). ``tests/unit/rules_processors``
checks the bytes against the model's on generated input.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic_core import to_json

EvidenceDict = dict[str, Any]
"""``Evidence.model_dump(mode="json")``: the lifecycle keeps evidence in this form too."""


def evidence(
    station_id: str,
    metric: str,
    value: float,
    threshold: float | None = None,
    window_s: int | None = None,
    basis: str = "observed",
) -> EvidenceDict:
    """An ``Evidence`` as a dict, keys in field order (``value`` coerced to float as the model does)."""
    return {
        "station_id": station_id,
        "metric": metric,
        "value": float(value),
        "threshold": None if threshold is None else float(threshold),
        "window_s": window_s,
        "basis": basis,
    }


def time_json(moment: datetime) -> str:
    """A UTC datetime as the models serialise it, quotes included."""
    return to_json(moment).decode()


def assessment_json(
    hazard: str,
    township_code: str,
    source_id: str,
    assessed_at_json: str,
    level: str,
    rule_id: str,
    evidence_list: list[EvidenceDict] | None = None,
    certainty: str = "Observed",
    onset_at_json: str = "null",
) -> bytes:
    """The JSON of ``HazardAssessment(...)`` with these fields (see the module doc)."""
    evidence_json = to_json(evidence_list).decode() if evidence_list else "[]"
    return (
        f'{{"kind":"assessment","hazard":"{hazard}","township_code":"{township_code}",'
        f'"source_id":"{source_id}","assessed_at":{assessed_at_json},"level":"{level}",'
        f'"rule_id":"{rule_id}","onset_at":{onset_at_json},"certainty":"{certainty}",'
        f'"evidence":{evidence_json}}}'
    ).encode()
