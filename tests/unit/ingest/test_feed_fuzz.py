"""Hypothesis: every adapter's decode, on arbitrary bytes / text / JSON, never raises and
accounts for every record — as an observation or as an error with a reason."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.observations import ObservationBase
from services.ingest.contract_kit import JSON_VALUES, canonical_observation, garbage_payloads
from services.ingest.feeds import BUILTIN_FEEDS, DecodeError, FeedRegistry, decode_payload
from services.ingest.feeds.base import REJECT_REASONS
from services.ingest.feeds.canonical import CanonicalFeed
from services.ingest.feeds.rain_csv import RainCsvFeed
from services.ingest.feeds.testing import SAMPLE_PAYLOADS
from services.ingest.feeds.water_level_csv import WaterLevelCsvFeed

REGISTRY = FeedRegistry(discover=lambda group: [])
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("name", sorted(BUILTIN_FEEDS))
@FUZZ
@given(data=st.data())
def test_decode_never_raises_and_every_item_is_accounted(name: str, data: st.DataObject) -> None:
    adapter = REGISTRY.load(name)()
    payload = data.draw(garbage_payloads([SAMPLE_PAYLOADS[name]]), label="payload")
    decoded = list(decode_payload(adapter, payload))
    for item in decoded:
        if isinstance(item, DecodeError):
            assert item.reason in REJECT_REASONS
            assert item.detail
        else:
            assert isinstance(item, bytes | ObservationBase)
            if isinstance(item, ObservationBase):
                canonical_observation(item)  # re-validates: what we publish is canonical
    fatal = [i for i, item in enumerate(decoded) if isinstance(item, DecodeError) and item.fatal]
    assert fatal in ([], [len(decoded) - 1]), "a fatal error ends the items"


cells = st.text(alphabet=st.characters(blacklist_characters=',\n\r"', blacklist_categories=["Cs"]), max_size=12)


@FUZZ
@given(rows=st.lists(st.lists(cells, min_size=0, max_size=7), max_size=20))
def test_rain_csv_yields_one_item_per_data_line(rows: list[list[str]]) -> None:
    lines = ["station,time(BJT),rain_mm,wind2min,gust", *(",".join(r) for r in rows)]
    decoded = list(RainCsvFeed().decode("\n".join(lines).encode()))
    data_lines = [line for line in lines[1:] if line.encode().strip()]  # blank = ASCII whitespace only
    assert len(decoded) == len(data_lines)


@FUZZ
@given(rows=st.lists(st.lists(cells, min_size=0, max_size=5), max_size=20))
def test_water_level_csv_yields_one_item_per_data_line(rows: list[list[str]]) -> None:
    lines = ["STCD,TM,Z,TDZ", *(",".join(r) for r in rows)]
    decoded = list(WaterLevelCsvFeed().decode("\n".join(lines).encode()))
    assert len(decoded) == len([line for line in lines[1:] if line.encode().strip()])


@settings(max_examples=60, deadline=None)
@given(values=st.lists(JSON_VALUES, max_size=8), indent=st.sampled_from([None, 0, 2]))
def test_canonical_array_yields_each_element_as_sent(values: list[object], indent: int | None) -> None:
    decoded = list(CanonicalFeed().decode(json.dumps(values, indent=indent).encode()))
    assert len(decoded) == len(values)
    assert all(isinstance(item, bytes) for item in decoded)
    # the element's own text, which reads back as the same value
    assert [json.dumps(json.loads(item)) for item in decoded if isinstance(item, bytes)] == [
        json.dumps(v) for v in values
    ]


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=3), min_size=2, max_size=8))
def test_canonical_ndjson_yields_one_item_per_line(values: list[dict[str, object]]) -> None:
    payload = b"\n".join(json.dumps(v).encode() for v in values)
    assert len(list(CanonicalFeed().decode(payload))) == len(values)
