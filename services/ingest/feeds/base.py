"""The feed-adapter contract: one small ABC every sensor feed is written against.

A feed adapter turns a *vendor* payload (a CSV export, a vendor JSON document, our own
NDJSON …) into canonical observations. It does not check stations, scopes, clocks or
duplicates: every item it produces goes through the ``IngestGate`` afterwards, the same
gate the HTTP API and the replay driver use.

Lifecycle (the ingest edge drives it; the adapter never calls back)::

    cls.name, cls.content_types,          capabilities: class attributes, read before any
    cls.max_payload_bytes, …              instance exists (routing, limits, API docs)
          │
    adapter = cls()                       cheap, no arguments, no I/O; one per process
          │
    decode_payload(adapter, payload)      per payload received (HTTP body, file, message):
          │  1. len(payload) > max_payload_bytes  → one ``oversized`` error, decode not called
          │  2. adapter.decode(payload)           → items, lazily, in payload order
          │  3. an exception escaping decode      → one error item carrying the whole payload
          ▼
    bytes | ObservationBase | DecodeError  → IngestGate → obs.<kind> or obs.rejected

Items:

- ``bytes`` — one canonical observation as JSON; the gate parses and validates it (use this
  when the vendor already speaks our schema, so the error reasons are the gate's own).
- an ``ObservationBase`` — built by the adapter from vendor fields (validated on
  construction; build it with ``build`` so a ``ValidationError`` becomes an item error).
- a ``DecodeError`` — one unreadable item, with its reason, the field and the raw text of
  that item only. One bad row never loses the rows around it.

``decode`` must be a pure, deterministic function of the payload (no clock, no I/O, no
state between calls), must not raise for bad input (an exception is a bug, but it still
ends up in ``obs.rejected``, never silently), and must yield exactly one item per vendor
record, so the caller can account for every record received.

Convention: the adapter's module defines ``SAMPLE_PAYLOAD: bytes``, a real (anonymised)
payload that decodes cleanly. The HTTP API shows it as the example of its feed, and the
contract kit (``services.ingest.contract_kit``) is run on it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, TypeAlias, TypeVar, get_args

from pydantic import ValidationError

from schemas.observations import ObservationBase, ObservationKind
from schemas.rejected import RejectReason
from services.common.rejects import describe_validation_error

OBSERVATION_KINDS: frozenset[str] = frozenset(get_args(ObservationKind))
REJECT_REASONS: frozenset[str] = frozenset(get_args(RejectReason))
RAW_PREVIEW_BYTES = 4096
"""How much of a refused oversized payload is kept in its rejection."""


@dataclass(frozen=True, slots=True)
class DecodeError:
    """One vendor record (or the whole payload) that could not be read.

    ``raw`` is the record as received (the CSV line, the JSON element); ``fatal`` means the
    rest of the payload could not be read either (broken JSON, oversized), so nothing
    follows this item.
    """

    reason: RejectReason
    detail: str
    field: str | None = None
    raw: bytes | str = b""
    fatal: bool = False


DecodedItem: TypeAlias = bytes | ObservationBase | DecodeError
"""What ``decode`` yields: canonical JSON for the gate, a built observation, or an error."""


class FeedAdapter(ABC):
    """A sensor feed. Subclasses set the class attributes and implement ``decode``."""

    name: ClassVar[str]
    """Registry name and feed kind (``rain_csv``); the ``{feed}`` of ``POST /v1/feeds/{feed}``."""
    content_types: ClassVar[tuple[str, ...]]
    """Media types the HTTP API accepts for this feed (first one is the preferred one)."""
    max_payload_bytes: ClassVar[int]
    """Largest payload accepted; larger ones are refused (``oversized``) before ``decode`` runs."""
    observation_kinds: ClassVar[frozenset[str]]
    """Canonical kinds this feed produces (``rain``, ``radar``, ``geohazard``, ``water_level``)."""
    description: ClassVar[str] = ""
    """One line for the API docs and ``earlywarn`` listings."""

    @abstractmethod
    def decode(self, payload: bytes) -> Iterator[DecodedItem]:
        """Runs once per received payload that is within ``max_payload_bytes``.

        Yields one item per vendor record, in payload order, lazily (the caller may stop
        early, e.g. past the batch limit). Bad records are ``DecodeError`` items; do not
        raise for bad input. An exception escaping here is caught by ``decode_payload``
        and turned into one ``DecodeError`` holding the whole payload: the records yielded
        before it are kept, the rest of the payload is rejected (reason ``schema``).
        """


def decode_payload(adapter: FeedAdapter, payload: bytes) -> Iterator[DecodedItem]:
    """Run ``adapter.decode`` with the contract's guarantees (see the module docstring).

    Never raises for any payload: the size limit is enforced before decoding, items of a
    wrong type and exceptions from the adapter become ``DecodeError`` items.
    """
    limit = type(adapter).max_payload_bytes
    if len(payload) > limit:
        yield oversized_error(len(payload), limit, payload)
        return
    try:
        for item in adapter.decode(payload):
            if isinstance(item, bytes | ObservationBase | DecodeError):
                yield item
            else:
                yield DecodeError(
                    "schema",
                    f"feed adapter {adapter.name!r} yielded a {type(item).__name__}, "
                    "expected bytes, an observation or a DecodeError",
                    raw=repr(item)[:RAW_PREVIEW_BYTES],
                )
    except Exception as exc:  # the contract: an adapter bug becomes a rejection, not a lost payload
        yield DecodeError(
            "schema",
            f"feed adapter {adapter.name!r} failed while decoding: {type(exc).__name__}: {exc}",
            raw=payload,
            fatal=True,
        )


def oversized_error(size: int, limit: int, head: bytes, at_least: bool = False) -> DecodeError:
    """The ``oversized`` error for a payload of ``size`` bytes (or more); keeps its first bytes."""
    return DecodeError(
        "oversized",
        f"payload of {'at least ' if at_least else ''}{size} bytes exceeds the limit of {limit} bytes",
        field=None,
        raw=head[:RAW_PREVIEW_BYTES],
        fatal=True,
    )


ObservationT = TypeVar("ObservationT", bound=ObservationBase)


def build(model: type[ObservationT], raw: bytes | str, **fields: Any) -> ObservationT | DecodeError:
    """Construct a canonical observation from vendor fields; a ``ValidationError`` becomes an item error.

    The error names the reason (``schema`` or ``implausible_value``) and the canonical field,
    with the vendor record in ``raw``.
    """
    try:
        return model(**fields)
    except ValidationError as exc:
        reason, detail, field = describe_validation_error(exc)
        return DecodeError(reason, detail, field, raw)


def check_class(cls: type[FeedAdapter]) -> list[str]:
    """Problems with an adapter's declared capabilities (empty list: it declares them all)."""
    problems: list[str] = []
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name or not name.replace("_", "").isalnum() or not name.islower():
        problems.append(f"name must be a non-empty lower-case identifier, got {name!r}")
    elif len(name) > 31:
        problems.append(f"name {name!r} is longer than 31 characters")
    types = getattr(cls, "content_types", None)
    if not isinstance(types, tuple) or not types or not all(isinstance(t, str) and "/" in t for t in types):
        problems.append(f"content_types must be a non-empty tuple of media types, got {types!r}")
    limit = getattr(cls, "max_payload_bytes", None)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit <= 0:
        problems.append(f"max_payload_bytes must be a positive int, got {limit!r}")
    kinds = getattr(cls, "observation_kinds", None)
    if not isinstance(kinds, frozenset) or not kinds or not kinds <= OBSERVATION_KINDS:
        allowed = sorted(OBSERVATION_KINDS)
        problems.append(f"observation_kinds must be a non-empty frozenset of {allowed}, got {kinds!r}")
    return problems
