"""``rain_csv``: a vendor CSV of automatic-weather-station rows → ``RainObservation`` (UTC).

The vendor export looks like this (header first, Beijing time, one row per station and
report; column order may vary, header names are matched case-insensitively and without
the bracketed unit or zone)::

    station,time(BJT),rain_mm,wind2min,gust
    RAIN-A0001,2019-08-09 19:55:00,2.5,3.4,7.9
    RAIN-A0002,2019-08-09 19:55:00,0.0,999999,999999

Per row:

1. ``station`` → ``station_id`` as is (the registry must know it).
2. ``time(BJT)`` → ``observed_at``: read as UTC+8 unless it carries an offset, then UTC.
3. ``rain_mm`` → ``rain_mm`` over ``interval_s`` (the vendor reports 5-minute totals; an
   optional ``interval_min`` column overrides it per row). Missing rain is an error.
4. ``wind2min`` (2-minute mean, m/s) → ``wind_mean_ms``; ``gust`` (m/s) → ``wind_gust_ms``;
   missing markers (blank, ``-``, ``999999`` …) become ``None``.

A row that cannot be read is one ``DecodeError`` naming the column; the other rows go on.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from schemas.observations import RainObservation
from services.ingest.feeds.base import DecodedItem, DecodeError, FeedAdapter, build
from services.ingest.feeds.vendor import FieldError, iter_csv, parse_bjt, parse_number, required

COLUMNS: dict[str, tuple[str, ...]] = {
    "station": ("station", "station_id", "stationid", "站号"),
    "time": ("time", "observed_at", "datetime", "时间"),
    "rain_mm": ("rain_mm", "rain", "pre", "雨量"),
    "wind2min": ("wind2min", "wind_2min", "wind_mean_ms"),
    "gust": ("gust", "wind_gust_ms", "gust_ms"),
    "interval_min": ("interval_min",),
}
REQUIRED = ("station", "time", "rain_mm")

SAMPLE_PAYLOAD = (
    b"station,time(BJT),rain_mm,wind2min,gust\r\n"
    b"RAIN-A0001,2019-08-09 19:55:00,2.5,3.4,7.9\r\n"
    b"RAIN-A0002,2019-08-09 19:55:00,0.0,999999,999999\r\n"
    b"RAIN-A0003,2019-08-09 19:55:00,6.1,5.0,\r\n"
)


class RainCsvFeed(FeedAdapter):
    name: ClassVar[str] = "rain_csv"
    content_types: ClassVar[tuple[str, ...]] = ("text/csv", "text/plain", "application/octet-stream")
    max_payload_bytes: ClassVar[int] = 2 * 1024 * 1024
    observation_kinds: ClassVar[frozenset[str]] = frozenset({"rain"})
    description: ClassVar[str] = "Automatic-station CSV: station,time(BJT),rain_mm,wind2min,gust."
    interval_s: ClassVar[int] = 300
    """Accumulation period of ``rain_mm`` when the row has no ``interval_min``."""

    def decode(self, payload: bytes) -> Iterator[DecodedItem]:
        for row in iter_csv(payload, COLUMNS, REQUIRED):
            if isinstance(row, DecodeError):
                yield row
                continue
            values = row.values
            try:
                interval_min = parse_number(values.get("interval_min", ""), "interval_min")
                fields = {
                    "station_id": values["station"].strip(),
                    "observed_at": parse_bjt(values["time"], "time"),
                    "rain_mm": required(parse_number(values["rain_mm"], "rain_mm"), "rain_mm"),
                    "interval_s": self.interval_s if interval_min is None else round(interval_min * 60),
                    "wind_mean_ms": parse_number(values.get("wind2min", ""), "wind2min"),
                    "wind_gust_ms": parse_number(values.get("gust", ""), "gust"),
                }
            except FieldError as exc:
                yield DecodeError("schema", str(exc), exc.column, row.raw)
                continue
            yield build(RainObservation, row.raw, source=self.name, **fields)
