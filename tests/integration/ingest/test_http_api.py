"""The ingest API over real HTTP: status codes, reasons and fields, limits, keys, feeds,
and the accounting invariant against what is on the bus."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import numpy as np
import pytest

from schemas import topics
from schemas.observations import RadarScan, RainObservation
from schemas.rejected import RejectedRecord
from services.ingest.feeds.testing import SAMPLE_PAYLOADS, canonical_rain
from tests.integration.ingest.conftest import MAX_BATCH, MAX_BODY_BYTES, NOW, Ingest


def rain(**overrides: object) -> bytes:
    payload: dict[str, object] = {
        "kind": "rain",
        "station_id": "RAIN-A0001",
        "observed_at": "2019-08-09T11:55:00Z",
        "rain_mm": 2.5,
        "interval_s": 300,
    }
    payload.update(overrides)
    return json.dumps(payload).encode()


def water(station_id: str = "WL-OU-01", minute: int = 55) -> bytes:
    return json.dumps(
        {
            "kind": "water_level",
            "station_id": station_id,
            "observed_at": f"2019-08-09T11:{minute:02d}:00Z",
            "level_m": 3.2,
        }
    ).encode()


def radar(peak_dbz: float) -> bytes:
    grid = np.full((3, 3), np.nan, dtype=np.float32)
    grid[1, 1] = peak_dbz
    scan = {
        "kind": "radar",
        "station_id": "RADAR-WZ",
        "observed_at": "2019-08-09T11:54:00Z",
        "band": "S",
        "origin_lon": 120.0,
        "origin_lat": 27.5,
        "cell_deg": 0.01,
        "n_rows": 3,
        "n_cols": 3,
        "dbz_b64": RadarScan.pack_dbz(grid),
    }
    return json.dumps(scan).encode()


async def test_good_observation_is_accepted_enriched_and_published(ingest: Ingest) -> None:
    response = await ingest.client.post("/v1/observations", content=rain(), headers=ingest.headers())
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "accepted"
    assert body["id"] == "rain|RAIN-A0001|2019-08-09T11:55:00+00:00"
    assert body["township_code"] == "330302006"
    accepted, rejected = await ingest.records()
    assert rejected == []
    assert [r.topic for r in accepted] == [topics.OBS_RAIN]
    assert accepted[0].key == "RAIN-A0001"
    published = RainObservation.model_validate_json(accepted[0].value)
    assert published.township_code == "330302006"
    assert published.source == "full/canonical"


@pytest.mark.parametrize(
    ("key", "payload", "status", "reason", "field", "detail_has"),
    [
        pytest.param("full", b'{"kind": "rain", ', 400, "malformed_json", None, "JSON", id="malformed-json"),
        pytest.param("full", rain(rain_mm="lots"), 422, "schema", "rain.rain_mm", "rain_mm", id="wrong-type"),
        pytest.param(
            "full", rain(interval_s="5min"), 422, "schema", "rain.interval_s", "interval_s", id="wrong-type-2"
        ),
        pytest.param(
            "full",
            rain(station_id="RAIN-X9999"),
            422,
            "unknown_station",
            "station_id",
            "RAIN-X9999",
            id="unknown-station",
        ),
        pytest.param(
            "full",
            rain(station_id="WL-OU-01"),
            422,
            "wrong_kind_for_station",
            "kind",
            "WL-OU-01",
            id="wrong-kind-for-station",
        ),
        pytest.param(
            "hydro",
            water("RIVER-X1"),
            403,
            "forbidden_station",
            "station_id",
            "RIVER-X1",
            id="station-outside-key-scope",
        ),
        pytest.param("hydro", rain(), 403, "forbidden_kind", "kind", "rain", id="kind-outside-key-scope"),
        pytest.param(
            "full", rain(rain_mm=-0.5), 422, "implausible_value", "rain.rain_mm", "rain_mm", id="negative-rain"
        ),
        pytest.param("full", radar(95.0), 422, "implausible_value", "radar", "95.0 dBZ", id="radar-95-dbz"),
        pytest.param(
            "full",
            rain(observed_at="2019-08-09T12:30:00Z"),
            422,
            "timestamp_future",
            "observed_at",
            "ahead",
            id="future-timestamp",
        ),
        pytest.param(
            "full",
            rain(observed_at="2019-07-01T00:00:00Z"),
            422,
            "timestamp_past",
            "observed_at",
            "older",
            id="past-timestamp",
        ),
        pytest.param(
            "full",
            rain(observed_at="2019-08-09T19:55:00"),
            422,
            "schema",
            "rain.observed_at",
            "zone",
            id="naive-timestamp",
        ),
    ],
)
async def test_single_rejections_name_reason_and_field(
    ingest: Ingest, key: str, payload: bytes, status: int, reason: str, field: str | None, detail_has: str
) -> None:
    response = await ingest.client.post("/v1/observations", content=payload, headers=ingest.headers(key))
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == "rejected"
    assert body["reason"] == reason
    assert body["field"] == field
    assert detail_has in body["detail"]
    accepted, rejected = await ingest.records()
    assert accepted == []
    [record] = [RejectedRecord.model_validate_json(r.value) for r in rejected]
    assert (record.reason, record.field, record.raw) == (reason, field, payload.decode())
    assert record.source == f"{key}/canonical"


async def test_radar_within_bounds_is_accepted(ingest: Ingest) -> None:
    response = await ingest.client.post("/v1/observations", content=radar(62.5), headers=ingest.headers())
    assert response.status_code == 202, response.text


async def test_replayed_duplicate_is_refused_with_409(ingest: Ingest) -> None:
    first = await ingest.client.post("/v1/observations", content=rain(), headers=ingest.headers())
    again = await ingest.client.post("/v1/observations", content=rain(), headers=ingest.headers())
    assert first.status_code == 202
    assert again.status_code == 409
    assert again.json()["reason"] == "duplicate"
    assert again.json()["field"] == "observed_at"
    accepted, rejected = await ingest.records()
    assert (len(accepted), len(rejected)) == (1, 1)


async def test_oversized_payload_is_refused_before_parsing_and_recorded(ingest: Ingest) -> None:
    payload = b'{"kind":"rain","pad":"' + b"x" * MAX_BODY_BYTES + b'"}'
    response = await ingest.client.post("/v1/observations", content=payload, headers=ingest.headers())
    assert response.status_code == 413
    body = response.json()
    assert body["reason"] == "oversized"
    assert f"payload of {len(payload)} bytes exceeds the limit of {MAX_BODY_BYTES} bytes" in body["detail"]
    _, rejected = await ingest.records()
    [record] = [RejectedRecord.model_validate_json(r.value) for r in rejected]
    assert record.reason == "oversized"
    assert record.raw.startswith('{"kind":"rain","pad":"xxx')
    assert 0 < len(record.raw) <= 4096
    # the connection is still usable afterwards
    ok = await ingest.client.post("/v1/observations", content=rain(), headers=ingest.headers())
    assert ok.status_code == 202


async def test_oversized_chunked_upload_without_content_length(ingest: Ingest) -> None:
    async def chunks() -> Any:
        for _ in range(MAX_BODY_BYTES // 4096 + 2):
            yield b"y" * 4096

    response = await ingest.client.post("/v1/observations:batch", content=chunks(), headers=ingest.headers())
    assert response.status_code == 413
    assert response.json()["reason"] == "oversized"
    detail = re.search(r"payload of at least (\d+) bytes exceeds the limit of (\d+)", response.json()["detail"])
    assert detail is not None
    assert int(detail.group(1)) > MAX_BODY_BYTES == int(detail.group(2))


@pytest.mark.parametrize(
    ("headers", "detail_has"),
    [
        pytest.param({}, "missing", id="no-key"),
        pytest.param({"X-API-Key": "full.wrong-secret"}, "wrong", id="bad-secret"),
        pytest.param({"X-API-Key": "nobody.s3cret-full"}, "wrong", id="unknown-id"),
        pytest.param({"X-API-Key": "off.s3cret-off"}, "disabled", id="disabled-key"),
    ],
)
async def test_401_without_a_valid_key_and_nothing_published(
    ingest: Ingest, headers: dict[str, str], detail_has: str
) -> None:
    for path in ("/v1/observations", "/v1/observations:batch", "/v1/feeds/rain_csv"):
        response = await ingest.client.post(path, content=rain(), headers=headers)
        assert response.status_code == 401
        assert response.json()["reason"] == "unauthorized"
        assert response.json()["field"] == "X-API-Key"
        assert detail_has in response.json()["detail"]
    assert await ingest.records() == ([], [])
    assert ingest.counts.received == 0


async def test_429_over_the_rate_with_retry_after(ingest: Ingest) -> None:
    statuses = []
    for minute in range(4):
        response = await ingest.client.post(
            "/v1/observations",
            content=rain(observed_at=f"2019-08-09T11:5{minute}:00Z"),
            headers=ingest.headers("slow"),
        )
        statuses.append(response.status_code)
    assert statuses[:2] == [202, 202]
    assert statuses[2:] == [429, 429]
    assert int(response.headers["Retry-After"]) >= 1
    assert response.json()["reason"] == "rate_limited"
    # another key is not affected
    other = await ingest.client.post("/v1/observations", content=rain(), headers=ingest.headers("full"))
    assert other.status_code == 202


async def test_batch_with_mixed_items_reports_each(ingest: Ingest) -> None:
    items = [
        json.loads(rain()),
        json.loads(rain(station_id="RAIN-A0002", rain_mm="wet")),
        json.loads(rain(station_id="RAIN-X9999")),
        json.loads(rain()),  # the same reading again, in the same batch
        json.loads(water()),
        {"kind": "snow"},
    ]
    response = await ingest.client.post(
        "/v1/observations:batch", content=json.dumps(items).encode(), headers=ingest.headers()
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["received"], body["accepted"], body["rejected"]) == (6, 2, 4)
    summary = [(i["index"], i["status"], i.get("reason"), i.get("field")) for i in body["items"]]
    assert summary == [
        (0, "accepted", None, None),
        (1, "rejected", "schema", "rain.rain_mm"),
        (2, "rejected", "unknown_station", "station_id"),
        (3, "rejected", "duplicate", "observed_at"),
        (4, "accepted", None, None),
        (5, "rejected", "schema", None),
    ]
    accepted, rejected = await ingest.records()
    assert sorted(r.topic for r in accepted) == [topics.OBS_RAIN, topics.OBS_WATER]
    assert len(rejected) == 4


async def test_batch_as_ndjson_with_a_broken_line(ingest: Ingest) -> None:
    body = b"\n".join([rain(), b"{broken", rain(station_id="RAIN-A0002")]) + b"\n"
    response = await ingest.client.post(
        "/v1/observations:batch", content=body, headers=ingest.headers(content_type="application/x-ndjson")
    )
    assert response.status_code == 200
    assert [i["status"] for i in response.json()["items"]] == ["accepted", "rejected", "accepted"]
    assert response.json()["items"][1]["reason"] == "malformed_json"


async def test_batch_that_is_not_an_array_is_a_400(ingest: Ingest) -> None:
    response = await ingest.client.post("/v1/observations:batch", content=b"[{,]", headers=ingest.headers())
    assert response.status_code == 400
    assert response.json()["reason"] == "malformed_json"
    _, rejected = await ingest.records()
    assert len(rejected) == 1


async def test_batch_over_max_count_is_refused(ingest: Ingest) -> None:
    items = [json.loads(canonical_rain("RAIN-A0001", NOW - timedelta(minutes=i + 1))) for i in range(MAX_BATCH + 1)]
    response = await ingest.client.post(
        "/v1/observations:batch", content=json.dumps(items).encode(), headers=ingest.headers()
    )
    assert response.status_code == 413
    assert str(MAX_BATCH) in response.json()["detail"]
    accepted, rejected = await ingest.records()
    assert accepted == []
    assert [RejectedRecord.model_validate_json(r.value).reason for r in rejected] == ["oversized"]


@pytest.mark.parametrize("feed", sorted(SAMPLE_PAYLOADS))
async def test_every_builtin_feed_sample_is_accepted_over_http(ingest: Ingest, feed: str) -> None:
    content_type = {"rain_csv": "text/csv", "water_level_csv": "text/csv"}.get(feed, "application/json")
    if feed == "canonical":
        content_type = "application/x-ndjson"
    response = await ingest.client.post(
        f"/v1/feeds/{feed}", content=SAMPLE_PAYLOADS[feed], headers=ingest.headers(content_type=content_type)
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["rejected"] == 0, body
    assert body["accepted"] == body["received"] > 0
    accepted, _ = await ingest.records()
    assert len(accepted) == body["accepted"]


async def test_a_bad_vendor_row_is_rejected_alone_naming_the_column(ingest: Ingest) -> None:
    payload = (
        b"station,time(BJT),rain_mm,wind2min,gust\n"
        b"RAIN-A0001,2019-08-09 19:50:00,1.0,2.0,3.0\n"
        b"RAIN-A0002,2019-08-09 19:50:00,lots,2.0,3.0\n"
        b"RAIN-A0003,yesterday,1.0,2.0,3.0\n"
        b"RAIN-A0004,2019-08-09 19:50:00,-4.0,,\n"
        b"RAIN-A0005,2019-08-09 19:50:00,0.4,,\n"
    )
    response = await ingest.client.post(
        "/v1/feeds/rain_csv", content=payload, headers=ingest.headers(content_type="text/csv")
    )
    assert response.status_code == 200
    summary = [(i["status"], i.get("reason"), i.get("field")) for i in response.json()["items"]]
    assert summary == [
        ("accepted", None, None),
        ("rejected", "schema", "rain_mm"),
        ("rejected", "schema", "time"),
        ("rejected", "implausible_value", "rain_mm"),
        ("accepted", None, None),
    ]
    _, rejected = await ingest.records()
    raws = sorted(RejectedRecord.model_validate_json(r.value).raw for r in rejected)
    assert raws == [
        "RAIN-A0002,2019-08-09 19:50:00,lots,2.0,3.0",
        "RAIN-A0003,yesterday,1.0,2.0,3.0",
        "RAIN-A0004,2019-08-09 19:50:00,-4.0,,",
    ]


async def test_feed_refusals_unknown_forbidden_and_media_type(ingest: Ingest) -> None:
    unknown = await ingest.client.post("/v1/feeds/soil_moisture", content=b"x", headers=ingest.headers())
    assert unknown.status_code == 404
    assert unknown.json()["reason"] == "unknown_feed"
    forbidden = await ingest.client.post(
        "/v1/feeds/rain_csv", content=SAMPLE_PAYLOADS["rain_csv"], headers=ingest.headers("hydro", "text/csv")
    )
    assert forbidden.status_code == 403
    assert (forbidden.json()["reason"], forbidden.json()["field"]) == ("forbidden_kind", "feed")
    media = await ingest.client.post(
        "/v1/feeds/rain_csv", content=SAMPLE_PAYLOADS["rain_csv"], headers=ingest.headers(content_type="image/png")
    )
    assert media.status_code == 415
    assert media.json()["field"] == "Content-Type"
    allowed = await ingest.client.post(
        "/v1/feeds/water_level_csv",
        content=SAMPLE_PAYLOADS["water_level_csv"],
        headers=ingest.headers("hydro", "text/csv"),
    )
    assert allowed.json()["accepted"] == 3
    _, rejected = await ingest.records()
    reasons = sorted(RejectedRecord.model_validate_json(r.value).reason for r in rejected)
    assert reasons == ["forbidden_kind", "schema", "unknown_feed"]


async def test_healthz_metrics_and_openapi(ingest: Ingest) -> None:
    await ingest.client.post("/v1/observations", content=rain(), headers=ingest.headers())
    await ingest.client.post("/v1/observations", content=rain(rain_mm=-1), headers=ingest.headers())
    health = await ingest.client.get("/healthz")
    assert health.json()["status"] == "ok"
    assert "rain_csv" in health.json()["feeds"]
    metrics = (await ingest.client.get("/metrics")).text
    assert 'earlywarn_observations_received_total{feed="canonical"} 2.0' in metrics
    assert 'earlywarn_observations_accepted_total{kind="rain"} 1.0' in metrics
    assert 'earlywarn_observations_rejected_total{reason="implausible_value"} 1.0' in metrics
    assert 'earlywarn_ingest_requests_total{route="/v1/observations",status="202"} 1.0' in metrics
    spec = (await ingest.client.get("/openapi.json")).json()
    assert {"/v1/observations", "/v1/observations:batch", "/v1/feeds/{feed}", "/healthz", "/metrics"} <= set(
        spec["paths"]
    )
    body = spec["paths"]["/v1/observations"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/Observation"}
    assert "rain" in body["examples"]
    assert "RainObservation" in spec["components"]["schemas"]
    feed_examples = spec["paths"]["/v1/feeds/{feed}"]["post"]["requestBody"]["content"]["text/csv"]["examples"]
    assert {"rain_csv", "water_level_csv"} <= set(feed_examples)
    assert "APIKeyHeader" in spec["components"]["securitySchemes"]


def metric_total(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))


async def test_accounting_received_equals_accepted_plus_rejected_on_the_bus(ingest: Ingest) -> None:
    h = ingest.headers()
    responses = [
        await ingest.client.post("/v1/observations", content=rain(), headers=h),
        await ingest.client.post("/v1/observations", content=rain(), headers=h),
        await ingest.client.post("/v1/observations", content=b"nope", headers=h),
        await ingest.client.post(
            "/v1/observations:batch",
            content=json.dumps([json.loads(rain(station_id=f"RAIN-A000{i}")) for i in range(1, 6)]).encode(),
            headers=h,
        ),
        await ingest.client.post(
            "/v1/feeds/rain_csv",
            content=SAMPLE_PAYLOADS["rain_csv"] + b"x,y\n",
            headers=ingest.headers("full", "text/csv"),
        ),
        await ingest.client.post("/v1/feeds/geohazard_json", content=SAMPLE_PAYLOADS["geohazard_json"], headers=h),
        await ingest.client.post("/v1/feeds/geohazard_json", content=b'{"code":500}', headers=h),
        await ingest.client.post("/v1/feeds/nope", content=b"?", headers=h),
        await ingest.client.post("/v1/observations", content=b"z" * (MAX_BODY_BYTES + 1), headers=h),
        await ingest.client.post("/v1/observations", content=rain(), headers={}),  # 401: never read
    ]
    assert [r.status_code for r in responses] == [202, 409, 400, 200, 200, 200, 422, 404, 413, 401]
    accepted, rejected = await ingest.records()
    counts = ingest.counts
    assert counts.received == counts.accepted + counts.rejected
    assert counts.accepted == len(accepted)
    assert counts.rejected == len(rejected)
    assert sum(counts.by_reason.values()) == counts.rejected
    published_reasons: dict[str, int] = {}
    for record in rejected:
        reason = RejectedRecord.model_validate_json(record.value).reason
        published_reasons[reason] = published_reasons.get(reason, 0) + 1
    assert published_reasons == counts.by_reason
    text = (await ingest.client.get("/metrics")).text
    assert 'earlywarn_observations_received_total{feed="unknown"} 1.0' in text  # not {feed="nope"}
    assert metric_total(text, "earlywarn_observations_received_total") == counts.received
    assert metric_total(text, "earlywarn_observations_accepted_total") == counts.accepted
    assert metric_total(text, "earlywarn_observations_rejected_total") == counts.rejected
    # what the responses said adds up to the same
    said = 0
    for response in responses[:9]:
        body = response.json()
        said += body["received"] if "items" in body else 1
    assert said == counts.received
