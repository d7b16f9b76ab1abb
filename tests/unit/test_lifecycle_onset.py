"""Onset and certainty of rules warnings: taken from the sources that set the level."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from schemas.assessment import Evidence, HazardAssessment
from schemas.command import ManualWarning, OperatorCommand
from schemas.warning import WarningMessage
from services.rules.lifecycle import Forecast, LifecyclePolicy, _forecast_at, apply_command, fold, new_state
from tests.unit.test_lifecycle import POLICY, run

T0 = datetime(2020, 8, 3, 12, 0, tzinfo=UTC)


def at(minute: float) -> datetime:
    return T0 + timedelta(minutes=minute)


def assessment(
    source: str,
    minute: int,
    level: str,
    onset_min: float | None = None,
    certainty: str = "Observed",
) -> HazardAssessment:
    basis = "observed" if onset_min is None else "forecast"
    return HazardAssessment(
        hazard="convection",
        township_code="330302006",
        source_id=source,
        assessed_at=at(minute),
        level=level,
        rule_id=f"rule-{source}",
        onset_at=None if onset_min is None else at(onset_min),
        certainty=certainty,
        evidence=(Evidence(station_id=source, metric="dbz_max", value=50.0, threshold=45.0, basis=basis),)
        if level != "none"
        else (),
    )


def first_alert(stream: list[HazardAssessment]) -> WarningMessage:
    alerts = [m for m in run(stream) if m.msg_type == "Alert"]
    assert alerts, "an Alert is issued"
    return alerts[0]


def test_forecast_source_gives_its_onset_and_certainty() -> None:
    msg = first_alert([assessment("R1", 0, "orange", onset_min=40, certainty="Likely")])
    assert msg.sent_at == at(0)
    assert msg.onset_at == at(40)
    assert msg.certainty == "Likely"
    assert msg.expires_at == at(40) + timedelta(seconds=POLICY.validity_s)


def test_observed_source_is_observed_now() -> None:
    msg = first_alert([assessment("G1", 0, "orange")])
    assert (msg.onset_at, msg.certainty) == (msg.sent_at, "Observed")
    assert msg.expires_at == msg.sent_at + timedelta(seconds=POLICY.validity_s)


def test_onset_before_sent_is_clamped_to_sent() -> None:
    msg = first_alert([assessment("R1", 10, "orange", onset_min=5, certainty="Likely")])
    assert (msg.onset_at, msg.certainty) == (at(10), "Likely")


def test_mixed_sources_earliest_onset_and_strongest_certainty_at_the_level() -> None:
    # two forecasts at the level: the earlier onset (R2) and the stronger certainty (R1)
    msg = first_alert(
        [
            assessment("R1", 0, "orange", onset_min=40, certainty="Likely"),
            assessment("R2", 0, "orange", onset_min=20, certainty="Possible"),
        ]
    )
    assert (msg.onset_at, msg.certainty) == (at(20), "Likely")
    # an observation at the level: observed now
    msg = first_alert(
        [
            assessment("G1", 0, "orange"),
            assessment("R1", 0, "orange", onset_min=40, certainty="Likely"),
        ]
    )
    assert (msg.onset_at, msg.certainty) == (at(0), "Observed")
    # a source below the warning's level does not count
    msg = first_alert(
        [
            assessment("G1", 0, "yellow"),
            assessment("R1", 0, "orange", onset_min=40, certainty="Possible"),
        ]
    )
    assert (msg.level, msg.onset_at, msg.certainty) == ("orange", at(40), "Possible")


def test_same_onset_and_certainty_whatever_the_interleaving() -> None:
    per_source = {
        "G1": [assessment("G1", 10 * t, lvl) for t, lvl in enumerate(["none", "yellow", "yellow", "orange", "none"])],
        "R1": [
            assessment("R1", 10 * t, lvl, onset_min=10 * t + 25, certainty="Likely")
            for t, lvl in enumerate(["orange", "orange", "red", "red", "none"])
        ],
        "R2": [
            assessment("R2", 10 * t, lvl, onset_min=10 * t + 15, certainty="Possible")
            for t, lvl in enumerate(["none", "orange", "red", "orange", "none"])
        ],
    }
    reference = run([a for t in range(5) for a in (per_source[s][t] for s in sorted(per_source))])
    assert reference, "the stream raises warnings"
    assert any(m.onset_at > m.sent_at for m in reference)
    for order in itertools.permutations(sorted(per_source)):
        stream = [a for t in range(5) for a in (per_source[s][t] for s in order)]
        assert run(stream) == reference


def test_onset_alone_is_no_material_change() -> None:
    """A moving onset or certainty issues no Update; the next Update carries the new values."""
    messages = run(
        [
            assessment("R1", 0, "orange", onset_min=40, certainty="Likely"),
            assessment("R1", 10, "orange", onset_min=30, certainty="Possible"),
            assessment("R1", 20, "orange", onset_min=25, certainty="Likely"),
            assessment("R1", 30, "red", onset_min=45, certainty="Likely"),
            assessment("R1", 40, "red"),
        ]
    )
    assert [(m.msg_type, m.level) for m in messages] == [("Alert", "orange"), ("Update", "red")]
    assert (messages[1].onset_at, messages[1].certainty) == (at(45), "Likely")


def test_ids_and_versions_do_not_depend_on_onsets() -> None:
    """Same levels with and without forecast onsets (one a day ahead, past the validity):
    the same messages at the same times; only onset, certainty and expiry differ."""
    levels = ["yellow"] * 60 + ["none"] * 30  # 10-minute steps: renewals, then an all-clear
    observed = run([assessment("W1", 10 * i, lvl) for i, lvl in enumerate(levels)])
    forecast = run(
        [assessment("W1", 10 * i, lvl, onset_min=10 * i + 24 * 60, certainty="Likely") for i, lvl in enumerate(levels)]
    )
    assert [(m.message_id, m.msg_type, m.level, m.sent_at) for m in observed] == [
        (m.message_id, m.msg_type, m.level, m.sent_at) for m in forecast
    ]
    assert any(m.msg_type == "Update" for m in forecast), "renewed before the renewal clock ran out"
    for m in forecast:
        if m.msg_type == "Cancel":
            assert (m.onset_at, m.certainty) == (m.sent_at, "Observed")
        else:
            assert m.onset_at == m.sent_at + timedelta(hours=24)
            assert m.certainty == "Likely"
            assert m.expires_at == m.onset_at + timedelta(seconds=POLICY.validity_s)


def test_entries_stored_before_onsets_were_kept_read_as_observed() -> None:
    sources = {"G1": [[0, "orange", [], "old-rule"]], "R1": [[0, "orange", [], "rule", 600, "Likely"]]}
    assert _forecast_at(sources, 0, sorted(sources)) == Forecast(0, "Observed")
    assert _forecast_at({"R1": sources["R1"]}, 0, ["R1"]) == Forecast(600, "Likely")
    assert _forecast_at({"G1": [[0, "none", [], "rule", None, "Likely"]]}, 0, ["G1"]) is None


def test_manual_warning_certainty_is_unknown() -> None:
    command = OperatorCommand(
        command_id="cmd-manual-1",
        action="issue_manual",
        actor="wang",
        actor_role="duty_officer",
        at=T0,
        manual=ManualWarning(hazard="rainstorm", level="yellow", township_codes=("330302006",), headline="黄色"),
    )
    (msg,) = apply_command(new_state(), command, POLICY)
    assert (msg.onset_at, msg.certainty) == (msg.sent_at, "Unknown")


def test_a_level_resting_on_silent_sources_only_is_possible_and_names_them() -> None:
    sources = {
        "G1": [[0, "red", [], "rule", None, "Observed"]],
        "G2": [[0, "orange", [], "rule", None, "Observed"], [3000, "orange", [], "rule", None, "Observed"]],
        "R1": [[2400, "red", [], "rule", 2700, "Likely"]],
    }
    # R1 reported red 600 s ago: the level is confirmed
    assert _forecast_at(sources, 3000, sorted(sources), 1800) == Forecast(0, "Observed")
    # without R1, red rests on G1 alone, silent for 3000 s > 1800 s
    silent = {k: v for k, v in sources.items() if k != "R1"}
    assert _forecast_at(silent, 3000, sorted(silent), 1800) == Forecast(0, "Possible", (("G1", 3000),))
    assert _forecast_at(silent, 1800, sorted(silent), 1800) == Forecast(0, "Observed")  # not yet more than
    assert _forecast_at(silent, 3000, sorted(silent), None) == Forecast(0, "Observed")  # staleness off
    unlikely = {"G1": [[0, "red", [], "rule", None, "Unlikely"]]}
    assert _forecast_at(unlikely, 9000, ["G1"], 1800) == Forecast(0, "Unlikely", (("G1", 9000),))  # never raised


def test_a_renewal_on_a_silent_gauge_says_so() -> None:
    """G1 reports red once and goes silent; G2 keeps reporting none. The warning stays (the
    reading was sound), but its renewal is Possible and names G1 and its silence."""
    policy = LifecyclePolicy(allowed_lateness_s=600, validity_s=3600, renew_before_s=600, stale_after_s=1800)
    state = new_state()
    stream = [assessment("G1", 0, "red")] + [assessment("G2", m, "none") for m in range(0, 121, 10)]
    out: list[WarningMessage] = []
    for a in stream:
        out.extend(fold(state, a, policy, frozenset({"G1", "G2"}))[0])
    alert, renewal = out[0], out[1]
    assert (alert.msg_type, alert.level, alert.certainty) == ("Alert", "red", "Observed")
    assert not [e for e in alert.evidence if e.metric == "sensor_stale_s"]
    assert (renewal.msg_type, renewal.level, renewal.sent_at) == ("Update", "red", at(50))
    assert renewal.certainty == "Possible"
    stale = [e for e in renewal.evidence if e.metric == "sensor_stale_s"]
    assert [(e.station_id, e.value, e.threshold) for e in stale] == [("G1", 3000.0, 1800.0)]
