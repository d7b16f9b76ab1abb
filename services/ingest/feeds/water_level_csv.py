"""``water_level_csv``: hydrology real-time stage export → ``WaterLevelObservation`` (UTC).

The column names are those of the Ministry of Water Resources real-time rain and water
database (SL 323: ``STCD`` station code, ``TM`` time, ``Z`` river stage in metres, ``TDZ``
tide level in metres), exported as CSV in Beijing time::

    STCD,TM,Z,TDZ
    WL-OU-01,2019-08-09 19:55:00,4.12,
    TIDE-WZ-01,2019-08-09 19:55:00,,3.87

Per row: ``STCD`` → ``station_id``; ``TM`` (BJT) → ``observed_at`` (UTC); ``Z`` → ``level_m``,
or ``TDZ`` when ``Z`` is missing (tide stations). Both missing is an error naming ``Z``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from schemas.observations import WaterLevelObservation
from services.ingest.feeds.base import DecodedItem, DecodeError, FeedAdapter, build
from services.ingest.feeds.vendor import FieldError, iter_csv, parse_bjt, parse_number, required

COLUMNS: dict[str, tuple[str, ...]] = {
    "stcd": ("stcd", "station", "station_id"),
    "tm": ("tm", "time", "observed_at"),
    "z": ("z", "level_m", "rz"),
    "tdz": ("tdz",),
}
REQUIRED = ("stcd", "tm")

SAMPLE_PAYLOAD = (
    b"STCD,TM,Z,TDZ\n"
    b"WL-OU-01,2019-08-09 19:55:00,4.12,\n"
    b"WL-OU-01,2019-08-09 20:00:00,4.15,\n"
    b"TIDE-WZ-01,2019-08-09 19:55:00,,3.87\n"
)


class WaterLevelCsvFeed(FeedAdapter):
    name: ClassVar[str] = "water_level_csv"
    content_types: ClassVar[tuple[str, ...]] = ("text/csv", "text/plain", "application/octet-stream")
    max_payload_bytes: ClassVar[int] = 2 * 1024 * 1024
    observation_kinds: ClassVar[frozenset[str]] = frozenset({"water_level"})
    description: ClassVar[str] = "Hydrology stage CSV (SL 323 names): STCD,TM(BJT),Z[,TDZ] in metres."

    def decode(self, payload: bytes) -> Iterator[DecodedItem]:
        for row in iter_csv(payload, COLUMNS, REQUIRED):
            if isinstance(row, DecodeError):
                yield row
                continue
            values = row.values
            if "z" not in values and "tdz" not in values:
                yield DecodeError("schema", "row has neither a Z nor a TDZ column", "Z", row.raw)
                continue
            try:
                level = parse_number(values.get("z", ""), "Z")
                if level is None:
                    level = parse_number(values.get("tdz", ""), "TDZ")
                fields = {
                    "station_id": values["stcd"].strip(),
                    "observed_at": parse_bjt(values["tm"], "TM"),
                    "level_m": required(level, "Z"),
                }
            except FieldError as exc:
                yield DecodeError("schema", str(exc), exc.column, row.raw)
                continue
            yield build(WaterLevelObservation, row.raw, source=self.name, **fields)
