"""A gauge's heavy-rain claim against the radars' vote (``lifecycle._implausible``).

One township, gauges G1 and G2 (``shr-observed-1h``) and radars RA and RB (``radar-shr-nowcast``,
``none`` carrying ``echo_free_near_gauges``: D = dry for the window, W = not). Every 5 min::

    case                      source  0    5    10   15   20   25   30   →  outcome
    lone-gauge-radar-dry      G1      y    y    y    y    .    .    .      no warning;
                              RA      D    D    D    D    D    D    D      one flag (G1, at 0)
    radar-wet                 G1      y    y    y    y    .    .    .      Alert yellow at 0
                              RA      W    W    W    W    W    W    W
    one-radar-wet             G1      y …                                  Alert (not every vote dry)
                              RA      D …   RB  W …
    no-radar-vote             G1      y …   (RA reports bare none)         Alert (nobody voted)
    radar-turns-dry           G1      y    y    y    y    y    y    y      Alert at 0, the claim is left
                              RA      W    W    W    D    D    D    D      out from 15 (one flag), the
                                                                           all-clear 30 min after 10 (at 40)
    claim-again               G1      y    y    .    .    y    y    .      two flags: the claim ended
                              RA      D    D    D    D    D    D    D      in between
    check-off                 as lone-gauge-radar-dry with ``field_checked_rules`` empty: Alert

A radar's own SHR nowcast above none is never left out: the check questions gauges only.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from schemas.assessment import Evidence, HazardAssessment
from schemas.rejected import RejectedRecord
from schemas.warning import WarningMessage
from services.rules.detectors.field import FIELD_METRIC
from services.rules.detectors.short_heavy_rain import RULE_ID as GAUGE_RULE
from services.rules.lifecycle import LifecyclePolicy, fold, new_state

T0 = datetime(2019, 8, 9, 6, 0, tzinfo=UTC)
TOWN = "330302006"
RADAR_RULE = "radar-shr-nowcast"
POLICY = LifecyclePolicy(allowed_lateness_s=600, all_clear_quiet_s=1800, deescalate_dwell_s=600)


def at(minute: int) -> datetime:
    return T0 + timedelta(minutes=minute)


def shr(
    source: str, minute: int, level: str, rule_id: str, evidence: tuple[Evidence, ...], **extra: object
) -> HazardAssessment:
    return HazardAssessment.model_validate(
        {
            "hazard": "short_heavy_rain",
            "township_code": TOWN,
            "source_id": source,
            "assessed_at": at(minute),
            "level": level,
            "rule_id": rule_id,
            "evidence": evidence,
            **extra,
        }
    )


def gauge(source: str, minute: int, level: str) -> HazardAssessment:
    found = Evidence(station_id=source, metric="rain_1h_mm", value=31.5, threshold=30.0, window_s=3600)
    return shr(source, minute, level, GAUGE_RULE, (found,) if level != "none" else ())


def radar(source: str, minute: int, vote: str | None, level: str = "none") -> HazardAssessment:
    """``vote``: "D" dry, "W" not, None: no vote (a bare none, or a forecast above none)."""
    if level != "none":
        forecast = Evidence(station_id=source, metric="forecast_rain_1h_mm", value=35.0, basis="forecast")
        return shr(source, minute, level, RADAR_RULE, (forecast,), certainty="Likely", onset_at=at(minute + 20))
    votes = () if vote is None else (Evidence(station_id=source, metric=FIELD_METRIC, value=float(vote == "D")),)
    return shr(source, minute, level, RADAR_RULE, votes, certainty="Likely")


def run(
    stream: list[HazardAssessment], policy: LifecyclePolicy = POLICY
) -> tuple[list[WarningMessage], list[RejectedRecord]]:
    state = new_state()
    sources = frozenset(a.source_id for a in stream)
    messages: list[WarningMessage] = []
    flags: list[RejectedRecord] = []
    for a in stream:
        messages.extend(fold(state, a, policy, sources, flags)[0])
    json.dumps(state)  # the state stays JSON
    return messages, flags


def timeline(rows: dict[str, str], minutes: int = 80) -> list[HazardAssessment]:
    """Rows of one character per 5 min (``y`` yellow, ``.`` none for gauges; ``D``/``W``/``-``
    for radars: dry, wet, no vote); a row shorter than ``minutes`` repeats its last symbol."""
    out = []
    for step in range(minutes // 5 + 1):
        for source, row in rows.items():
            symbol = row[min(step, len(row) - 1)]
            if source.startswith("G"):
                out.append(gauge(source, 5 * step, "yellow" if symbol == "y" else "none"))
            else:
                out.append(radar(source, 5 * step, None if symbol == "-" else symbol))
    return out


@pytest.mark.parametrize(
    ("rows", "alerts", "flagged"),
    [
        pytest.param({"G1": "yyyy.", "RA": "D"}, 0, [("G1", 0)], id="lone-gauge-radar-dry"),
        pytest.param({"G1": "yyyy.", "RA": "W"}, 1, [], id="radar-wet"),
        pytest.param({"G1": "yyyy.", "RA": "D", "RB": "W"}, 1, [], id="one-radar-wet"),
        pytest.param({"G1": "yyyy.", "RA": "-"}, 1, [], id="no-radar-vote"),
        pytest.param({"G1": "yyyy.", "G2": ".", "RA": "D", "RB": "D"}, 0, [("G1", 0)], id="two-radars-dry"),
        pytest.param({"G1": "yy..yy.", "RA": "D"}, 0, [("G1", 0), ("G1", 20)], id="claim-again"),
    ],
)
def test_claims_against_the_vote(rows: dict[str, str], alerts: int, flagged: list[tuple[str, int]]) -> None:
    messages, flags = run(timeline(rows))
    assert len([m for m in messages if m.msg_type == "Alert"]) == alerts
    assert [(f.field, json.loads(f.raw)["source_id"], f.received_at) for f in flags] == [
        ("level", source, at(minute)) for source, minute in flagged
    ]
    assert all(f.reason == "implausible_value" and FIELD_METRIC in f.detail for f in flags)


def test_a_claim_the_radar_turns_against_stops_counting() -> None:
    messages, flags = run(timeline({"G1": "y", "RA": "WWWD"}, minutes=120))
    assert [(m.msg_type, m.sent_at) for m in messages][:1] == [("Alert", at(0))]
    assert [(json.loads(f.raw)["source_id"], f.received_at) for f in flags] == [("G1", at(15))]
    cancel = [m for m in messages if m.msg_type == "Cancel"]
    assert cancel, "the warning ends"
    assert cancel[0].sent_at == at(10 + 30), "last active at 10 min: the all-clear 30 min later"


def test_the_flag_keeps_the_claim_and_its_evidence() -> None:
    _, flags = run(timeline({"G1": "yyyy.", "RA": "D"}))
    claim = json.loads(flags[0].raw)
    assert claim["level"] == "yellow"
    assert claim["rule_id"] == GAUGE_RULE
    assert claim["evidence"][0]["metric"] == "rain_1h_mm"
    assert "G1 claims short_heavy_rain yellow (rain_1h_mm 31.5)" in flags[0].detail


def test_a_radar_forecast_is_never_left_out() -> None:
    stream = [radar("RA", m, "D") for m in range(0, 30, 5)] + [radar("RB", m, None, "yellow") for m in range(0, 30, 5)]
    stream.sort(key=lambda a: a.assessed_at)
    messages, flags = run(stream)
    assert [m.msg_type for m in messages][:1] == ["Alert"]
    assert not flags


def test_the_check_can_be_switched_off() -> None:
    policy = POLICY.model_copy(update={"field_checked_rules": frozenset()})
    messages, flags = run(timeline({"G1": "yyyy.", "RA": "D"}), policy)
    assert [m.msg_type for m in messages][:1] == ["Alert"]
    assert not flags
