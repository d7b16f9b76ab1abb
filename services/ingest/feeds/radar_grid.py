"""``radar_grid``: reflectivity composites as our ``RadarScan`` JSON (``schemas/json/obs.radar.schema.json``).

A radar product server posts one scan object, or a JSON array of scans. Each is validated
as a ``RadarScan`` only (another kind through this feed is a ``schema`` error on ``kind``),
so the grid checks run here: base64 of exactly ``n_rows * n_cols`` cells, no cell above
80 dBZ (``implausible_value``). Scans are large (up to 2048 x 2048 cells, ~5.6 MB of
base64), hence the larger payload limit.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import ClassVar

import numpy as np
from pydantic import ValidationError

from schemas.observations import RadarScan
from services.common.rejects import describe_validation_error
from services.ingest.feeds.base import DecodedItem, DecodeError, FeedAdapter

_SAMPLE_GRID = np.full((4, 5), np.nan, dtype=np.float32)
_SAMPLE_GRID[1:3, 1:4] = [[20.0, 35.5, 42.0], [18.0, 51.5, 30.0]]
SAMPLE_PAYLOAD = json.dumps(
    {
        "kind": "radar",
        "station_id": "RADAR-WZ",
        "observed_at": "2019-08-09T11:54:00Z",
        "band": "S",
        "origin_lon": 120.0,
        "origin_lat": 27.5,
        "cell_deg": 0.01,
        "n_rows": 4,
        "n_cols": 5,
        "dbz_b64": RadarScan.pack_dbz(_SAMPLE_GRID),
    }
).encode()


class RadarGridFeed(FeedAdapter):
    name: ClassVar[str] = "radar_grid"
    content_types: ClassVar[tuple[str, ...]] = ("application/json",)
    max_payload_bytes: ClassVar[int] = 8 * 1024 * 1024
    observation_kinds: ClassVar[frozenset[str]] = frozenset({"radar"})
    description: ClassVar[str] = "RadarScan JSON (one scan or an array): packed uint8 dBZ grid in base64."

    def decode(self, payload: bytes) -> Iterator[DecodedItem]:
        body = payload.strip()
        if body[:1] != b"[":
            yield _scan(body)
            return
        try:
            elements = json.loads(body)
        except (ValueError, RecursionError) as exc:
            yield DecodeError("malformed_json", f"payload is not a JSON array: {exc}", None, body, True)
            return
        for element in elements:
            yield _scan(json.dumps(element).encode())


def _scan(raw: bytes) -> DecodedItem:
    try:
        return RadarScan.model_validate_json(raw)
    except ValidationError as exc:
        reason, detail, field = describe_validation_error(exc)
        return DecodeError(reason, detail, field, raw)
