"""Actions over HTTP: commands on the bus, audit entries, and the 401/403/422 paths."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from schemas import topics as tn
from schemas.command import OperatorCommand
from schemas.common import Level
from schemas.warning import WarningMessage
from services.common.bus.base import Bus
from services.console.testing import make_warning, publish_all
from tests.integration.console.conftest import RunningConsole

NOW = datetime.now(UTC)
AUTO = make_warning("rainstorm-330302006-1", level="orange", sent_at=NOW, townships=("330302006", "330302023"))


def held(issued_by: str, level: Level = "red") -> WarningMessage:
    return make_warning(
        f"manual-flood-330304103-{issued_by}",
        hazard="flood",
        level=level,
        origin="manual",
        issued_by=issued_by,
        approval="held",
        sent_at=NOW,
        townships=("330304103",),
        hold_deadline_at=NOW + timedelta(minutes=15),
    )


async def commands_on(bus: Bus, n: int, timeout_s: float = 10.0) -> list[tuple[str | None, OperatorCommand]]:
    sub = await bus.subscribe([tn.COMMANDS], group=f"test-reader-{id(bus)}-{n}")
    out: list[tuple[str | None, OperatorCommand]] = []
    deadline = asyncio.get_running_loop().time() + timeout_s
    while len(out) < n and asyncio.get_running_loop().time() < deadline:
        for record in await sub.getmany(timeout_s=0.1):
            out.append((record.key, OperatorCommand.model_validate_json(record.value)))
    await sub.close()
    return out


async def until(predicate: Any, timeout_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def seeded(running: RunningConsole, *messages: Any) -> None:
    await publish_all(running.bus, messages)
    await until(lambda: all(m.warning_id in running.console.model.warnings for m in messages))


async def post(client: httpx.AsyncClient, csrf: str, path: str, body: Any = None) -> httpx.Response:
    return await client.post(path, json=body, headers={"X-CSRF-Token": csrf})


async def test_acknowledge_and_cancel_publish_commands_and_are_audited(running: RunningConsole) -> None:
    await seeded(running, AUTO)
    client, csrf = await running.signed_in("li.na")
    ack = await post(client, csrf, f"/api/warnings/{AUTO.warning_id}/acknowledge", {})
    assert ack.status_code == 202, ack.text
    cancel = await post(
        client, csrf, f"/api/warnings/{AUTO.warning_id}/cancel", {"reason": "river fell below warning level"}
    )
    assert cancel.status_code == 202, cancel.text

    commands = await commands_on(running.bus, 2)
    assert [(key, c.action, c.actor, c.actor_role) for key, c in commands] == [
        ("rainstorm:330302006", "acknowledge", "li.na", "duty_officer"),
        ("rainstorm:330302006", "cancel", "li.na", "duty_officer"),
    ]
    assert commands[1][1].reason == "river fell below warning level"
    assert commands[0][1].message_id == f"{AUTO.warning_id}.v1"
    assert {c.command_id for _, c in commands} == {ack.json()["command_id"], cancel.json()["command_id"]}

    published = [(e["action"], e["outcome"], e["actor"]) for e in running.audit() if e["outcome"] == "published"]
    assert published == [("acknowledge", "published", "li.na"), ("cancel", "published", "li.na")]
    # the console also reads `commands`: the acknowledgement shows in the detail and is audited as applied
    await until(lambda: any(e["action"] == "acknowledge" and e["outcome"] == "applied" for e in running.audit()))
    detail = (await client.get(f"/api/warnings/{AUTO.warning_id}")).json()
    assert [a["actor"] for a in detail["acks"]] == ["li.na"]


async def test_approve_publishes_for_the_held_message(running: RunningConsole) -> None:
    warning = held(issued_by="li.na")
    await seeded(running, warning)
    client, csrf = await running.signed_in("wang.fang")
    asked = datetime.now(UTC)
    queue = (await client.get("/api/approvals")).json()["queue"]
    answered = datetime.now(UTC)
    assert [q["warning_id"] for q in queue] == [warning.warning_id]
    # the countdown is to the hold deadline from the console's clock at the request (the
    # module's NOW was taken at import, maybe long before this test ran)
    assert warning.hold_deadline_at is not None
    latest = (warning.hold_deadline_at - asked).total_seconds()
    earliest = (warning.hold_deadline_at - answered).total_seconds()
    assert earliest - 0.1 <= queue[0]["remaining_s"] <= latest + 0.1 <= 900.1
    response = await post(client, csrf, f"/api/warnings/{warning.warning_id}/approve", {})
    assert response.status_code == 202, response.text
    [(key, command)] = await commands_on(running.bus, 1)
    assert (key, command.action, command.message_id) == ("flood:330304103", "approve", f"{warning.warning_id}.v1")

    approved = warning.model_copy(update={"approval": "approved", "approved_by": "wang.fang"})
    await publish_all(running.bus, [approved])
    await until(lambda: any(e["action"] == "approve" and e["outcome"] == "applied" for e in running.audit()))
    assert (await client.get("/api/approvals")).json()["queue"] == []
    assert (await client.get("/api/townships")).json()["levels"] == {"330304103": "red"}


@pytest.mark.parametrize(
    ("user", "action", "body", "status", "code"),
    [
        pytest.param("zhao.viewer", "approve", {}, 403, "role", id="viewer-cannot-approve"),
        pytest.param("zhao.viewer", "acknowledge", {}, 403, "role", id="viewer-cannot-acknowledge"),
        pytest.param("li.na", "approve", {}, 403, "role", id="duty-officer-cannot-approve"),
        pytest.param("wang.fang", "cancel", {"reason": "x"}, 403, "role", id="approver-cannot-cancel"),
        pytest.param("wang.fang", "approve", {}, 403, "self_approval", id="approver-cannot-self-approve-red"),
        pytest.param("chen.admin", "cancel", {}, 422, "reason_required", id="cancel-needs-reason"),
        pytest.param("chen.admin", "cancel", {"reason": "   "}, 422, "reason_required", id="blank-reason"),
        pytest.param("chen.admin", "reject", {}, 422, "reason_required", id="reject-needs-reason"),
    ],
)
async def test_refused_actions(
    running: RunningConsole, user: str, action: str, body: dict[str, str], status: int, code: str
) -> None:
    warning = held(issued_by="wang.fang")
    await seeded(running, warning)
    client, csrf = await running.signed_in(user)
    response = await post(client, csrf, f"/api/warnings/{warning.warning_id}/{action}", body)
    assert (response.status_code, response.json()["detail"]["error"]) == (status, code)
    assert await commands_on(running.bus, 1, timeout_s=0.3) == []
    denied = [e for e in running.audit() if e["actor"] == user and e["action"] in (action, "read")]
    assert denied[-1]["outcome"] in ("denied", "invalid")


async def test_admin_may_approve_someone_elses_red(running: RunningConsole) -> None:
    warning = held(issued_by="li.na")
    await seeded(running, warning)
    client, csrf = await running.signed_in("chen.admin")
    assert (await post(client, csrf, f"/api/warnings/{warning.warning_id}/approve", {})).status_code == 202


async def test_without_a_session_it_is_401_and_without_csrf_403(running: RunningConsole) -> None:
    await seeded(running, AUTO)
    anonymous = running.client()
    assert (await anonymous.get("/api/snapshot")).status_code == 401
    assert (await anonymous.get("/api/me")).status_code == 401
    token = (await anonymous.get("/api/csrf")).json()["csrf"]
    assert (await post(anonymous, token, f"/api/warnings/{AUTO.warning_id}/acknowledge", {})).status_code == 401

    client, csrf = await running.signed_in("li.na")
    no_header = await client.post(f"/api/warnings/{AUTO.warning_id}/acknowledge", json={})
    assert no_header.status_code == 403
    wrong = await client.post(f"/api/warnings/{AUTO.warning_id}/acknowledge", json={}, headers={"X-CSRF-Token": "x"})
    assert wrong.status_code == 403
    assert (await post(client, csrf, f"/api/warnings/{AUTO.warning_id}/acknowledge", {})).status_code == 202
    assert [e["outcome"] for e in running.audit() if e["action"] == "csrf"] == ["denied", "denied"]


async def test_sessions_expire(running: RunningConsole) -> None:
    client, _ = await running.signed_in("li.na")
    assert (await client.get("/api/me")).status_code == 200
    running.wall.offset_s = 3601
    assert (await client.get("/api/me")).status_code == 401


async def test_bad_passwords_are_audited_and_lock_the_account(start_console: Any) -> None:
    running: RunningConsole = await start_console(login_max_failures=2, login_lockout_s=60)
    client = running.client()
    token = (await client.get("/api/csrf")).json()["csrf"]
    for _ in range(2):
        bad = await client.post(
            "/api/login", json={"username": "li.na", "password": "nope"}, headers={"X-CSRF-Token": token}
        )
        assert bad.status_code == 401
    locked = await client.post(
        "/api/login",
        json={"username": "li.na", "password": "correct horse battery staple"},
        headers={"X-CSRF-Token": token},
    )
    assert locked.status_code == 429
    assert [e["outcome"] for e in running.audit() if e["action"] == "login"] == ["denied", "denied", "denied"]


async def test_audit_page_is_for_approvers_and_admins(running: RunningConsole) -> None:
    officer, _ = await running.signed_in("li.na")
    assert (await officer.get("/api/audit")).status_code == 403
    approver, _ = await running.signed_in("wang.fang")
    entries = (await approver.get("/api/audit")).json()["entries"]
    assert entries[0]["action"] == "login"
    assert {e["actor"] for e in entries} >= {"li.na", "wang.fang"}


async def test_compose_check_and_issue_manual(running: RunningConsole) -> None:
    client, csrf = await running.signed_in("li.na")
    draft = {
        "hazard": "flood",
        "level": "red",
        "township_codes": ["330302006", "330383000"],
        "headline": "瓯江洪水红色预警",
    }
    check = (await post(client, csrf, "/api/compose/check", draft)).json()
    assert check["valid"] is True
    assert check["population"] == 52000 + 382000
    assert {c["channel"] for c in check["channels"]} == {"sms", "broadcast", "app"}
    partial = (await post(client, csrf, "/api/compose/check", {**draft, "headline": "", "township_codes": []})).json()
    assert partial["valid"] is False

    issued = await post(client, csrf, "/api/warnings", draft)
    assert issued.status_code == 202, issued.text
    [(key, command)] = await commands_on(running.bus, 1)
    assert (key, command.action, command.actor) == ("flood:330302006", "issue_manual", "li.na")
    assert command.manual is not None
    assert command.manual.township_codes == ("330302006", "330383000")

    unknown = await post(client, csrf, "/api/warnings", {**draft, "township_codes": ["339999999"]})
    assert unknown.status_code == 422
    viewer, vcsrf = await running.signed_in("zhao.viewer")
    assert (await post(viewer, vcsrf, "/api/warnings", draft)).status_code == 403


async def test_replay_calls_the_injected_starter(running: RunningConsole) -> None:
    viewer, vcsrf = await running.signed_in("zhao.viewer")
    assert (await post(viewer, vcsrf, "/api/replay", {"name": "rainband", "speed": 50})).status_code == 403
    client, csrf = await running.signed_in("li.na")
    assert (await post(client, csrf, "/api/replay", {"name": "nope", "speed": 50})).status_code == 422
    response = await post(client, csrf, "/api/replay", {"name": "rainband", "speed": 200})
    assert response.status_code == 202
    assert running.stub.started == [("rainband", 200.0)]
    await asyncio.wait_for(running.stub.done.wait(), 5)
    await until(lambda: len(running.console.model.warnings) == 3)
    snapshot = (await client.get("/api/snapshot")).json()
    assert {w["hazard"] for w in snapshot["warnings"]} == {"rainstorm", "short_heavy_rain", "geohazard"}
    assert snapshot["townships"]
    assert any(e["action"] == "replay" and e["outcome"] == "ok" for e in running.audit())


async def test_a_refused_command_is_audited_as_refused(running: RunningConsole) -> None:
    await seeded(running, AUTO)
    client, csrf = await running.signed_in("li.na")
    response = await post(client, csrf, f"/api/warnings/{AUTO.warning_id}/cancel", {"reason": "test refusal"})
    [(_, command)] = await commands_on(running.bus, 1)
    from schemas.rejected import RejectedRecord

    refusal = RejectedRecord(
        source="commands:li.na",
        reason="command_refused",
        detail=f"cancel {AUTO.warning_id}: no active warning",
        field="action",
        received_at=NOW,
        raw=command.model_dump_json(),
    )
    await running.bus.publish(tn.OBS_REJECTED, "commands", refusal.model_dump_json().encode())
    await until(lambda: any(e["outcome"] == "refused" for e in running.audit()))
    entry = next(e for e in running.audit() if e["outcome"] == "refused")
    assert entry["command_id"] == response.json()["command_id"]
    rejected = (await client.get("/api/rejected")).json()
    assert rejected["counts"] == {"command_refused": 1}


async def test_a_signed_out_session_cannot_be_replayed(running: RunningConsole) -> None:
    client, csrf = await running.signed_in("li.na")
    stolen = client.cookies.get("ew_session")
    replay = running.client()
    replay.cookies.set("ew_session", stolen or "", domain="127.0.0.1")
    assert (await replay.get("/api/me")).status_code == 200  # the copied cookie works …
    assert (await post(client, csrf, "/api/logout")).status_code == 200
    assert (await replay.get("/api/me")).status_code == 401  # … until its owner signs out
    assert [e["action"] for e in running.audit()][-1] == "logout"
