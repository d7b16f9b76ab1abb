"""Export the JSON Schema of every topic's messages into ``schemas/json/``.

Run ``python -m schemas.export`` after changing a model; ``tests/unit/test_schema_export``
fails when the committed files and the models drift apart.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter

from schemas.advisory import StormAdvisory
from schemas.assessment import HazardAssessment
from schemas.command import OperatorCommand
from schemas.coverage import CoverageReport
from schemas.delivery import DeliveryJob, DeliveryReceipt
from schemas.observations import (
    OBSERVATION_ADAPTER,
    GeoHazardObservation,
    RadarScan,
    RainObservation,
    WaterLevelObservation,
)
from schemas.rejected import RejectedRecord
from schemas.warning import WarningMessage

JSON_DIR = Path(__file__).resolve().parent / "json"

EXPORTS: dict[str, type[BaseModel] | TypeAdapter[Any]] = {
    "observation": OBSERVATION_ADAPTER,
    "obs.rain": RainObservation,
    "obs.radar": RadarScan,
    "obs.geohazard": GeoHazardObservation,
    "obs.water": WaterLevelObservation,
    "obs.rejected": RejectedRecord,
    "hazard.assessments": HazardAssessment,
    "warnings": WarningMessage,
    "deliveries": DeliveryJob,
    "receipts": DeliveryReceipt,
    "commands": OperatorCommand,
    "coverage": CoverageReport,
    "advisories": StormAdvisory,
}


def render_all() -> dict[str, str]:
    """File name -> JSON text for every exported contract."""
    rendered: dict[str, str] = {}
    for name, model in EXPORTS.items():
        schema = (
            model.json_schema(mode="validation")
            if isinstance(model, TypeAdapter)
            else model.model_json_schema(mode="validation")
        )
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": name, **schema}
        rendered[f"{name}.schema.json"] = json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
    return rendered


def main() -> int:
    JSON_DIR.mkdir(exist_ok=True)
    for filename, text in render_all().items():
        (JSON_DIR / filename).write_text(text, encoding="utf-8")
        print(f"wrote {JSON_DIR / filename}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
