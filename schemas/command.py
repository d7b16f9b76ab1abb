"""Operator commands: what duty officers do, as events on the ``commands`` topic.

The console writes them; the rules lifecycle applies them (approve a held warning, cancel
one, issue a manual warning) so that every warning, automatic or manual, goes through the
same lifecycle and reference chain. Keyed ``hazard:township`` like ``warnings``.
``command_id`` makes a retried command idempotent.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from schemas.common import Contract, Hazard, Level, TownshipCode, UtcDatetime

Role = Literal["viewer", "duty_officer", "approver", "admin"]
Action = Literal["approve", "reject", "cancel", "acknowledge", "issue_manual"]


class ManualWarning(Contract):
    hazard: Hazard
    level: Level
    township_codes: tuple[TownshipCode, ...] = Field(min_length=1)
    headline: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    valid_for_s: int = Field(default=6 * 3600, ge=600, le=7 * 86400)


class OperatorCommand(Contract):
    kind: Literal["command"] = "command"
    command_id: str = Field(min_length=8, max_length=64)
    action: Action
    actor: str = Field(min_length=1, max_length=64)
    actor_role: Role
    at: UtcDatetime
    warning_id: str | None = Field(default=None, max_length=150)
    message_id: str | None = Field(default=None, max_length=160)
    reason: str = Field(default="", max_length=500)
    manual: ManualWarning | None = None

    @model_validator(mode="after")
    def _fields_for_action(self) -> OperatorCommand:
        if self.action == "issue_manual":
            if self.manual is None:
                msg = "issue_manual needs 'manual'"
                raise ValueError(msg)
        elif self.warning_id is None:
            msg = f"{self.action} needs 'warning_id'"
            raise ValueError(msg)
        if self.action in {"cancel", "reject"} and not self.reason.strip():
            msg = f"{self.action} needs a reason"
            raise ValueError(msg)
        return self
