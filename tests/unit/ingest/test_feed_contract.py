"""Every built-in feed passes the contract kit, and the kit catches adapters that break it."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import ClassVar

import pytest

from schemas.observations import RainObservation
from services.ingest.contract_kit import (
    AdapterContractError,
    check_adapter,
    check_adapter_class,
    check_deterministic,
    check_garbage_never_raises,
    check_oversized_refused,
    check_samples,
)
from services.ingest.feeds import BUILTIN_FEEDS, DecodedItem, DecodeError, FeedAdapter, FeedRegistry, build
from services.ingest.feeds.testing import SAMPLE_NOW, SAMPLE_PAYLOADS


@pytest.mark.parametrize("name", sorted(BUILTIN_FEEDS))
def test_builtin_feed_honours_the_contract(name: str) -> None:
    cls = FeedRegistry(discover=lambda group: []).load(name)
    observations = check_adapter(cls, [SAMPLE_PAYLOADS[name]], max_examples=150)
    assert observations
    assert {o.kind for o in observations} <= cls.observation_kinds


class _Rain(FeedAdapter):
    name: ClassVar[str] = "fake_rain"
    content_types: ClassVar[tuple[str, ...]] = ("text/plain",)
    max_payload_bytes: ClassVar[int] = 1000
    observation_kinds: ClassVar[frozenset[str]] = frozenset({"rain"})

    def decode(self, payload: bytes) -> Iterator[DecodedItem]:
        for line in payload.split(b"\n"):
            if line.strip():
                yield RainObservation(
                    station_id=line.strip().decode("ascii", "replace"), observed_at=SAMPLE_NOW, rain_mm=1
                )


SAMPLE = b"RAIN-A0001\n"


def test_kit_catches_an_adapter_that_raises_on_garbage() -> None:
    with pytest.raises(AdapterContractError, match="decode raised"):
        check_garbage_never_raises(_Rain, [SAMPLE], max_examples=100)


def test_kit_catches_an_adapter_that_is_not_deterministic() -> None:
    class Flaky(_Rain):
        def decode(self, payload: bytes) -> Iterator[DecodedItem]:
            yield DecodeError("schema", f"roll {random.random()}")

    with pytest.raises(AdapterContractError, match="not deterministic"):
        check_deterministic(Flaky, [SAMPLE])


def test_kit_catches_errors_without_a_reason_and_foreign_items() -> None:
    class Sloppy(_Rain):
        def decode(self, payload: bytes) -> Iterator[DecodedItem]:
            yield DecodeError("no_idea", "")  # type: ignore[arg-type]  # the breach under test
            yield {"station": "x"}  # type: ignore[misc]  # the breach under test

    with pytest.raises(AdapterContractError) as caught:
        check_garbage_never_raises(Sloppy, max_examples=5)
    message = str(caught.value)
    assert "not a RejectReason" in message
    assert "without a detail" in message
    assert "yielded dict" in message


def test_kit_catches_a_sample_that_does_not_decode_cleanly() -> None:
    class Careful(_Rain):
        def decode(self, payload: bytes) -> Iterator[DecodedItem]:
            yield build(RainObservation, payload, station_id="RAIN-A0001", observed_at=SAMPLE_NOW, rain_mm=-1)

    with pytest.raises(AdapterContractError, match="must decode cleanly, got implausible_value"):
        check_samples(Careful, [SAMPLE])
    with pytest.raises(AdapterContractError, match="decode raised ValidationError"):
        check_samples(_Rain, [b"bad id with spaces\n"])
    with pytest.raises(AdapterContractError, match="no sample payloads"):
        check_samples(_Rain, [])


def test_kit_catches_a_kind_the_adapter_did_not_declare() -> None:
    class Liar(_Rain):
        observation_kinds: ClassVar[frozenset[str]] = frozenset({"water_level"})

    with pytest.raises(AdapterContractError, match="not in observation_kinds"):
        check_samples(Liar, [SAMPLE])


def test_kit_catches_bad_capabilities() -> None:
    class Bad(_Rain):
        name: ClassVar[str] = "Bad Name"
        content_types: ClassVar[tuple[str, ...]] = ()
        max_payload_bytes: ClassVar[int] = 0
        observation_kinds: ClassVar[frozenset[str]] = frozenset({"snow"})

    with pytest.raises(AdapterContractError) as caught:
        check_adapter_class(Bad)
    for word in ("name", "content_types", "max_payload_bytes", "observation_kinds"):
        assert word in str(caught.value)


def test_oversized_check_passes_for_any_declared_limit() -> None:
    check_oversized_refused(_Rain)
