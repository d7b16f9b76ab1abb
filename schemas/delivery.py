"""Delivery jobs and receipts: the ledger's vocabulary, keyed by warning id on topics.

A delivery is identified by ``(message_id, channel, target_id)``; every state change of it
is a receipt. "Submitted" is the provider's acceptance, not delivery.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from schemas.common import Contract, TownshipCode, UtcDatetime

DeliveryState = Literal["pending", "submitted", "delivered", "failed", "acknowledged", "skipped"]


class DeliveryJob(Contract):
    kind: Literal["delivery_job"] = "delivery_job"
    message_id: str = Field(max_length=160)
    warning_id: str = Field(max_length=150)
    channel: str = Field(max_length=32)
    target_id: str = Field(max_length=128)
    township_code: TownshipCode
    population: int = Field(default=0, ge=0)
    created_at: UtcDatetime

    @property
    def delivery_key(self) -> str:
        return f"{self.message_id}|{self.channel}|{self.target_id}"


class DeliveryReceipt(Contract):
    kind: Literal["delivery_receipt"] = "delivery_receipt"
    message_id: str = Field(max_length=160)
    warning_id: str = Field(max_length=150)
    channel: str = Field(max_length=32)
    target_id: str = Field(max_length=128)
    state: DeliveryState
    at: UtcDatetime
    provider: str = Field(default="", max_length=64)
    reason: str = Field(default="", max_length=300)
    attempt: int = Field(default=1, ge=1)
