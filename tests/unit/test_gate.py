"""The ingest gate: every bad payload gets a precise reason; hypothesis fuzzes it."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.observations import RainObservation
from schemas.rejected import RejectedRecord
from services.ingest.gate import IngestGate, Scope, static_lookup

NOW = datetime(2019, 8, 9, 12, 0, tzinfo=UTC)
LOOKUP = static_lookup({"RAIN-A0001": (("rain",), "330302006"), "WL-OU-01": (("water_level",), "330302023")})


def gate() -> IngestGate:
    return IngestGate(LOOKUP, lambda: NOW)


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


@pytest.mark.parametrize(
    ("raw", "reason", "field"),
    [
        pytest.param(b"{not json", "malformed_json", None, id="malformed-json"),
        pytest.param(rain(rain_mm="lots"), "schema", "rain.rain_mm", id="wrong-type"),
        pytest.param(rain(rain_mm=-1.0), "implausible_value", "rain.rain_mm", id="negative-rain"),
        pytest.param(rain(rain_mm=80.0, interval_s=300), "implausible_value", "rain", id="rain-rate-impossible"),
        pytest.param(rain(kind="snow"), "schema", None, id="unknown-kind"),
        pytest.param(rain(station_id="RAIN-X9999"), "unknown_station", "station_id", id="unknown-station"),
        pytest.param(rain(station_id="WL-OU-01"), "wrong_kind_for_station", "kind", id="wrong-kind"),
        pytest.param(rain(observed_at="2019-08-09T13:00:00Z"), "timestamp_future", "observed_at", id="future"),
        pytest.param(rain(observed_at="2019-07-01T00:00:00Z"), "timestamp_past", "observed_at", id="too-old"),
        pytest.param(rain(observed_at="2019-08-09T11:55:00"), "schema", "rain.observed_at", id="naive-time"),
        pytest.param(rain(extra_field=1), "schema", "rain.extra_field", id="unknown-field"),
    ],
)
def test_rejections_name_reason_and_field(raw: bytes, reason: str, field: str | None) -> None:
    result = gate().admit(raw, "test")
    assert isinstance(result, RejectedRecord)
    assert result.reason == reason
    if field is not None:
        assert result.field == field
        assert field.split(".")[-1] in result.detail
    assert result.raw == raw.decode()


def test_accepts_and_enriches() -> None:
    result = gate().admit(rain(), "test")
    assert isinstance(result, RainObservation)
    assert result.township_code == "330302006"


def test_duplicate_is_recognised() -> None:
    g = gate()
    assert isinstance(g.admit(rain(), "test"), RainObservation)
    again = g.admit(rain(), "test")
    assert isinstance(again, RejectedRecord)
    assert again.reason == "duplicate"


def test_scope_limits_stations_and_kinds() -> None:
    g = gate()
    denied = g.admit(rain(), "k1", Scope(stations=frozenset({"RAIN-A0002"})))
    assert isinstance(denied, RejectedRecord)
    assert denied.reason == "forbidden_station"
    denied_kind = g.admit(rain(), "k1", Scope(kinds=frozenset({"water_level"})))
    assert isinstance(denied_kind, RejectedRecord)
    assert denied_kind.reason == "forbidden_kind"


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_fuzz_arbitrary_bytes_never_raise(raw: bytes) -> None:
    result = gate().admit(raw, "fuzz")
    assert isinstance(result, RejectedRecord | RainObservation)
    if isinstance(result, RejectedRecord):
        assert result.detail


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(
    field=st.sampled_from(["station_id", "observed_at", "rain_mm", "interval_s", "wind_mean_ms", "kind"]),
    value=json_values,
)
def test_fuzz_field_values_accept_or_reject_with_reason(field: str, value: object) -> None:
    result = gate().admit(rain(**{field: value}), "fuzz")
    if isinstance(result, RejectedRecord):
        assert result.reason != "duplicate"
        assert result.detail
    else:
        assert isinstance(result, RainObservation)
        assert 0.0 <= result.rain_mm <= 300.0
