"""Hypothesis over real HTTP: any body to any endpoint gets a documented answer, never a 500,
and the books balance afterwards (received = accepted + rejected = what is on the bus)."""

from __future__ import annotations

import json
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.rejected import RejectedRecord
from services.ingest.contract_kit import JSON_VALUES
from services.ingest.feeds.testing import SAMPLE_PAYLOADS
from tests.integration.ingest.conftest import Ingest

DOCUMENTED = {200, 202, 400, 403, 404, 409, 413, 415, 422}

rain_fields = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(["rain", "radar", "water_level", "geohazard", "snow"]),
        "station_id": st.sampled_from(["RAIN-A0001", "RAIN-A0002", "WL-OU-01", "RAIN-X9999", "", "bad id"]),
        "observed_at": st.sampled_from(
            ["2019-08-09T11:55:00Z", "2019-08-09T11:50:00+08:00", "2030-01-01T00:00:00Z", "2019-08-09", "soon"]
        ),
    },
    optional={"rain_mm": JSON_VALUES, "interval_s": JSON_VALUES, "level_m": JSON_VALUES, "extra": JSON_VALUES},
)
bodies = st.one_of(
    st.binary(max_size=300),
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    rain_fields.map(lambda d: json.dumps(d).encode()),
    st.lists(rain_fields, max_size=8).map(lambda ds: json.dumps(ds).encode()),
    st.sampled_from(sorted(SAMPLE_PAYLOADS.values())).flatmap(lambda s: st.integers(0, len(s)).map(lambda i: s[:i])),
)
routes = st.sampled_from(
    [
        ("/v1/observations", "application/json"),
        ("/v1/observations:batch", "application/json"),
        ("/v1/observations:batch", "application/x-ndjson"),
        ("/v1/feeds/rain_csv", "text/csv"),
        ("/v1/feeds/water_level_csv", "text/csv"),
        ("/v1/feeds/geohazard_json", "application/json"),
        ("/v1/feeds/radar_grid", "application/json"),
        ("/v1/feeds/canonical", "application/json"),
    ]
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(route=routes, body=bodies)
async def test_fuzz_api_answers_documented_statuses_and_books_balance(
    ingest: Ingest, route: tuple[str, str], body: bytes
) -> None:
    path, content_type = route
    response = await ingest.client.post(path, content=body, headers=ingest.headers("full", content_type))
    assert response.status_code in DOCUMENTED, (response.status_code, response.text)
    answer = response.json()
    if response.status_code == 200:
        assert answer["received"] == answer["accepted"] + answer["rejected"] == len(answer["items"])
        for item in answer["items"]:
            assert item["status"] in {"accepted", "rejected"}
            if item["status"] == "rejected":
                assert item["reason"]
                assert item["detail"]
    else:
        assert answer["reason"]
        assert answer["detail"]
    # The fixture's server lives across examples: the invariant must hold at every step.
    accepted, rejected = await ingest.records(group=f"fuzz-{uuid.uuid4().hex}")
    counts = ingest.counts
    assert counts.received == counts.accepted + counts.rejected
    assert counts.accepted == len(accepted)
    assert counts.rejected == len(rejected)
    for record in rejected:
        RejectedRecord.model_validate_json(record.value)
