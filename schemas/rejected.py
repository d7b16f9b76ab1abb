"""Rejected input: the raw payload and why it was refused, so nothing vanishes."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from schemas.common import Contract, UtcDatetime

RejectReason = Literal[
    "malformed_json",
    "schema",
    "implausible_value",
    "unknown_station",
    "wrong_kind_for_station",
    "forbidden_station",
    "forbidden_kind",
    "timestamp_future",
    "timestamp_past",
    "duplicate",
    "oversized",
    "unknown_feed",
    "command_refused",
]


class RejectedRecord(Contract):
    kind: Literal["rejected"] = "rejected"
    source: str = Field(max_length=128, description="topic, feed or integrator key id")
    reason: RejectReason
    detail: str = Field(max_length=2000, description="human-readable: the field and the problem")
    field: str | None = Field(default=None, max_length=200)
    received_at: UtcDatetime
    raw: str = Field(max_length=1_100_000, description="payload as received (UTF-8, replacement for bad bytes)")
