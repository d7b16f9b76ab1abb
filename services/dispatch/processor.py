"""Dispatch intake: ``warnings`` (key ``hazard:township``) → ``dispatch.work`` (key warning id).

The dispatch worker keeps one ledger per warning, and everything that changes a ledger
must reach the worker that owns it: the warning's messages *and* the providers' delivery
reports, which arrive over HTTP at whichever worker (or ingress) the provider calls. So
both are put on one internal topic keyed by **warning id**, and the worker that owns a
partition of it owns those warnings' ledgers::

    warnings ──► DispatchIntake ──┐                          (validate, re-key)
                                  ├──► dispatch.work ──► DispatchWorker (ledger, fan-out)
    HTTP callbacks ───────────────┘    key = warning id

``DispatchIntake`` is a plain ``Processor`` (stateless), so it runs on ``run_on_bus`` in the
memory runtime and on the native Kafka engine unchanged:

1. Parse the record as a ``WarningMessage``; a malformed one becomes a ``RejectedRecord``
   on ``obs.rejected`` (reason from the validation error: ``schema``, ``malformed_json`` …).
2. Check every township against the lookup; an unknown one is rejected with reason
   ``unknown_station`` (``RejectReason`` has no ``unknown_township`` yet; the detail
   starts with ``[unknown_township]`` and names the codes).
3. Wrap the message in a ``dispatch.warning`` envelope carrying the time it was published
   on ``warnings`` (for the issued → hand-off latency) and emit it keyed by warning id.

Repeats are harmless: the worker deduplicates on ``WarningMessage.state_key``.

Record shapes on ``dispatch.work`` (JSON objects, ``kind`` first):

- ``{"kind": "dispatch.warning", "issued_ms": 1721889000000, "warning": {…WarningMessage…}}``
- ``{"kind": "dispatch.callbacks", "channel": "sms", "receipts": [[message_id, target_id,
  state, at_iso, provider, reason], …]}`` — one provider callback's receipts for one warning,
  as compact rows (a million receipts are a few thousand records, not a million).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Final

from pydantic import TypeAdapter, ValidationError

from schemas import topics as tn
from schemas.delivery import DeliveryReceipt
from schemas.rejected import RejectReason
from schemas.warning import WarningMessage
from services.common.bus.base import Emit, Record
from services.common.bus.processor import Processor, StateStore
from services.common.logging import get_logger
from services.common.metrics import Metrics
from services.common.rejects import describe_validation_error, rejection

log = get_logger(__name__)

DISPATCH_WORK: Final = "dispatch.work"
"""Internal topic: warnings and provider receipts, keyed by warning id (see module docstring)."""

UNKNOWN_TOWNSHIP: Final[RejectReason] = "unknown_station"
"""``RejectReason`` for a warning naming a township the lookup does not know (proposed:
``unknown_township``; until ``schemas/rejected.py`` has it, the detail starts with
``UNKNOWN_TOWNSHIP_TAG``)."""

UNKNOWN_MESSAGE: Final[RejectReason] = "schema"
"""``RejectReason`` for a receipt about a message this service never sent (proposed:
``unknown_message``; until then the detail starts with ``UNKNOWN_MESSAGE_TAG``)."""

UNKNOWN_TOWNSHIP_TAG: Final = "[unknown_township]"
UNKNOWN_MESSAGE_TAG: Final = "[unknown_message]"
"""Detail prefixes naming the proposed reasons, so the records can be told apart today."""

WARNING_KIND: Final = "dispatch.warning"
CALLBACKS_KIND: Final = "dispatch.callbacks"

CallbackRow = tuple[str, str, str, str, str, str]
"""``(message_id, target_id, state, at_iso, provider, reason)``."""


def reject_emit(
    *, source: str, reason: RejectReason, detail: str, raw: bytes | str, key: str, field: str | None = None
) -> Emit:
    """A ``RejectedRecord`` for ``obs.rejected`` (received now: rejections are edge events)."""
    record = rejection(source=source, reason=reason, detail=detail, raw=raw, received_at=datetime.now(UTC), field=field)
    return Emit(tn.OBS_REJECTED, key, record.model_dump_json().encode())


# --------------------------------------------------------------------------- codec

_DATETIME: TypeAdapter[datetime] = TypeAdapter(datetime)


def json_str(value: str) -> str:
    """A JSON string literal; plain printable ASCII (ids, tokens) skips the encoder."""
    if value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
        return f'"{value}"'
    return json.dumps(value, ensure_ascii=False)


def json_time(at: datetime) -> str:
    """A datetime as pydantic writes it (``"2024-07-25T06:30:00.5Z"``)."""
    return _DATETIME.dump_json(at).decode()


class OutputEncoder:
    """``DeliveryJob`` / ``DeliveryReceipt`` JSON written directly, byte-for-byte what
    ``model_dump_json`` writes, at a third of the cost (a fan-out writes two or three
    records per target; the dispatch tests parse them back with the models).

    The constant head of a record (kind, message, warning, channel) is cached per message.
    """

    def __init__(self, max_cached: int = 4096) -> None:
        self._heads: dict[tuple[str, str, str, str], str] = {}
        self._strings: dict[str, str] = {}
        self.max_cached = max_cached

    def _head(self, kind: str, message_id: str, warning_id: str, channel: str) -> str:
        key = (kind, message_id, warning_id, channel)
        head = self._heads.get(key)
        if head is None:
            if len(self._heads) >= self.max_cached:
                self._heads.clear()
            head = self._heads[key] = (
                f'{{"kind":"{kind}","message_id":{json_str(message_id)},"warning_id":{json_str(warning_id)},'
                f'"channel":{json_str(channel)},"target_id":'
            )
        return head

    def _short(self, value: str) -> str:
        """Provider names and reasons repeat: escape each once."""
        hit = self._strings.get(value)
        if hit is None:
            if len(self._strings) >= self.max_cached:
                self._strings.clear()
            hit = self._strings[value] = json_str(value)
        return hit

    def receipt(
        self,
        message_id: str,
        warning_id: str,
        channel: str,
        target_id: str,
        state: str,
        at_json: str,
        provider: str,
        reason: str,
        attempt: int,
    ) -> bytes:
        return (
            f"{self._head('delivery_receipt', message_id, warning_id, channel)}{json_str(target_id)},"
            f'"state":"{state}","at":{at_json},"provider":{self._short(provider[:64])},'
            f'"reason":{self._short(reason[:300])},"attempt":{attempt}}}'
        ).encode()

    def job(
        self,
        message_id: str,
        warning_id: str,
        channel: str,
        target_id: str,
        township_code: str,
        population: int,
        created_json: str,
    ) -> bytes:
        return (
            f"{self._head('delivery_job', message_id, warning_id, channel)}{json_str(target_id)},"
            f'"township_code":"{township_code}","population":{population},"created_at":{created_json}}}'
        ).encode()


def encode_warning(raw_warning: bytes, issued_ms: int) -> bytes:
    """The ``dispatch.warning`` envelope around an already validated warning's JSON."""
    return (
        b'{"kind":"'
        + WARNING_KIND.encode()
        + b'","issued_ms":'
        + str(int(issued_ms)).encode()
        + b',"warning":'
        + (raw_warning.strip() + b"}")
    )


