"""Approval policy and operator commands in the lifecycle."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from schemas.command import ManualWarning, OperatorCommand, Role
from schemas.warning import WarningMessage
from services.rules.lifecycle import (
    CommandRefusedError,
    HoldRule,
    LifecyclePolicy,
    apply_command,
    fold,
    new_state,
)
from tests.unit.test_lifecycle import assessment

T0 = datetime(2020, 8, 3, 12, 0, tzinfo=UTC)
POLICY = LifecyclePolicy(allowed_lateness_s=86_400)


def command(action: str, actor: str = "li", role: Role = "approver", minute: int = 0, **kw: Any) -> OperatorCommand:
    return OperatorCommand(
        command_id=f"cmd-{action}-{actor}-{minute}-{kw.get('message_id', '')}",
        action=action,
        actor=actor,
        actor_role=role,
        at=T0 + timedelta(minutes=minute),
        **kw,
    )


def manual_red(actor: str = "wang") -> OperatorCommand:
    return command(
        "issue_manual",
        actor=actor,
        role="duty_officer",
        manual=ManualWarning(
            hazard="rainstorm", level="red", township_codes=("330302006", "330302023"), headline="红色"
        ),
    )


def test_manual_red_is_held_then_approved_by_someone_else() -> None:
    state = new_state()
    (held,) = apply_command(state, manual_red(), POLICY)
    assert (held.approval, held.origin, held.issued_by) == ("held", "manual", "wang")
    assert not held.disseminate
    assert held.township_codes == ("330302006", "330302023")
    (approved,) = apply_command(state, command("approve", actor="li", minute=2, warning_id=held.warning_id), POLICY)
    assert approved.message_id == held.message_id
    assert (approved.approval, approved.approved_by) == ("approved", "li")
    assert approved.disseminate
    assert state["held"] == []


def test_no_self_approval_of_own_manual_red() -> None:
    state = new_state()
    (held,) = apply_command(state, manual_red(actor="wang"), POLICY)
    with pytest.raises(CommandRefusedError, match="no self-approval"):
        apply_command(state, command("approve", actor="wang", minute=1, warning_id=held.warning_id), POLICY)


@pytest.mark.parametrize("role", ["viewer", "duty_officer"])
def test_only_approvers_approve(role: Role) -> None:
    state = new_state()
    (held,) = apply_command(state, manual_red(), POLICY)
    with pytest.raises(CommandRefusedError, match="may not approve"):
        apply_command(state, command("approve", actor="zhao", role=role, minute=1, warning_id=held.warning_id), POLICY)


def test_hold_deadline_releases_on_event_time() -> None:
    policy = LifecyclePolicy(allowed_lateness_s=86_400, holds=(HoldRule(level="orange", deadline_s=600),))
    state = new_state()
    out: list[WarningMessage] = []
    for i, lvl in enumerate(["none", "orange", "orange"]):
        out.extend(fold(state, assessment("G1", 5 * i, lvl), policy, frozenset({"G1"}))[0])
    # the Alert at minute 5 is held with a 10-minute deadline; event time reaches it at 15
    assert [(m.approval, m.sent_at) for m in out] == [("held", T0 + timedelta(minutes=5))]
    assert out[0].hold_deadline_at == T0 + timedelta(minutes=15)
    out2: list[WarningMessage] = []
    for i in range(3, 5):
        out2.extend(fold(state, assessment("G1", 5 * i, "orange"), policy, frozenset({"G1"}))[0])
    assert [m.approval for m in out2] == ["released"]
    assert out2[0].message_id == out[0].message_id


def test_reject_suppresses_until_the_level_rises() -> None:
    policy = LifecyclePolicy(allowed_lateness_s=86_400, holds=(HoldRule(level="yellow", deadline_s=3600),))
    state = new_state()
    levels = ["none", "yellow", "yellow"]
    msgs = [
        m
        for i, lvl in enumerate(levels)
        for m in fold(state, assessment("G1", 5 * i, lvl), policy, frozenset({"G1"}))[0]
    ]
    (held,) = msgs
    apply_command(state, command("reject", minute=11, warning_id=held.warning_id, reason="gauge under repair"), policy)
    later = [
        m
        for i, lvl in enumerate(["yellow", "yellow", "orange", "orange"], start=3)
        for m in fold(state, assessment("G1", 5 * i, lvl), policy, frozenset({"G1"}))[0]
    ]
    assert [(m.msg_type, m.level) for m in later] == [("Alert", "orange")]
    assert later[0].warning_id != held.warning_id


def test_cancel_references_every_earlier_message() -> None:
    state = new_state()
    out = [
        m
        for i, lvl in enumerate(["yellow", "red", "red"])
        for m in fold(state, assessment("G1", 10 * i, lvl), POLICY, frozenset({"G1"}))[0]
    ]
    warning_id = out[0].warning_id
    (cancel,) = apply_command(
        state, command("cancel", role="duty_officer", minute=30, warning_id=warning_id, reason="false echo"), POLICY
    )
    assert cancel.msg_type == "Cancel"
    assert [r.message_id for r in cancel.references] == [m.message_id for m in out]
    assert "false echo" in cancel.reason
    with pytest.raises(CommandRefusedError, match="no active warning"):
        apply_command(
            state, command("cancel", role="duty_officer", minute=31, warning_id=warning_id, reason="again"), POLICY
        )


def test_repeated_command_is_idempotent() -> None:
    state = new_state()
    issue = manual_red()
    first = apply_command(state, issue, POLICY)
    again = apply_command(state, issue, POLICY)
    assert again == first
    assert len(state["manual"]) == 1
