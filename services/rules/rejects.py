"""A record a rules processor cannot use becomes a ``RejectedRecord`` on ``obs.rejected``."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import ValidationError

from schemas import topics as tn
from schemas.rejected import RejectReason
from services.common.bus.base import Emit, Record
from services.common.rejects import describe_validation_error, rejection


def reject(
    record: Record,
    exc: ValidationError | ValueError,
    detail_prefix: str = "",
    *,
    reason: RejectReason | None = None,
    field: str | None = None,
) -> Emit:
    """The rejection of ``record``: a validation error names its own reason and field;
    a plain ``ValueError`` is ``schema`` unless ``reason`` says otherwise."""
    if isinstance(exc, ValidationError):
        found_reason, detail, found_field = describe_validation_error(exc)
    else:
        found_reason, detail, found_field = "schema", str(exc), None
    rejected = rejection(
        source=f"{record.topic}[{record.partition}]@{record.offset}",
        reason=reason or found_reason,
        detail=detail_prefix + detail,
        field=field or found_field,
        raw=record.value,
        received_at=datetime.fromtimestamp(record.timestamp_ms / 1000, UTC),
    )
    return Emit(tn.OBS_REJECTED, record.key or record.topic, rejected.model_dump_json().encode())
