"""The walking skeleton end to end on the memory runtime."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from schemas import topics
from schemas.rejected import RejectedRecord
from schemas.warning import WarningMessage
from services.common.bus.base import Emit
from services.common.bus.memory import MemoryBus
from services.common.metrics import Metrics
from services.ingest.gate import IngestGate, static_lookup
from services.ingest.simulate.rainband import RainbandScenario
from services.pipeline import IngestCounts, MemoryPipeline, publish_observations
from services.rules.processors import rules_processors
from tests.helpers import memory_run, read_until_idle, warning_signature


async def test_storm_issues_escalates_and_clears_warnings() -> None:
    warnings, counts = await memory_run(RainbandScenario(hours=24))
    assert counts.received == counts.accepted > 0
    kinds = {(m.msg_type, m.level) for m in warnings}
    assert ("Alert", "yellow") in kinds or ("Alert", "blue") in kinds
    assert any(m.msg_type == "Update" and m.level in {"orange", "red"} for m in warnings)
    assert any(m.msg_type == "Cancel" for m in warnings)
    assert len({m.message_id for m in warnings}) == len(warnings)


async def test_replay_is_deterministic() -> None:
    first, _ = await memory_run(RainbandScenario(seed=11, hours=8))
    second, _ = await memory_run(RainbandScenario(seed=11, hours=8))
    assert warning_signature(first) == warning_signature(second)
    assert first


async def test_quiet_weather_issues_nothing() -> None:
    warnings, counts = await memory_run(RainbandScenario(peak_mm_h=2.0, hours=6))
    assert counts.accepted > 0
    assert warnings == []


async def test_malformed_record_on_topic_is_rejected_and_stream_continues() -> None:
    received: list[WarningMessage] = []
    pipeline = MemoryPipeline(rules_processors(Metrics()))
    await pipeline.start(received.append)
    bad = [b"{not json", json.dumps({"kind": "rain", "station_id": "G1"}).encode()]
    good = [
        json.dumps(
            {
                "kind": "rain",
                "station_id": "G1",
                "township_code": "330302006",
                "observed_at": f"2019-08-09T12:{5 * i:02d}:00Z",
                "rain_mm": 10.0,
                "interval_s": 300,
            }
        ).encode()
        for i in range(6)
    ]
    await pipeline.bus.publish_many([Emit(topics.OBS_RAIN, "G1", v) for v in [bad[0], *good[:3], bad[1], *good[3:]]])
    await pipeline.drain()
    rejected = await read_until_idle(pipeline.bus, [topics.OBS_REJECTED], "t-rej", idle_s=0.2, max_wait_s=3)
    reasons = [RejectedRecord.model_validate_json(r.value) for r in rejected]
    assert [r.reason for r in reasons] == ["malformed_json", "schema"]
    assert reasons[1].field is not None
    assert "rain_mm" in reasons[1].detail or "observed_at" in reasons[1].detail
    # the good records after the bad ones were processed: 6 x 10 mm = 60 mm in 30 minutes
    assert [m.level for m in received if m.hazard == "rainstorm"] == ["orange"]
    assert {m.hazard for m in received} == {"rainstorm", "short_heavy_rain"}
    await pipeline.close()


async def test_accepted_plus_rejected_equals_received() -> None:
    bus = MemoryBus()
    gate = IngestGate(static_lookup({"G1": (("rain",), "330302006")}), lambda: datetime(2019, 8, 9, 13, tzinfo=UTC))
    payloads = [
        json.dumps(
            {"kind": "rain", "station_id": sid, "observed_at": f"2019-08-09T12:{m:02d}:00Z", "rain_mm": mm}
        ).encode()
        for sid, m, mm in [("G1", 1, 1.0), ("G1", 2, -3.0), ("NOPE", 3, 1.0), ("G1", 4, 2.0), ("G1", 4, 2.0)]
    ] + [b"\xff\xfe garbage"]
    counts = IngestCounts()
    await publish_observations(bus, gate, payloads, "itest", counts)
    accepted = await read_until_idle(bus, [topics.OBS_RAIN], "a", idle_s=0.1, max_wait_s=2)
    rejected = await read_until_idle(bus, [topics.OBS_REJECTED], "r", idle_s=0.1, max_wait_s=2)
    assert counts.received == len(payloads) == len(accepted) + len(rejected)
    assert (counts.accepted, counts.rejected) == (2, 4)
    assert counts.by_reason == {"implausible_value": 1, "unknown_station": 1, "duplicate": 1, "malformed_json": 1}


async def test_operator_commands_flow_through_the_lifecycle() -> None:
    from schemas.command import ManualWarning, OperatorCommand

    received: list[WarningMessage] = []
    pipeline = MemoryPipeline(rules_processors(Metrics()))
    await pipeline.start(received.append)
    at = datetime(2019, 8, 9, 12, 0, tzinfo=UTC)
    issue = OperatorCommand(
        command_id="c-issue-0001",
        action="issue_manual",
        actor="wang",
        actor_role="duty_officer",
        at=at,
        manual=ManualWarning(
            hazard="geohazard", level="red", township_codes=("330328100",), headline="山体滑坡红色预警"
        ),
    )
    key = "geohazard:330328100"
    await pipeline.bus.publish(topics.COMMANDS, key, issue.model_dump_json().encode())
    await pipeline.drain()
    (held,) = received
    self_approve = issue.model_copy(
        update={
            "command_id": "c-appr-0001",
            "action": "approve",
            "actor_role": "approver",
            "warning_id": held.warning_id,
            "manual": None,
        }
    )
    approve = self_approve.model_copy(update={"command_id": "c-appr-0002", "actor": "li"})
    await pipeline.bus.publish_many(
        [Emit(topics.COMMANDS, key, c.model_dump_json().encode()) for c in (self_approve, approve)]
    )
    await pipeline.drain()
    assert [(m.message_id, m.approval) for m in received] == [
        (held.message_id, "held"),
        (held.message_id, "approved"),
    ]
    refused = await read_until_idle(pipeline.bus, [topics.OBS_REJECTED], "rej", idle_s=0.2, max_wait_s=2)
    (record,) = [RejectedRecord.model_validate_json(r.value) for r in refused]
    assert record.reason == "command_refused"
    assert "self-approval" in record.detail
    await pipeline.close()
