"""Operator actions: who may do what to which warning, and the command each one becomes.

``decide`` is pure: given the signed-in user, the action and the warning's state in the
read model, it either returns the ``OperatorCommand`` to publish (and its topic key) or
raises ``ActionRefused`` with the HTTP status and a reason the operator can read.

Checks, in order:

1. role (``services.console.auth.PERMISSIONS``)                  → 403 ``role``
2. the warning exists in the read model                          → 404 ``unknown_warning``
3. approve/reject: a message of it is held                        → 409 ``nothing_held``
4. approve: not the approver's own manual red warning (two-person
   rule; applies to admins too — the lifecycle refuses it as well) → 403 ``self_approval``
5. cancel/reject: a non-blank reason                              → 422 ``reason_required``
6. cancel: the warning is active or held                          → 409 ``not_active``

The lifecycle re-checks role and two-person rule when it applies the command: the console
check gives the officer an immediate answer, the lifecycle's is the one that counts.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from schemas.command import Action, ManualWarning, OperatorCommand
from services.console.auth import User
from services.console.readmodel import WarningState

RefusalCode = Literal["role", "unknown_warning", "nothing_held", "self_approval", "reason_required", "not_active"]


class ActionRefused(Exception):  # noqa: N818  (a refusal, reported to the operator, not a fault)
    def __init__(self, status: int, code: RefusalCode, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Decision:
    command: OperatorCommand
    key: str


def new_command_id() -> str:
    return uuid.uuid4().hex


def decide(
    user: User,
    action: Action,
    now: datetime,
    *,
    warning: WarningState | None = None,
    warning_id: str | None = None,
    reason: str = "",
    manual: ManualWarning | None = None,
    command_id: str | None = None,
) -> Decision:
    if not user.can(action):
        raise ActionRefused(403, "role", f"role {user.role} may not {action}")
    command_id = command_id or new_command_id()
    if action == "issue_manual":
        if manual is None:
            raise ActionRefused(422, "reason_required", "issue_manual needs the warning to issue")
        command = OperatorCommand(
            command_id=command_id,
            action=action,
            actor=user.username,
            actor_role=user.role,
            at=now,
            manual=manual,
            reason=reason,
        )
        return Decision(command, f"{manual.hazard}:{manual.township_codes[0]}")
    if warning is None or warning.current is None:
        raise ActionRefused(404, "unknown_warning", f"no warning {warning_id or ''} in the console's view")
    current = warning.current
    message_id: str | None = (warning.effective or current).message_id
    if action in ("approve", "reject"):
        held = warning.held
        if held is None:
            raise ActionRefused(409, "nothing_held", f"no message of {warning.warning_id} is waiting for approval")
        message_id = held.message_id
        if action == "approve" and held.origin == "manual" and held.level == "red" and held.issued_by == user.username:
            raise ActionRefused(403, "self_approval", "a manual red warning needs a second person: no self-approval")
    if action in ("cancel", "reject") and not reason.strip():
        raise ActionRefused(422, "reason_required", f"{action} needs a reason")
    if action == "cancel":
        message_id = None
        if not (warning.is_active(now) or warning.held is not None):
            raise ActionRefused(409, "not_active", f"{warning.warning_id} is not active")
    command = OperatorCommand(
        command_id=command_id,
        action=action,
        actor=user.username,
        actor_role=user.role,
        at=now,
        warning_id=warning.warning_id,
        message_id=message_id,
        reason=reason.strip(),
    )
    return Decision(command, current.key)
