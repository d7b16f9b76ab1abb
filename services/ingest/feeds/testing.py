"""Test helpers for feeds: the built-ins' sample payloads and a station table that admits them.

- ``SAMPLE_PAYLOADS``: name → a vendor payload every built-in decodes without errors (the
  same bytes appear as examples in the API docs and ``docs/integrators.md``).
- ``SAMPLE_STATIONS`` / ``sample_lookup()``: the stations those samples name, for a gate.
- ``SAMPLE_NOW``: a clock reading under which every sample is fresh (not future, not old).
- ``rain_csv_payload`` / ``canonical_rain``: build more payloads of the same shapes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime

from services.ingest.feeds import canonical, geohazard_json, radar_grid, rain_csv, water_level_csv
from services.ingest.feeds.vendor import BJT
from services.ingest.gate import StationLookup, static_lookup

SAMPLE_NOW = datetime(2019, 8, 9, 12, 0, tzinfo=UTC)

SAMPLE_PAYLOADS: dict[str, bytes] = {
    "canonical": canonical.SAMPLE_PAYLOAD,
    "rain_csv": rain_csv.SAMPLE_PAYLOAD,
    "water_level_csv": water_level_csv.SAMPLE_PAYLOAD,
    "geohazard_json": geohazard_json.SAMPLE_PAYLOAD,
    "radar_grid": radar_grid.SAMPLE_PAYLOAD,
}

SAMPLE_STATIONS: dict[str, tuple[tuple[str, ...], str | None]] = {
    **{f"RAIN-A{i:04d}": (("rain",), "330302006") for i in range(1, 10)},
    "WL-OU-01": (("water_level",), "330302023"),
    "TIDE-WZ-01": (("water_level",), "330302023"),
    "GH-LW-001": (("geohazard",), "330328100"),
    "GH-LW-002": (("geohazard",), "330328100"),
    "RADAR-WZ": (("radar",), None),
}


def sample_lookup(extra: dict[str, tuple[tuple[str, ...], str | None]] | None = None) -> StationLookup:
    return static_lookup({**SAMPLE_STATIONS, **(extra or {})})


def rain_csv_payload(rows: Iterable[tuple[str, datetime, float, float | None, float | None]]) -> bytes:
    """``station,time(BJT),rain_mm,wind2min,gust`` for (station, UTC time, rain, wind, gust) rows."""
    lines = ["station,time(BJT),rain_mm,wind2min,gust"]
    for station, at, rain_mm, wind, gust in rows:
        local = at.astimezone(BJT).strftime("%Y-%m-%d %H:%M:%S")
        lines.append(f"{station},{local},{rain_mm},{'' if wind is None else wind},{'' if gust is None else gust}")
    return ("\n".join(lines) + "\n").encode()


def canonical_rain(station_id: str, observed_at: datetime, rain_mm: float = 1.5, interval_s: int = 300) -> bytes:
    """One canonical rain observation as JSON bytes."""
    return json.dumps(
        {
            "kind": "rain",
            "station_id": station_id,
            "observed_at": observed_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "rain_mm": rain_mm,
            "interval_s": interval_s,
        },
        separators=(",", ":"),
    ).encode()
