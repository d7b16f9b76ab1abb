"""``geohazard_json``: a monitoring-platform JSON document → ``GeoHazardObservation`` per point.

The vendor's platform answers with an envelope and one entry per monitoring point, each
with the readings of its sensors (GNSS or crack-meter displacement, a rain gauge)::

    {"code": 200, "message": "success",
     "data": [
       {"monitorPointCode": "GH-LW-001", "collectTime": "2019-08-09 19:50:00",
        "items": [{"sensorType": "GNSS", "value": 12.4, "unit": "mm"},
                  {"sensorType": "RAIN", "value": 3.5, "unit": "mm", "periodMin": 10}]}]}

Per point:

1. ``monitorPointCode`` → ``station_id``.
2. ``collectTime`` → ``observed_at``: a Beijing-time string, or epoch milliseconds (UTC).
3. The first displacement sensor (``GNSS``, ``CRACK``, ``DISPLACEMENT``) → ``displacement_mm``
   (cumulative since installation), converted from ``mm``/``cm``/``m``. None is an error.
4. A ``RAIN`` sensor → ``rain_mm`` and ``periodMin`` → ``interval_s`` (default 10 minutes).

An envelope with a non-success ``code`` or without a ``data`` list is one fatal error; a bare
list of points is accepted too. A point that cannot be read is one error; the others go on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any, ClassVar

from schemas.observations import GeoHazardObservation
from services.ingest.feeds.base import DecodedItem, DecodeError, FeedAdapter, build
from services.ingest.feeds.vendor import FieldError, epoch_ms_to_utc, parse_bjt

DISPLACEMENT_SENSORS = ("GNSS", "CRACK", "DISPLACEMENT")
UNIT_TO_MM = {"mm": 1.0, "cm": 10.0, "m": 1000.0}
SUCCESS_CODES = (0, 200, "0", "200")
DEFAULT_PERIOD_MIN = 10

SAMPLE_PAYLOAD = json.dumps(
    {
        "code": 200,
        "message": "success",
        "data": [
            {
                "monitorPointCode": "GH-LW-001",
                "collectTime": "2019-08-09 19:50:00",
                "items": [
                    {"sensorType": "GNSS", "value": 12.4, "unit": "mm"},
                    {"sensorType": "RAIN", "value": 3.5, "unit": "mm", "periodMin": 10},
                ],
            },
            {
                "monitorPointCode": "GH-LW-002",
                "collectTime": 1565351400000,
                "items": [{"sensorType": "CRACK", "value": 0.8, "unit": "cm"}],
            },
        ],
    },
    ensure_ascii=False,
).encode()


class GeoHazardJsonFeed(FeedAdapter):
    name: ClassVar[str] = "geohazard_json"
    content_types: ClassVar[tuple[str, ...]] = ("application/json",)
    max_payload_bytes: ClassVar[int] = 2 * 1024 * 1024
    observation_kinds: ClassVar[frozenset[str]] = frozenset({"geohazard"})
    description: ClassVar[str] = "Geo-hazard monitoring platform JSON: points with GNSS/crack and rain sensors."

    def decode(self, payload: bytes) -> Iterator[DecodedItem]:
        try:
            document = json.loads(payload)
        except (ValueError, RecursionError) as exc:
            yield DecodeError("malformed_json", f"payload is not JSON: {exc}", None, payload, True)
            return
        if isinstance(document, dict):
            code = document.get("code", 200)
            if code not in SUCCESS_CODES:
                detail = f"vendor envelope reports code {code!r}: {str(document.get('message', ''))[:200]}"
                yield DecodeError("schema", detail, "code", payload, True)
                return
            document = document.get("data")
        if not isinstance(document, list):
            yield DecodeError("schema", "expected a 'data' list of monitoring points", "data", payload, True)
            return
        for point in document:
            raw = json.dumps(point, ensure_ascii=False)
            try:
                fields = _point_fields(point)
            except FieldError as exc:
                yield DecodeError("schema", str(exc), exc.column, raw)
                continue
            yield build(GeoHazardObservation, raw, source=self.name, **fields)


def _point_fields(point: Any) -> dict[str, Any]:
    if not isinstance(point, dict):
        raise FieldError("data", f"a monitoring point must be an object, got {type(point).__name__}")
    code = point.get("monitorPointCode")
    if not isinstance(code, str):
        raise FieldError("monitorPointCode", "missing or not a string")
    fields: dict[str, Any] = {"station_id": code.strip(), "observed_at": _time(point.get("collectTime"))}
    items = point.get("items")
    if not isinstance(items, list):
        raise FieldError("items", "missing or not a list of sensor readings")
    sensors = [item for item in items if isinstance(item, dict)]
    displacement = next((s for s in sensors if str(s.get("sensorType", "")).upper() in DISPLACEMENT_SENSORS), None)
    if displacement is None:
        raise FieldError("items", f"no displacement sensor ({'/'.join(DISPLACEMENT_SENSORS)}) in the point")
    fields["displacement_mm"] = _millimetres(displacement, "items.value")
    rain = next((s for s in sensors if str(s.get("sensorType", "")).upper() == "RAIN"), None)
    if rain is not None:
        fields["rain_mm"] = _millimetres(rain, "items.value")
        period = rain.get("periodMin", DEFAULT_PERIOD_MIN)
        if not isinstance(period, int | float) or isinstance(period, bool) or not math.isfinite(period):
            raise FieldError("items.periodMin", f"{period!r} is not a number of minutes")
        fields["interval_s"] = round(period * 60)
    return fields


def _time(value: object) -> Any:
    if isinstance(value, str):
        return parse_bjt(value, "collectTime")
    if isinstance(value, int) and not isinstance(value, bool):
        return epoch_ms_to_utc(value, "collectTime")
    raise FieldError("collectTime", f"{value!r} is neither a BJT time string nor epoch milliseconds")


def _millimetres(sensor: dict[str, Any], column: str) -> float:
    value = sensor.get("value")
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise FieldError(column, f"{value!r} is not a finite number")
    unit = str(sensor.get("unit", "mm")).lower()
    if unit not in UNIT_TO_MM:
        raise FieldError("items.unit", f"unit {unit!r} is not one of {sorted(UNIT_TO_MM)}")
    return float(value) * UNIT_TO_MM[unit]
