"""The read model: folding warnings, coverage, receipts, commands and rejects.

Timeline of the basic case (one township, one warning)::

    t   0        10 min        20 min
        Alert    Update ↑      Cancel
        yellow   orange        —          township colour: yellow → orange → none
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.command import OperatorCommand
from schemas.common import Level
from schemas.coverage import CoverageReport, TownshipCoverage
from schemas.rejected import RejectedRecord
from schemas.warning import WarningMessage
from services.console.readmodel import ReadModel, StreamEvent
from services.console.testing import T0, make_warning

W = "rainstorm-330302006-1717228800"
TOWN = "330302006"


def events_of(changes_events: list[StreamEvent], kind: str) -> list[dict[str, object]]:
    return [e.data for e in changes_events if e.type == kind]


def command(action: str, actor: str = "li.na", role: str = "duty_officer", **extra: object) -> OperatorCommand:
    return OperatorCommand.model_validate(
        {
            "command_id": f"cmd-{action}-{actor}-0001",
            "action": action,
            "actor": actor,
            "actor_role": role,
            "at": T0 + timedelta(minutes=1),
            **extra,
        }
    )


def test_alert_update_cancel_colours_then_clears_the_township() -> None:
    model = ReadModel()
    alert = make_warning(W, level="yellow", sent_at=T0)
    update = make_warning(W, version=2, level="orange", sent_at=T0 + timedelta(minutes=10), previous_sent=[T0])
    cancel = make_warning(
        W,
        version=3,
        msg_type="Cancel",
        level="orange",
        sent_at=T0 + timedelta(minutes=20),
        previous_sent=[T0, T0 + timedelta(minutes=10)],
    )

    first = model.fold_warning(alert, T0)
    assert events_of(first.events, "townships") == [{"levels": {TOWN: "yellow"}}]
    assert model.township_levels == {TOWN: "yellow"}

    second = model.fold_warning(update, T0 + timedelta(minutes=10))
    assert events_of(second.events, "townships") == [{"levels": {TOWN: "orange"}}]

    third = model.fold_warning(cancel, T0 + timedelta(minutes=20))
    assert events_of(third.events, "townships") == [{"levels": {TOWN: "none"}}]
    assert model.township_levels == {}
    summary = model.list_warnings(T0 + timedelta(minutes=20))[0]
    assert summary["active"] is False
    assert summary["msg_type"] == "Cancel"
    detail = model.detail(W, T0 + timedelta(minutes=20))
    assert detail is not None
    assert [m["msg_type"] for m in detail["history"]] == ["Alert", "Update", "Cancel"]


def test_a_redelivered_message_changes_nothing() -> None:
    model = ReadModel()
    alert = make_warning(W)
    assert model.fold_warning(alert, T0).events
    assert model.fold_warning(alert, T0).events == []


def test_an_out_of_order_older_version_does_not_replace_the_newer() -> None:
    model = ReadModel()
    update = make_warning(W, version=2, level="red", sent_at=T0 + timedelta(minutes=5), previous_sent=[T0])
    model.fold_warning(update, T0 + timedelta(minutes=5))
    model.fold_warning(make_warning(W, level="yellow", sent_at=T0), T0 + timedelta(minutes=5))
    assert model.township_levels == {TOWN: "red"}
    assert [m["version"] for m in model.detail(W, T0)["history"]] == [1, 2]  # type: ignore[index]


def test_highest_active_level_wins_and_falls_back_when_it_ends() -> None:
    model = ReadModel()
    model.fold_warning(make_warning("rainstorm-a", level="yellow"), T0)
    model.fold_warning(make_warning("geohazard-b", hazard="geohazard", level="red"), T0)
    assert model.township_levels == {TOWN: "red"}
    cancel = make_warning(
        "geohazard-b",
        hazard="geohazard",
        version=2,
        msg_type="Cancel",
        level="red",
        sent_at=T0 + timedelta(minutes=1),
        previous_sent=[T0],
    )
    changes = model.fold_warning(cancel, T0 + timedelta(minutes=1))
    assert events_of(changes.events, "townships") == [{"levels": {TOWN: "yellow"}}]


def test_expiry_on_tick_clears_the_colour() -> None:
    model = ReadModel()
    model.fold_warning(make_warning(W, valid_for=timedelta(hours=1)), T0)
    assert model.tick(T0 + timedelta(minutes=59)).events == []
    changes = model.tick(T0 + timedelta(hours=1))
    assert events_of(changes.events, "townships") == [{"levels": {TOWN: "none"}}]
    assert [e["warning"]["active"] for e in events_of(changes.events, "warning")] == [False]  # type: ignore[index]


def test_ended_warnings_are_pruned_after_keep_inactive() -> None:
    model = ReadModel(keep_inactive_s=3600)
    model.fold_warning(make_warning(W, valid_for=timedelta(minutes=30)), T0)
    model.tick(T0 + timedelta(minutes=59))
    assert W in model.warnings
    model.tick(T0 + timedelta(minutes=61))
    assert W not in model.warnings


def held_manual(level: Level = "red", issued_by: str = "li.na", deadline_min: int = 15) -> WarningMessage:
    return make_warning(
        "manual-flood-330302006-abc",
        hazard="flood",
        level=level,
        origin="manual",
        issued_by=issued_by,
        approval="held",
        hold_deadline_at=T0 + timedelta(minutes=deadline_min),
    )


def test_a_held_warning_waits_in_the_queue_with_a_countdown_and_no_colour() -> None:
    model = ReadModel()
    held = held_manual()
    changes = model.fold_warning(held, T0)
    assert model.township_levels == {}
    queue_events = events_of(changes.events, "queue")
    assert len(queue_events) == 1
    assert queue_events[0]["queue"][0]["remaining_s"] == 900.0  # type: ignore[index]
    assert model.approval_queue(T0 + timedelta(minutes=14))[0]["remaining_s"] == 60.0
    assert model.approval_queue(T0 + timedelta(minutes=16))[0]["remaining_s"] == -60.0  # overdue

    approved = held.model_copy(update={"approval": "approved", "approved_by": "wang.fang"})
    after = model.fold_warning(approved, T0 + timedelta(minutes=2))
    assert model.approval_queue(T0) == []
    assert events_of(after.events, "queue") == [{"queue": [], "now": "2024-06-01T08:02:00Z"}]
    assert model.township_levels == {TOWN: "red"}


def test_queue_orders_by_deadline() -> None:
    model = ReadModel()
    for i, minutes in enumerate((20, 5, 10)):
        model.fold_warning(
            make_warning(
                f"manual-flood-x{i}",
                hazard="flood",
                level="orange",
                origin="manual",
                issued_by="li.na",
                approval="held",
                hold_deadline_at=T0 + timedelta(minutes=minutes),
            ),
            T0,
        )
    assert [q["warning_id"] for q in model.approval_queue(T0)] == [
        "manual-flood-x1",
        "manual-flood-x2",
        "manual-flood-x0",
    ]


def test_a_reject_command_takes_the_warning_out_of_the_queue() -> None:
    model = ReadModel()
    held = held_manual()
    model.fold_warning(held, T0)
    reject = command(
        "reject",
        actor="wang.fang",
        role="approver",
        warning_id=held.warning_id,
        message_id=held.message_id,
        reason="not confirmed",
    )
    changes = model.fold_command(reject, T0)
    assert model.approval_queue(T0) == []
    assert events_of(changes.events, "queue")[0]["queue"] == []


def test_acknowledgements_are_recorded_once_per_actor_and_message() -> None:
    model = ReadModel()
    model.fold_warning(make_warning(W), T0)
    ack = command("acknowledge", warning_id=W, message_id=f"{W}.v1")
    assert events_of(model.fold_command(ack, T0).events, "ack")[0]["acks"] == 1
    again = ack.model_copy(update={"command_id": "cmd-ack-repeat-02"})
    assert events_of(model.fold_command(again, T0).events, "ack") == []
    assert model.detail(W, T0)["acks"][0]["actor"] == "li.na"  # type: ignore[index]


def test_newest_first_by_sent_time_then_arrival() -> None:
    model = ReadModel()
    model.fold_warning(make_warning("rainstorm-old", sent_at=T0), T0)
    model.fold_warning(make_warning("rainstorm-new", sent_at=T0 + timedelta(minutes=5)), T0)
    model.fold_warning(make_warning("rainstorm-same-a", sent_at=T0 + timedelta(minutes=1)), T0)
    model.fold_warning(make_warning("rainstorm-same-b", sent_at=T0 + timedelta(minutes=1)), T0)
    ids = [w["warning_id"] for w in model.list_warnings(T0 + timedelta(minutes=5))]
    assert ids == ["rainstorm-new", "rainstorm-same-b", "rainstorm-same-a", "rainstorm-old"]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        pytest.param({"hazards": ["geohazard"]}, ["geohazard-b"], id="hazard"),
        pytest.param({"levels": ["yellow"]}, ["rainstorm-a"], id="level"),
        pytest.param({"counties": ["330304"]}, ["geohazard-b"], id="county"),
        pytest.param({"township": "330302006"}, ["rainstorm-a"], id="township"),
        pytest.param({"active_only": True}, ["geohazard-b", "rainstorm-a"], id="active"),
        pytest.param({}, ["flood-c", "geohazard-b", "rainstorm-a"], id="all"),
    ],
)
def test_list_filters(filters: dict[str, Any], expected: list[str]) -> None:
    model = ReadModel()
    model.fold_warning(make_warning("rainstorm-a", level="yellow", townships=("330302006",), sent_at=T0), T0)
    model.fold_warning(
        make_warning(
            "geohazard-b", hazard="geohazard", level="red", townships=("330304103",), sent_at=T0 + timedelta(minutes=1)
        ),
        T0,
    )
    model.fold_warning(
        make_warning(
            "flood-c",
            hazard="flood",
            level="blue",
            townships=("330383000",),
            sent_at=T0 + timedelta(minutes=2),
            valid_for=timedelta(minutes=30),
        ),
        T0,
    )
    now = T0 + timedelta(hours=1)
    assert [w["warning_id"] for w in model.list_warnings(now, **filters)] == expected


def coverage(at_min: int, reached: int) -> CoverageReport:
    return CoverageReport(
        warning_id=W,
        message_id=f"{W}.v1",
        at=T0 + timedelta(minutes=at_min),
        townships=(
            TownshipCoverage(
                township_code=TOWN,
                channel="sms",
                targeted_population=1000,
                reached_population=reached,
                targets=10,
                delivered=reached // 100,
                failed=1,
            ),
            TownshipCoverage(
                township_code="330302023",
                channel="sms",
                targeted_population=500,
                reached_population=0,
                targets=5,
                delivered=0,
                failed=0,
            ),
            TownshipCoverage(
                township_code=TOWN,
                channel="broadcast",
                targeted_population=1000,
                reached_population=950,
                targets=3,
                delivered=3,
                failed=0,
            ),
        ),
        unreached_townships=("330302023",),
    )


def test_coverage_per_channel_and_unreached_townships_keep_the_newest_report() -> None:
    model = ReadModel()
    model.fold_warning(make_warning(W, townships=(TOWN, "330302023")), T0)
    model.fold_coverage(coverage(2, 800))
    assert model.fold_coverage(coverage(1, 100)).events == []  # older report ignored
    detail = model.detail(W, T0)
    assert detail is not None
    sms = next(c for c in detail["coverage"]["channels"] if c["channel"] == "sms")
    assert (sms["targeted_population"], sms["reached_population"], sms["reached_share"]) == (1500, 800, 0.5333)
    assert detail["coverage"]["unreached_townships"] == ["330302023"]


def test_delivery_news_that_overtakes_its_warning_is_kept_until_the_warning_arrives() -> None:
    # coverage and receipts are read by another consumer than warnings (after a restart it may run ahead)
    model = ReadModel()
    assert model.fold_coverage(coverage(2, 800)).events == []
    assert model.fold_receipt_counts({(W, "sms", "delivered"): 2}).events == []
    model.fold_warning(make_warning(W, townships=(TOWN, "330302023")), T0)
    detail = model.detail(W, T0)
    assert detail is not None
    assert detail["coverage"]["unreached_townships"] == ["330302023"]
    assert detail["receipts"] == {"sms": {"delivered": 2}}
    early_ack = command("acknowledge", warning_id="rainstorm-later", message_id="rainstorm-later.v1")
    model.fold_command(early_ack, T0)
    model.fold_warning(make_warning("rainstorm-later"), T0)
    assert [a.actor for a in model.warnings["rainstorm-later"].acks] == ["li.na"]
    model.max_early = 2
    for n in range(5):
        model.fold_receipt_counts({(f"never-{n}", "sms", "delivered"): 1})
    assert len(model._early_receipts) == 2  # bounded: the oldest orphans go


def test_receipts_are_counted_per_channel_and_state() -> None:
    model = ReadModel()
    model.fold_warning(make_warning(W), T0)
    changes = model.fold_receipt_counts(
        {(W, "sms", "delivered"): 3, (W, "sms", "failed"): 1, ("unknown", "sms", "x"): 9}
    )
    assert events_of(changes.events, "delivery") == [
        {"warning_id": W, "receipts": {"sms": {"delivered": 3, "failed": 1}}}
    ]


def test_refused_and_applied_commands_become_audit_follow_ups() -> None:
    model = ReadModel()
    held = held_manual()
    model.fold_warning(held, T0)
    approve = command("approve", actor="wang.fang", role="approver", warning_id=held.warning_id)
    cancel = command("cancel", warning_id=W, reason="test")
    model.expect(approve)
    model.expect(cancel)
    refused = RejectedRecord(
        source="commands:li.na",
        reason="command_refused",
        detail=f"cancel {W}: no active warning {W}",
        field="action",
        received_at=T0,
        raw=cancel.model_dump_json(),
    )
    changes = model.fold_rejected(refused)
    assert [(a.command_id, a.outcome) for a in changes.audit] == [(cancel.command_id, "refused")]
    assert model.rejected()["counts"] == {"command_refused": 1}

    approved = held.model_copy(update={"approval": "approved", "approved_by": "wang.fang"})
    applied = model.fold_warning(approved, T0)
    assert [(a.command_id, a.outcome) for a in applied.audit] == [(approve.command_id, "applied")]
    assert model.pending == {}


def test_station_book_marks_late_stations_stale() -> None:
    model = ReadModel()
    model.fold_observation("G1", "rain", T0, 60, TOWN)
    model.fold_observation("G2", "rain", T0 + timedelta(minutes=10), 60, TOWN)
    model.fold_observation("W1", "water_level", T0 + timedelta(minutes=2), None, None)
    summary = model.stations.summary()
    rain = next(k for k in summary["kinds"] if k["kind"] == "rain")
    assert (rain["ok"], rain["stale"]) == (1, 1)
    assert [s["station_id"] for s in summary["stale"]] == ["G1"]


def test_station_book_marks_sensors_the_rules_suppress_faulty_until_a_clean_assessment() -> None:
    model = ReadModel()
    for station in ("G1", "G2", "G3"):
        model.fold_observation(station, "rain", T0, 60, TOWN)
    model.fold_assessment_health("G1", T0, "spike")
    model.fold_assessment_health("G2", T0, "flatline")
    model.fold_assessment_health("G2", T0 + timedelta(minutes=5), "flatline")  # still flat: same "since"
    model.fold_assessment_health("G3", T0, None)
    summary = model.stations.summary()
    rain = next(k for k in summary["kinds"] if k["kind"] == "rain")
    assert (rain["stations"], rain["ok"], rain["stale"], rain["faulty"]) == (3, 1, 0, 2)
    assert [(f["station_id"], f["status"], f["since"]) for f in summary["faulty"]] == [
        ("G1", "spike", "2024-06-01T08:00:00Z"),
        ("G2", "flatline", "2024-06-01T08:00:00Z"),
    ]
    assert summary["faulty_by_status"] == {"flatline": 1, "spike": 1}
    version = model.stations.version
    model.fold_assessment_health("G1", T0 - timedelta(minutes=1), None)  # older: ignored
    assert "G1" in model.stations.faulty
    model.fold_assessment_health("G1", T0 + timedelta(minutes=1), None)  # the next report is sound
    assert set(model.stations.faulty) == {"G2"}
    assert model.stations.version > version  # the runtime publishes a `health` event
    assert model.stations.summary()["faulty_total"] == 1


def test_a_claim_the_rules_left_out_marks_its_station_implausible_for_the_claims_window() -> None:
    model = ReadModel()
    model.fold_observation("G1", "rain", T0, 60, TOWN)
    claim = '{"source_id":"G1","hazard":"short_heavy_rain","level":"blue","evidence":[]}'
    flag = RejectedRecord(
        source=f"rules-lifecycle:short_heavy_rain:{TOWN}",
        reason="implausible_value",
        detail="G1 claims short_heavy_rain blue … the claim is left out",
        field="level",
        received_at=T0,
        raw=claim,
    )
    model.fold_rejected(flag)
    assert [(f["station_id"], f["status"]) for f in model.stations.summary()["faulty"]] == [("G1", "implausible")]
    # the gauge's own later assessments carry no marker: the status holds for the window …
    model.fold_assessment_health("G1", T0 + timedelta(minutes=30), None)
    assert model.stations.faulty["G1"][0] == "implausible"
    # … and ends after it
    model.fold_assessment_health("G1", T0 + timedelta(minutes=61), None)
    assert "G1" not in model.stations.faulty
    # a refused command or a gate rejection names no claimant
    model.fold_rejected(flag.model_copy(update={"source": "feed:aws", "raw": claim}))
    assert "G1" not in model.stations.faulty


# A property: the incremental per-township colour always equals a full recomputation
# (expiry is the ticker's job, so the steps stay within the warnings' validity; the final
# tick lands after some of them have expired).
towns = st.sampled_from(["330302006", "330302023", "330304103", "330383000"])
LEVELS: list[Level] = ["blue", "yellow", "orange", "red"]
step = st.tuples(
    st.integers(0, 3),  # warning index
    st.sampled_from([*LEVELS, None]),  # None: a Cancel
    st.lists(towns, min_size=1, max_size=3, unique=True),
    st.booleans(),  # held?
    st.integers(0, 180),  # minutes since T0 (clock)
)


@settings(max_examples=150, deadline=None)
@given(st.lists(step, min_size=1, max_size=25))
def test_incremental_colours_equal_a_full_recomputation(
    steps: list[tuple[int, Level | None, list[str], bool, int]],
) -> None:
    model = ReadModel()
    versions: dict[int, list[WarningMessage]] = {}
    clock = T0
    for index, level, codes, held, minutes in steps:
        clock = max(clock, T0 + timedelta(minutes=minutes))
        history = versions.setdefault(index, [])
        version = len(history) + 1
        wid = f"rainstorm-w{index}"
        first_codes = tuple(history[0].township_codes) if history else tuple(codes)
        if history and history[-1].msg_type == "Cancel":
            continue
        msg = make_warning(
            wid,
            version=version,
            msg_type="Cancel" if level is None and version > 1 else None,
            level=level or "red",
            townships=first_codes,
            sent_at=clock,
            valid_for=timedelta(hours=6),
            approval="held" if held and level is not None else "auto",
            previous_sent=[m.sent_at for m in history],
        )
        history.append(msg)
        model.fold_warning(msg, clock, settle=len(history) % 2 == 0)
    model.settle(clock)
    # no warning expired yet (6 h validity, 3 h of steps): settle alone must be exact
    assert model.township_levels == model.compute_township_levels(clock)
    later = clock + timedelta(hours=4)
    model.tick(later)
    assert model.township_levels == model.compute_township_levels(later)
