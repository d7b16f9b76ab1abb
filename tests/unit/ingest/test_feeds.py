"""Built-in feed adapters: vendor quirks (Beijing time, missing markers, units, encodings),
one item per vendor record, and one bad record never losing the others."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.observations import (
    GeoHazardObservation,
    ObservationBase,
    RadarScan,
    RainObservation,
    WaterLevelObservation,
)
from services.ingest.feeds import DecodedItem, DecodeError, FeedAdapter, FeedRegistry, decode_payload
from services.ingest.feeds.canonical import CanonicalFeed
from services.ingest.feeds.geohazard_json import GeoHazardJsonFeed
from services.ingest.feeds.radar_grid import RadarGridFeed
from services.ingest.feeds.rain_csv import RainCsvFeed
from services.ingest.feeds.testing import SAMPLE_PAYLOADS, rain_csv_payload
from services.ingest.feeds.water_level_csv import WaterLevelCsvFeed


def items(adapter: FeedAdapter, payload: bytes) -> list[DecodedItem]:
    return list(decode_payload(adapter, payload))


def errors(decoded: list[DecodedItem]) -> list[DecodeError]:
    return [i for i in decoded if isinstance(i, DecodeError)]


# -- rain_csv ---------------------------------------------------------------------------


def test_rain_csv_converts_beijing_time_to_utc_and_reads_missing_markers() -> None:
    decoded = items(RainCsvFeed(), SAMPLE_PAYLOADS["rain_csv"])
    assert all(isinstance(i, RainObservation) for i in decoded)
    first, second, third = (i for i in decoded if isinstance(i, RainObservation))
    assert first.observed_at == datetime(2019, 8, 9, 11, 55, tzinfo=UTC)  # 19:55 BJT
    assert (first.rain_mm, first.wind_mean_ms, first.wind_gust_ms, first.interval_s) == (2.5, 3.4, 7.9, 300)
    assert (second.wind_mean_ms, second.wind_gust_ms) == (None, None)  # 999999 = missing
    assert third.wind_gust_ms is None  # blank = missing
    assert {i.source for i in (first, second, third)} == {"rain_csv"}


@pytest.mark.parametrize(
    ("time_text", "expected"),
    [
        pytest.param("2019-08-09 20:00", datetime(2019, 8, 9, 12, 0, tzinfo=UTC), id="minutes"),
        pytest.param("2019/08/09 20:00:00", datetime(2019, 8, 9, 12, 0, tzinfo=UTC), id="slashes"),
        pytest.param("201908092000", datetime(2019, 8, 9, 12, 0, tzinfo=UTC), id="cma-compact"),
        pytest.param("20190810013000", datetime(2019, 8, 9, 17, 30, tzinfo=UTC), id="cma-compact-seconds"),
        pytest.param("2019-08-09T12:00:00Z", datetime(2019, 8, 9, 12, 0, tzinfo=UTC), id="explicit-utc"),
        pytest.param("2019-08-10 00:10:00", datetime(2019, 8, 9, 16, 10, tzinfo=UTC), id="date-rolls-back"),
    ],
)
def test_rain_csv_time_formats(time_text: str, expected: datetime) -> None:
    payload = f"station,time(BJT),rain_mm,wind2min,gust\nRAIN-A0001,{time_text},1.0,,\n".encode()
    [obs] = items(RainCsvFeed(), payload)
    assert isinstance(obs, RainObservation)
    assert obs.observed_at == expected


@settings(max_examples=100, deadline=None)
@given(
    at=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)),
    rain_mm=st.integers(min_value=0, max_value=250).map(lambda tenths: tenths / 10),
)
def test_rain_csv_round_trips_any_utc_minute_through_beijing_time(at: datetime, rain_mm: float) -> None:
    at = at.replace(second=0, microsecond=0)
    [obs] = items(RainCsvFeed(), rain_csv_payload([("RAIN-A0001", at, rain_mm, None, None)]))
    assert isinstance(obs, RainObservation)
    assert (obs.observed_at, obs.rain_mm) == (at, rain_mm)


def test_rain_csv_columns_in_any_order_with_bom_crlf_and_interval_column() -> None:
    payload = (
        b"\xef\xbb\xbfGust,Rain_mm,Station,Time(BJT),wind2min,interval_min\r\n"
        b"8.0,1.5,RAIN-A0001,2019-08-09 19:00,4.0,60\r\n"
    )
    [obs] = items(RainCsvFeed(), payload)
    assert isinstance(obs, RainObservation)
    assert (obs.station_id, obs.rain_mm, obs.wind_gust_ms, obs.interval_s) == ("RAIN-A0001", 1.5, 8.0, 3600)


def test_rain_csv_reads_gb18030_text() -> None:
    payload = "站号,时间,雨量,wind2min,gust\nRAIN-A0001,2019-08-09 19:00,1.5,,\n".encode("gb18030")
    [obs] = items(RainCsvFeed(), payload)
    assert isinstance(obs, RainObservation)


@pytest.mark.parametrize(
    ("row", "reason", "field"),
    [
        pytest.param("RAIN-A0002,2019-08-09 19:55,lots,1,2", "schema", "rain_mm", id="not-a-number"),
        pytest.param("RAIN-A0002,2019-08-09 19:55,999999,1,2", "schema", "rain_mm", id="rain-missing"),
        pytest.param("RAIN-A0002,2019-08-09 19:55,nan,1,2", "schema", "rain_mm", id="nan"),
        pytest.param("RAIN-A0002,someday,1.0,1,2", "schema", "time", id="bad-time"),
        pytest.param("RAIN-A0002,2019-08-09 19:55,-1.0,1,2", "implausible_value", "rain_mm", id="negative"),
        pytest.param("RAIN-A0002,2019-08-09 19:55,1.0,9,2", "implausible_value", None, id="gust-below-mean"),
        pytest.param("RAIN A2,2019-08-09 19:55,1.0,1,2", "schema", "station_id", id="bad-station-id"),
        pytest.param("RAIN-A0002,2019-08-09 19:55,1.0", "schema", None, id="too-few-fields"),
    ],
)
def test_rain_csv_bad_row_is_one_error_and_neighbours_survive(row: str, reason: str, field: str | None) -> None:
    payload = (
        "station,time(BJT),rain_mm,wind2min,gust\n"
        f"RAIN-A0001,2019-08-09 19:55,1,,\n{row}\nRAIN-A0003,2019-08-09 19:55,2,,\n"
    )
    decoded = items(RainCsvFeed(), payload.encode())
    assert len(decoded) == 3
    assert isinstance(decoded[0], RainObservation)
    assert isinstance(decoded[2], RainObservation)
    error = decoded[1]
    assert isinstance(error, DecodeError)
    assert (error.reason, error.field) == (reason, field)
    assert error.raw == row.encode()
    assert error.detail


def test_csv_without_the_required_header_is_one_fatal_error_holding_the_payload() -> None:
    payload = b"RAIN-A0001,2019-08-09 19:55,1,,\n"
    [error] = items(RainCsvFeed(), payload)
    assert isinstance(error, DecodeError)
    assert error.fatal
    assert (error.reason, error.field, error.raw) == ("schema", "header", payload)


# -- water_level_csv ---------------------------------------------------------------------


def test_water_level_csv_uses_tdz_for_tide_stations_and_names_z_when_both_missing() -> None:
    payload = (
        b"STCD,TM,Z,TDZ\n"
        b"WL-OU-01,2019-08-09 19:55:00,4.12,\n"
        b"TIDE-WZ-01,2019-08-09 19:55:00,,3.87\n"
        b"WL-OU-01,2019-08-09 20:00:00,,\n"
    )
    first, tide, missing = items(WaterLevelCsvFeed(), payload)
    assert isinstance(first, WaterLevelObservation)
    assert first.level_m == 4.12
    assert isinstance(tide, WaterLevelObservation)
    assert (tide.station_id, tide.level_m) == ("TIDE-WZ-01", 3.87)
    assert isinstance(missing, DecodeError)
    assert missing.field == "Z"


def test_water_level_csv_implausible_stage_is_named() -> None:
    [error] = items(WaterLevelCsvFeed(), b"STCD,TM,Z\nWL-OU-01,2019-08-09 19:55:00,599.5\n")
    assert isinstance(error, DecodeError)
    assert (error.reason, error.field) == ("implausible_value", "level_m")


# -- geohazard_json ----------------------------------------------------------------------


def test_geohazard_json_converts_units_and_epoch_times() -> None:
    first, second = items(GeoHazardJsonFeed(), SAMPLE_PAYLOADS["geohazard_json"])
    assert isinstance(first, GeoHazardObservation)
    assert (first.displacement_mm, first.rain_mm, first.interval_s) == (12.4, 3.5, 600)
    assert first.observed_at == datetime(2019, 8, 9, 11, 50, tzinfo=UTC)
    assert isinstance(second, GeoHazardObservation)
    assert second.displacement_mm == pytest.approx(8.0)  # 0.8 cm
    assert second.observed_at == datetime(2019, 8, 9, 11, 50, tzinfo=UTC)  # epoch ms


def test_geohazard_json_bad_point_is_one_error() -> None:
    document = json.loads(SAMPLE_PAYLOADS["geohazard_json"])
    document["data"].insert(1, {"monitorPointCode": "GH-LW-009", "collectTime": "2019-08-09 19:50:00", "items": []})
    document["data"].insert(
        2,
        {
            "monitorPointCode": "GH-LW-010",
            "collectTime": "2019-08-09 19:50:00",
            "items": [{"sensorType": "GNSS", "value": 1, "unit": "furlong"}],
        },
    )
    decoded = items(GeoHazardJsonFeed(), json.dumps(document).encode())
    assert [type(i).__name__ for i in decoded] == [
        "GeoHazardObservation",
        "DecodeError",
        "DecodeError",
        "GeoHazardObservation",
    ]
    assert [i.field for i in errors(decoded)] == ["items", "items.unit"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        pytest.param(b'{"code": 500, "message": "db down"}', "code", id="vendor-error"),
        pytest.param(b'{"code": 200, "data": {"points": []}}', "data", id="no-list"),
        pytest.param(b"[{", None, id="not-json"),
    ],
)
def test_geohazard_json_unreadable_document_is_one_fatal_error(payload: bytes, field: str | None) -> None:
    [error] = items(GeoHazardJsonFeed(), payload)
    assert isinstance(error, DecodeError)
    assert error.fatal
    assert error.field == field


def test_geohazard_json_accepts_a_bare_list_of_points() -> None:
    points = json.loads(SAMPLE_PAYLOADS["geohazard_json"])["data"]
    assert len(items(GeoHazardJsonFeed(), json.dumps(points).encode())) == 2


# -- radar_grid ---------------------------------------------------------------------------


def test_radar_grid_accepts_scans_only_and_arrays_of_them() -> None:
    scan = json.loads(SAMPLE_PAYLOADS["radar_grid"])
    rain = {"kind": "rain", "station_id": "RAIN-A0001", "observed_at": "2019-08-09T11:55:00Z", "rain_mm": 1}
    decoded = items(RadarGridFeed(), json.dumps([scan, rain, {**scan, "n_rows": 5}]).encode())
    assert isinstance(decoded[0], RadarScan)
    assert isinstance(decoded[1], DecodeError)
    assert decoded[1].field == "kind"
    assert isinstance(decoded[2], DecodeError)
    assert "expected 5x5" in decoded[2].detail


# -- canonical -----------------------------------------------------------------------------

ONE = b'{"kind":"rain","station_id":"RAIN-A0001","observed_at":"2019-08-09T11:55:00Z","rain_mm":1}'


@pytest.mark.parametrize(
    ("payload", "count"),
    [
        pytest.param(ONE, 1, id="single"),
        pytest.param(b"[" + ONE + b"," + ONE + b"]", 2, id="array"),
        pytest.param(b"[]", 0, id="empty-array"),
        pytest.param(ONE + b"\n\n" + ONE + b"\r\n" + b"{oops\n", 3, id="ndjson"),
        pytest.param(json.dumps(json.loads(ONE), indent=2).encode(), 1, id="pretty-single"),
    ],
)
def test_canonical_shapes(payload: bytes, count: int) -> None:
    assert len(items(CanonicalFeed(), payload)) == count


def test_canonical_array_items_keep_the_senders_bytes() -> None:
    element = b'{ "kind" : "rain",  "station_id":"RAIN-A0001" }'
    assert list(decode_payload(CanonicalFeed(), b"[\n  " + element + b" ,\n" + ONE + b"\n]")) == [element, ONE]


def test_canonical_empty_or_broken_array_is_one_fatal_error() -> None:
    for payload in (b"", b"  \n", b"[1, 2", b"[1,]", b"[1 2]", b"[1] [2]", b"[\xff]"):
        [error] = items(CanonicalFeed(), payload)
        assert isinstance(error, DecodeError)
        assert (error.reason, error.fatal) == ("malformed_json", True)


# -- decode_payload guarantees ----------------------------------------------------------------


class _Exploding(FeedAdapter):
    name: ClassVar[str] = "exploding"
    content_types: ClassVar[tuple[str, ...]] = ("text/plain",)
    max_payload_bytes: ClassVar[int] = 100
    observation_kinds: ClassVar[frozenset[str]] = frozenset({"rain"})

    def decode(self, payload: bytes) -> Iterator[DecodedItem]:
        yield ONE
        yield 42  # type: ignore[misc]  # the breach under test
        msg = "vendor changed the format"
        raise RuntimeError(msg)


def test_decode_payload_keeps_items_before_a_crash_and_rejects_the_rest_with_the_payload() -> None:
    decoded = items(_Exploding(), b"payload")
    assert decoded[0] == ONE
    assert isinstance(decoded[1], DecodeError)
    assert "yielded a int" in decoded[1].detail
    crash = decoded[2]
    assert isinstance(crash, DecodeError)
    assert crash.fatal
    assert crash.raw == b"payload"
    assert "vendor changed the format" in crash.detail


def test_decode_payload_refuses_oversized_before_decoding() -> None:
    [error] = items(_Exploding(), b"x" * 101)
    assert isinstance(error, DecodeError)
    assert error.reason == "oversized"
    assert "101 bytes exceeds the limit of 100" in error.detail


def test_decoded_observations_are_canonical() -> None:
    registry = FeedRegistry(discover=lambda group: [])
    for name, payload in SAMPLE_PAYLOADS.items():
        for item in items(registry.load(name)(), payload):
            assert isinstance(item, bytes | ObservationBase), (name, item)
