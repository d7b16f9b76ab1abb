"""What ingest changed in the gate: ``forget`` after a failed publication, any container as
``Scope.stations``, and enrichment without a copy only for models the gate parsed itself."""

from __future__ import annotations

from schemas.observations import OBSERVATION_ADAPTER, RainObservation
from schemas.rejected import RejectedRecord
from services.ingest.feeds.testing import SAMPLE_NOW, canonical_rain, sample_lookup
from services.ingest.gate import IngestGate, Scope
from services.ingest.keys import StationMatcher

RAW = canonical_rain("RAIN-A0001", SAMPLE_NOW)


def gate() -> IngestGate:
    return IngestGate(sample_lookup(), lambda: SAMPLE_NOW)


def test_forget_lets_a_retry_in_and_only_that_reading() -> None:
    g = gate()
    first = g.admit(RAW, "t")
    other = g.admit(canonical_rain("RAIN-A0002", SAMPLE_NOW), "t")
    assert isinstance(first, RainObservation)
    assert isinstance(other, RainObservation)
    g.forget(first)
    assert isinstance(g.admit(RAW, "t"), RainObservation)
    again = g.admit(canonical_rain("RAIN-A0002", SAMPLE_NOW), "t")
    assert isinstance(again, RejectedRecord)
    assert again.reason == "duplicate"
    assert again.detail == "already received: rain|RAIN-A0002|2019-08-09T12:00:00+00:00"
    g.forget(first)
    g.forget(first)  # forgetting twice is harmless


def test_duplicates_are_the_same_instant_whatever_the_offset_written() -> None:
    g = gate()
    assert isinstance(g.admit(RAW, "t"), RainObservation)
    same_instant = RAW.replace(b'"2019-08-09T12:00:00Z"', b'"2019-08-09T20:00:00+08:00"')
    assert same_instant != RAW
    again = g.admit(same_instant, "t")
    assert isinstance(again, RejectedRecord)
    assert again.reason == "duplicate"


def test_scope_stations_may_be_a_prefix_matcher() -> None:
    scope = Scope(stations=StationMatcher.of(["RAIN-A000*"]), kinds=frozenset({"rain"}))
    assert isinstance(gate().admit(RAW, "t", scope), RainObservation)
    refused = gate().admit(RAW, "t", Scope(stations=StationMatcher.of(["WL-*"])))
    assert isinstance(refused, RejectedRecord)
    assert refused.reason == "forbidden_station"


def test_enrichment_in_place_equals_a_copy_and_never_touches_a_callers_model() -> None:
    parsed = gate().admit(RAW, "t")
    callers = OBSERVATION_ADAPTER.validate_json(RAW)
    enriched = gate().admit_model(callers, "t")
    assert callers.township_code is None  # the caller's object is untouched
    assert isinstance(parsed, RainObservation)
    assert enriched == parsed
    assert parsed.township_code == "330302006"
    assert parsed.model_fields_set == enriched.model_fields_set
    assert parsed.model_dump_json() == enriched.model_dump_json()
