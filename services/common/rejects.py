"""Turning bad input into a ``RejectedRecord`` with the field and the reason named."""

from __future__ import annotations

from datetime import datetime

from pydantic import ValidationError

from schemas.rejected import RejectedRecord, RejectReason

MAX_RAW_CHARS = 1_000_000


def describe_validation_error(error: ValidationError) -> tuple[RejectReason, str, str | None]:
    """Reason, a one-line detail naming the field(s), and the first field path."""
    parts: list[str] = []
    first_field: str | None = None
    reason: RejectReason = "schema"
    for item in error.errors(include_url=False)[:5]:
        loc = ".".join(str(p) for p in item["loc"] if not isinstance(p, int) or len(item["loc"]) == 1)
        if first_field is None and loc:
            first_field = loc
        parts.append(f"{loc or '<root>'}: {item['msg']}")
        if item["type"] in {"greater_than_equal", "less_than_equal", "greater_than", "less_than"} or (
            item["type"] == "value_error" and ("exceeds" in item["msg"] or "below" in item["msg"])
        ):
            reason = "implausible_value"
        if item["type"] == "json_invalid":
            reason = "malformed_json"
    return reason, "; ".join(parts), first_field


def rejection(
    *,
    source: str,
    reason: RejectReason,
    detail: str,
    raw: bytes | str,
    received_at: datetime,
    field: str | None = None,
) -> RejectedRecord:
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    return RejectedRecord(
        source=source[:128],
        reason=reason,
        detail=detail[:2000],
        field=field[:200] if field else None,
        received_at=received_at,
        raw=text[:MAX_RAW_CHARS],
    )
