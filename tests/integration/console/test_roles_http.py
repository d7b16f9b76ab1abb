"""Role checks from the API side, with the rules lifecycle applying the commands.

A viewer cannot approve (or compose); an approver who composed a manual red warning
cannot approve it — the console refuses at once (403 ``self_approval``) and the lifecycle
refuses the same command if it reaches ``commands`` some other way; a second person can.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from schemas import topics as tn
from schemas.command import OperatorCommand
from services.common.bus.processor import run_on_bus
from services.rules.processors import LifecycleProcessor
from tests.integration.console.conftest import RunningConsole
from tests.integration.console.test_actions_http import commands_on, post, until

DRAFT = {
    "hazard": "flood",
    "level": "red",
    "township_codes": ["330304103"],
    "headline": "瓯江洪水红色预警（演练）",
    "description": "upstream gauge above the guaranteed level",
}


@pytest.fixture
async def with_lifecycle(running: RunningConsole) -> AsyncIterator[RunningConsole]:
    stop = asyncio.Event()
    task = asyncio.create_task(run_on_bus(running.bus, LifecycleProcessor(), stop))
    yield running
    stop.set()
    await asyncio.wait_for(task, 10)


async def test_viewer_cannot_approve_and_approver_cannot_approve_own_manual_red(
    with_lifecycle: RunningConsole,
) -> None:
    running = with_lifecycle
    model = running.console.model
    approver, acsrf = await running.signed_in("wang.fang")

    # the approver composes a manual red warning; the lifecycle holds it for a second person
    issued = await post(approver, acsrf, "/api/warnings", DRAFT)
    assert issued.status_code == 202, issued.text
    await until(lambda: bool(model.approval_queue(datetime.now(UTC))), timeout_s=5)
    [item] = (await approver.get("/api/approvals")).json()["queue"]
    assert (item["origin"], item["level"], item["issued_by"]) == ("manual", "red", "wang.fang")
    warning_id = item["warning_id"]
    assert (await approver.get("/api/townships")).json()["levels"] == {}  # held: not out yet

    # a viewer may not approve (nor compose)
    viewer, vcsrf = await running.signed_in("zhao.viewer")
    refused = await post(viewer, vcsrf, f"/api/warnings/{warning_id}/approve", {})
    assert (refused.status_code, refused.json()["detail"]["error"]) == (403, "role")
    assert (await post(viewer, vcsrf, "/api/warnings", DRAFT)).status_code == 403

    # the approver may not approve their own manual red warning
    own = await post(approver, acsrf, f"/api/warnings/{warning_id}/approve", {})
    assert (own.status_code, own.json()["detail"]["error"]) == (403, "self_approval")
    assert [c.action for _, c in await commands_on(running.bus, 2, timeout_s=0.5)] == ["issue_manual"]

    # … and a forged command that bypasses the console is refused by the lifecycle
    forged = OperatorCommand(
        command_id=uuid.uuid4().hex,
        action="approve",
        actor="wang.fang",
        actor_role="approver",
        at=datetime.now(UTC),
        warning_id=warning_id,
        message_id=item["message_id"],
    )
    await running.bus.publish(tn.COMMANDS, "flood:330304103", forged.model_dump_json().encode())
    await until(lambda: model.rejected_counts["command_refused"] == 1, timeout_s=5)
    assert "no self-approval" in model.recent_rejects[0]["detail"]
    assert model.approval_queue(datetime.now(UTC))

    # a second person approves: the warning goes out and colours its township
    admin, xcsrf = await running.signed_in("chen.admin")
    assert (await post(admin, xcsrf, f"/api/warnings/{warning_id}/approve", {})).status_code == 202
    await until(lambda: model.township_levels == {"330304103": "red"}, timeout_s=5)
    assert (await admin.get("/api/approvals")).json()["queue"] == []
    detail = (await admin.get(f"/api/warnings/{warning_id}")).json()
    assert [(m["approval"], m["approved_by"]) for m in detail["history"]] == [
        ("held", None),
        ("approved", "chen.admin"),
    ]

    audit = [(e["actor"], e["action"], e["outcome"]) for e in running.audit()]
    assert ("zhao.viewer", "approve", "denied") in audit
    assert ("wang.fang", "approve", "denied") in audit
    assert ("wang.fang", "issue_manual", "applied") in audit
    assert ("chen.admin", "approve", "applied") in audit