def encode_callbacks(channel: str, rows: Sequence[CallbackRow]) -> bytes:
    return json.dumps(
        {"kind": CALLBACKS_KIND, "channel": channel, "receipts": [list(r) for r in rows]},
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()


def receipt_row(receipt: DeliveryReceipt) -> CallbackRow:
    return (
        receipt.message_id,
        receipt.target_id,
        receipt.state,
        receipt.at.isoformat().replace("+00:00", "Z"),  # UtcDatetime: always +00:00; "Z" as pydantic writes it
        receipt.provider,
        receipt.reason,
    )


@dataclass(frozen=True, slots=True)
class WarningWork:
    message: WarningMessage
    issued_ms: int


@dataclass(frozen=True, slots=True)
class CallbackWork:
    channel: str
    rows: list[CallbackRow]


class WorkDecodeError(ValueError):
    """A ``dispatch.work`` record that is not one of the shapes above."""


def decode_work(value: bytes) -> WarningWork | CallbackWork:
    """Parse a ``dispatch.work`` record; ``WorkDecodeError`` names what is wrong."""
    try:
        doc: Any = json.loads(value)
    except ValueError as exc:
        raise WorkDecodeError(f"not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise WorkDecodeError("not a JSON object")
    kind = doc.get("kind")
    if kind == WARNING_KIND:
        try:
            message = WarningMessage.model_validate(doc.get("warning"))
        except ValidationError as exc:
            raise WorkDecodeError(f"warning: {describe_validation_error(exc)[1]}") from exc
        issued = doc.get("issued_ms")
        return WarningWork(message, int(issued) if isinstance(issued, int | float) else 0)
    if kind == CALLBACKS_KIND:
        channel = doc.get("channel")
        rows = doc.get("receipts")
        if not isinstance(channel, str) or not isinstance(rows, list):
            raise WorkDecodeError("callbacks: 'channel' (str) and 'receipts' (list) are required")
        out: list[CallbackRow] = []
        for row in rows:
            if not (isinstance(row, list) and len(row) == 6 and all(isinstance(x, str) for x in row)):
                raise WorkDecodeError(f"callbacks: bad receipt row {row!r:.200}")
            out.append((row[0], row[1], row[2], row[3], row[4], row[5]))
        return CallbackWork(channel, out)
    raise WorkDecodeError(f"unknown kind {kind!r:.60}")


# --------------------------------------------------------------------------- intake


class DispatchIntake(Processor):
    """``warnings`` → ``dispatch.work`` keyed by warning id; bad input → ``obs.rejected``."""

    name: ClassVar[str] = "dispatch-intake"
    topics: ClassVar[tuple[str, ...]] = (tn.WARNINGS,)
    outputs: ClassVar[tuple[str, ...]] = (DISPATCH_WORK, tn.OBS_REJECTED)

    def __init__(self, towns: Mapping[str, object], metrics: Metrics | None = None) -> None:
        self.towns = towns
        self.metrics = metrics or Metrics()
        self._processed = self.metrics.records_processed.labels(self.name)

    def process(self, record: Record, state: StateStore) -> list[Emit]:
        self._processed.inc()
        source = f"{record.topic}[{record.partition}]@{record.offset}"
        key = record.key or record.topic
        try:
            msg = WarningMessage.model_validate_json(record.value)
        except ValidationError as exc:
            reason, detail, field = describe_validation_error(exc)
            self.metrics.observations_rejected.labels(reason).inc()
            log.warning("warning rejected", source=source, reason=reason, detail=detail[:300])
            return [reject_emit(source=source, reason=reason, detail=detail, raw=record.value, key=key, field=field)]
        unknown = [code for code in msg.township_codes if self.towns.get(code) is None]
        if unknown:
            detail = (
                f"{UNKNOWN_TOWNSHIP_TAG} township_codes: {len(unknown)} unknown township(s) "
                f"{', '.join(unknown[:10])} in {msg.message_id}; nothing of this message is sent"
            )
            self.metrics.observations_rejected.labels(UNKNOWN_TOWNSHIP).inc()
            log.warning("warning rejected", source=source, reason=UNKNOWN_TOWNSHIP, detail=detail)
            return [
                reject_emit(
                    source=source,
                    reason=UNKNOWN_TOWNSHIP,
                    detail=detail,
                    raw=record.value,
                    key=key,
                    field="township_codes",
                )
            ]
        return [Emit(DISPATCH_WORK, msg.warning_id, encode_warning(record.value, record.timestamp_ms))]
