"""Warning messages: the versioned, CAP-shaped output of the lifecycle.

A *warning* is one episode of one hazard over an area (``warning_id``); each change to it
is a new *message* (``message_id`` = ``<warning_id>.v<version>``) of type Alert, Update
or Cancel, and every Update/Cancel lists all earlier messages of the warning in
``references``, as CAP 1.2 requires. Ids are deterministic functions of the evidence, so a
replay or a reprocessed record yields the same id and consumers drop the repeat.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from schemas.assessment import Evidence
from schemas.common import Contract, Hazard, Level, TownshipCode, UtcDatetime

MsgType = Literal["Alert", "Update", "Cancel"]
Certainty = Literal["Observed", "Likely", "Possible", "Unlikely", "Unknown"]
"""CAP 1.2 ``certainty``. A rules warning takes the strongest certainty among the sources at
its level; a message without the field (older payloads) reads as ``Observed``."""
CERTAINTY_RANK: dict[str, int] = {"Observed": 4, "Likely": 3, "Possible": 2, "Unlikely": 1, "Unknown": 0}
"""Strength of a certainty: higher is stronger."""
Approval = Literal["auto", "held", "approved", "released"]
"""auto: no approval needed; held: waiting for an approver; approved: an approver released
it; released: the approval deadline passed and the policy released it."""


class MessageRef(Contract):
    """An earlier message of the same warning, as CAP ``references`` needs it."""

    message_id: str = Field(max_length=160)
    sent_at: UtcDatetime


class WarningMessage(Contract):
    kind: Literal["warning"] = "warning"
    message_id: str = Field(max_length=160)
    warning_id: str = Field(max_length=150)
    version: int = Field(ge=1)
    msg_type: MsgType
    status: Literal["Actual", "Exercise", "System", "Test", "Draft"] = "Actual"
    hazard: Hazard
    level: Level
    township_codes: tuple[TownshipCode, ...] = Field(min_length=1)
    sent_at: UtcDatetime
    onset_at: UtcDatetime = Field(description="predicted onset (= sent_at when already observed)")
    certainty: Certainty = "Observed"
    expires_at: UtcDatetime
    references: tuple[MessageRef, ...] = ()
    headline: str = Field(max_length=200)
    reason: str = Field(default="", max_length=500)
    rule_id: str = Field(default="", max_length=64)
    evidence: tuple[Evidence, ...] = ()
    approval: Approval = "auto"
    approved_by: str | None = Field(default=None, max_length=64)
    origin: Literal["rules", "manual"] = "rules"
    issued_by: str | None = Field(default=None, max_length=64, description="actor of a manual warning")
    hold_deadline_at: UtcDatetime | None = Field(default=None, description="for held messages")

    @property
    def disseminate(self) -> bool:
        """Whether channels may send it: held messages wait for an approver."""
        return self.approval != "held"

    @property
    def state_key(self) -> str:
        """Identity of this message *and* its approval state (consumers dedup on it)."""
        return f"{self.message_id}|{self.approval}"

    sender: str = Field(default="earlywarn@wenzhou", max_length=120)

    @model_validator(mode="after")
    def _chain_consistent(self) -> WarningMessage:
        if self.message_id != f"{self.warning_id}.v{self.version}":
            msg = "message_id must be '<warning_id>.v<version>'"
            raise ValueError(msg)
        if self.msg_type == "Alert" and (self.version != 1 or self.references):
            msg = "an Alert is version 1 and references nothing"
            raise ValueError(msg)
        if self.msg_type != "Alert":
            expected = tuple(f"{self.warning_id}.v{v}" for v in range(1, self.version))
            if tuple(ref.message_id for ref in self.references) != expected:
                msg = f"{self.msg_type} v{self.version} must reference every earlier message"
                raise ValueError(msg)
        if self.expires_at <= self.onset_at:
            msg = "expires_at must be after onset_at"
            raise ValueError(msg)
        return self

    @property
    def key(self) -> str:
        """Topic key ``hazard:township`` (first township for multi-area manual warnings)."""
        return f"{self.hazard}:{self.township_codes[0]}"
