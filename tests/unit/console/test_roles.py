"""The role matrix and the two-person rule (``services.console.actions.decide``)."""

from __future__ import annotations

from datetime import timedelta
from typing import get_args

import pytest

from schemas.command import Action, ManualWarning, Role
from schemas.common import Level
from services.console.actions import ActionRefused, Decision, decide
from services.console.auth import PERMISSIONS, User
from services.console.readmodel import ReadModel, WarningState
from services.console.testing import T0, make_warning

NOW = T0 + timedelta(minutes=1)
MANUAL = ManualWarning(hazard="flood", level="red", township_codes=("330302006",), headline="洪水红色预警")


def user(role: Role, name: str | None = None) -> User:
    return User(name or f"{role}-user", role, name or role, "scrypt$x")


def state_with(*, held_by: str | None = None, level: Level = "red", active: bool = True) -> WarningState:
    model = ReadModel()
    wid = "manual-flood-330302006-abcdef123456"
    if active:
        model.fold_warning(make_warning(wid, hazard="flood", level="yellow", origin="manual", issued_by="li.na"), T0)
    if held_by is not None:
        version = 2 if active else 1
        model.fold_warning(
            make_warning(
                wid,
                version=version,
                hazard="flood",
                level=level,
                origin="manual",
                issued_by=held_by,
                approval="held",
                hold_deadline_at=T0 + timedelta(minutes=15),
                previous_sent=[T0] if active else None,
            ),
            T0,
        )
    return model.warnings[wid]


EXPECTED: dict[Role, set[str]] = {
    "viewer": set(),
    "duty_officer": {"acknowledge", "cancel", "issue_manual"},
    "approver": {"issue_manual", "approve", "reject"},
    "admin": {"acknowledge", "cancel", "issue_manual", "approve", "reject"},
}


@pytest.mark.parametrize("role", get_args(Role))
@pytest.mark.parametrize("action", get_args(Action))
def test_role_matrix(role: Role, action: Action) -> None:
    warning = state_with(held_by="someone-else")

    def run() -> Decision:
        return decide(user(role), action, NOW, warning=warning, reason="checked on site", manual=MANUAL)

    if action in EXPECTED[role]:
        decision = run()
        assert decision.command.action == action
        assert decision.command.actor_role == role
    else:
        with pytest.raises(ActionRefused) as refused:
            run()
        assert (refused.value.status, refused.value.code) == (403, "role")


def test_permission_table_matches_the_brief() -> None:
    assert PERMISSIONS["viewer"] == {"read"}
    assert "approve" not in PERMISSIONS["duty_officer"]
    assert "cancel" not in PERMISSIONS["approver"]
    assert "issue_manual" in PERMISSIONS["approver"]  # so "their own manual red warning" can exist
    assert "audit" in PERMISSIONS["approver"]
    assert "audit" not in PERMISSIONS["duty_officer"]


@pytest.mark.parametrize("role", ["approver", "admin"])
def test_nobody_approves_their_own_manual_red_warning(role: Role) -> None:
    warning = state_with(held_by="wang.fang", level="red")
    with pytest.raises(ActionRefused) as refused:
        decide(user(role, "wang.fang"), "approve", NOW, warning=warning)
    assert (refused.value.status, refused.value.code) == (403, "self_approval")


def test_an_approver_may_approve_someone_elses_red_and_their_own_orange() -> None:
    assert decide(user("approver", "wang.fang"), "approve", NOW, warning=state_with(held_by="li.na")).command
    own_orange = state_with(held_by="wang.fang", level="orange")
    assert decide(user("approver", "wang.fang"), "approve", NOW, warning=own_orange).command


def test_approve_names_the_held_message_and_keys_like_the_warning() -> None:
    warning = state_with(held_by="li.na")
    decision = decide(user("approver", "wang.fang"), "approve", NOW, warning=warning)
    assert decision.command.message_id == f"{warning.warning_id}.v2"
    assert decision.key == "flood:330302006"


def test_issue_manual_is_keyed_by_its_first_township() -> None:
    decision = decide(user("duty_officer", "li.na"), "issue_manual", NOW, manual=MANUAL)
    assert decision.key == "flood:330302006"
    assert decision.command.manual == MANUAL


@pytest.mark.parametrize("action", ["cancel", "reject"])
@pytest.mark.parametrize("reason", ["", "   "])
def test_cancel_and_reject_need_a_reason(action: Action, reason: str) -> None:
    with pytest.raises(ActionRefused) as refused:
        decide(user("admin"), action, NOW, warning=state_with(held_by="li.na"), reason=reason)
    assert (refused.value.status, refused.value.code) == (422, "reason_required")


def test_approve_without_a_held_message_is_a_conflict() -> None:
    with pytest.raises(ActionRefused) as refused:
        decide(user("approver"), "approve", NOW, warning=state_with())
    assert (refused.value.status, refused.value.code) == (409, "nothing_held")


def test_an_unknown_warning_is_404() -> None:
    with pytest.raises(ActionRefused) as refused:
        decide(user("duty_officer"), "acknowledge", NOW, warning=None, warning_id="nope")
    assert refused.value.status == 404


def test_cancelling_an_ended_warning_is_a_conflict() -> None:
    warning = state_with()
    with pytest.raises(ActionRefused) as refused:
        decide(user("duty_officer"), "cancel", T0 + timedelta(hours=7), warning=warning, reason="late")
    assert refused.value.code == "not_active"
