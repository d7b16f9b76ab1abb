"""RadarProcessor: scans in, convection and SHR nowcasts per covered township out."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from schemas import topics
from schemas.common import LEVEL_RANK
from schemas.observations import RadarScan
from services.common.bus.base import Emit
from services.common.bus.processor import DictState
from services.common.metrics import Metrics
from services.rules.detectors.convection import ConvectionConfig, assess_convection, new_radar_state
from services.rules.detectors.field import FIELD_METRIC, FieldCheckConfig, GaugeSites
from services.rules.hazard_processors import RadarProcessor
from tests.unit.detectors.test_convection import (
    DOWNSTREAM,
    LAT,
    N_COLS,
    N_ROWS,
    OUTSIDE,
    RADAR,
    blobs,
    domain_townships,
    east,
    moving_blob_scans,
    radar_scan,
)
from tests.unit.rules_processors.helpers import assessments, json_round_trip, metric, record, rejections

TOWNS = domain_townships(east(120.0, 20.0))


def test_a_moving_cell_warns_the_township_downstream() -> None:
    metrics = Metrics()
    processor, state = RadarProcessor(TOWNS, metrics=metrics), DictState()
    scans = moving_blob_scans()
    emitted = [processor.process(record(topics.OBS_RADAR, scan, i), state) for i, scan in enumerate(scans)]
    covered = len(TOWNS.codes) - 1  # every township but the one east of the grid
    assert all(len(emits) == 3 * covered for emits in emitted)  # convection, SHR, rainstorm
    last = {(a.hazard, a.township_code): a for a in assessments(emitted[-1])}
    assert (("convection", OUTSIDE)) not in last
    warned = last[("convection", DOWNSTREAM)]
    assert LEVEL_RANK[warned.level] >= LEVEL_RANK["yellow"]
    assert warned.onset_at is not None
    assert warned.onset_at > scans[-1].observed_at
    assert warned.source_id == RADAR
    assert {e.key for e in emitted[-1]} == {f"{a.hazard}:{a.township_code}" for a in assessments(emitted[-1])}
    assert metric(metrics, "earlywarn_records_processed_total", processor="rules-radar") == len(scans)
    assert metric(metrics, "earlywarn_assessments_total", hazard="convection", level=warned.level) >= 1
    json_round_trip(state[RADAR])


@pytest.mark.parametrize("heartbeat_s", [0, 360], ids=["every-assessment", "heartbeat-equals-cycle"])
def test_emits_exactly_what_the_detector_assesses(heartbeat_s: int) -> None:
    """6-min scans: with a 360 s heartbeat every township is due on every scan anyway."""
    processor, state = RadarProcessor(TOWNS, metrics=Metrics(), heartbeat_s=heartbeat_s), DictState()
    detector_state = new_radar_state()
    for i, scan in enumerate(moving_blob_scans(4)):
        expected = [a.model_dump_json().encode() for a in assess_convection(scan, detector_state, TOWNS)]
        assert [e.value for e in processor.process(record(topics.OBS_RADAR, scan, i), state)] == expected
    tracking = {k: v for k, v in state[RADAR].items() if k != "emitted"}
    assert tracking == detector_state


def test_late_scan_is_counted_and_changes_nothing_and_a_repeat_repeats() -> None:
    metrics = Metrics()
    processor, state = RadarProcessor(TOWNS, metrics=metrics), DictState()
    scans = moving_blob_scans(3)
    for i, scan in enumerate(scans):
        last = processor.process(record(topics.OBS_RADAR, scan, i), state)
    before = json.dumps(state[RADAR], sort_keys=True)
    assert processor.process(record(topics.OBS_RADAR, scans[0], 9), state) == []
    assert metric(metrics, "earlywarn_late_records_total", processor="rules-radar") == 1
    assert json.dumps(state[RADAR], sort_keys=True) == before
    assert processor.process(record(topics.OBS_RADAR, scans[-1], 10), state) == last  # redelivery


@pytest.mark.parametrize(
    ("payload", "reason", "field"),
    [
        pytest.param(b"{not json", "malformed_json", None, id="malformed"),
        pytest.param(
            radar_scan(0, np.full((10, 10), 40.0)).model_dump_json().replace('"n_rows":10', '"n_rows":11').encode(),
            "schema",
            None,
            id="grid-size-mismatch",
        ),
        pytest.param(
            radar_scan(0, np.full((10, 10), 40.0))
            .model_dump_json()
            .replace('"cell_deg":0.01', '"cell_deg":-1')
            .encode(),
            "implausible_value",
            "cell_deg",
            id="negative-cell",
        ),
    ],
)
def test_bad_scans_are_rejected_with_the_reason(payload: bytes, reason: str, field: str | None) -> None:
    metrics = Metrics()
    processor, state = RadarProcessor(TOWNS, metrics=metrics), DictState()
    emits = processor.process(record(topics.OBS_RADAR, payload, 3, key=RADAR), state)
    (rejected,) = rejections(emits)
    assert [e.topic for e in emits] == [topics.OBS_REJECTED]
    assert rejected.reason == reason
    if field is not None:
        assert rejected.field == field
    assert rejected.source == f"{topics.OBS_RADAR}[0]@3"
    assert metric(metrics, "earlywarn_observations_rejected_total", reason=reason) == 1
    assert state.get(RADAR) is None


# ── change-only output with a heartbeat ─────────────────────────────────────────────────────
# One scan a minute (X-band cadence), each either quiet (no echo above 35 dBZ: every
# township ``none``) or a storm standing over the domain (some townships above ``none``).

QUIET = blobs([])
STORM = blobs([(east(120.0, 20.0), LAT, 55.0, 8.0)])
COVERED = len(TOWNS.codes) - 1  # every township but the one east of the grid


def minute_scans(pattern: str) -> list[bytes]:
    """``pattern``: one character a minute, ``.`` quiet, ``S`` storm."""
    return [radar_scan(i, STORM if c == "S" else QUIET).model_dump_json().encode() for i, c in enumerate(pattern)]


def levels(emits: list[Emit]) -> dict[tuple[str, str], str]:
    return {(a.hazard, a.township_code): a.level for a in assessments(emits)}


def full(pattern: str) -> list[dict[tuple[str, str], str]]:
    """What the detector assesses on each scan (every covered township)."""
    state = new_radar_state()
    scans = [RadarScan.model_validate_json(raw) for raw in minute_scans(pattern)]
    return [{(a.hazard, a.township_code): a.level for a in assess_convection(scan, state, TOWNS)} for scan in scans]


def expected_keys(token: str, now: dict[tuple[str, str], str], before: dict[tuple[str, str], str]) -> set[Any]:
    if token == "all":
        return set(now)
    if token == "-":
        return set()
    if token == "hot":  # the townships above none now, and those that just dropped to none
        return {k for k, level in now.items() if level != "none" or before.get(k, "none") != "none"}
    if token == "cold":  # the townships that were above none and dropped to none
        return {k for k, level in before.items() if level != "none"}
    raise AssertionError(token)


@pytest.mark.parametrize(
    ("pattern", "heartbeat_s", "tokens"),
    [
        pytest.param(
            "........", 360, ["all", "-", "-", "-", "-", "-", "all", "-"], id="none-suppressed-until-heartbeat"
        ),
        pytest.param(".....", 120, ["all", "-", "all", "-", "all"], id="heartbeat-configurable"),
        pytest.param(".....", 0, ["all"] * 5, id="heartbeat-0-publishes-everything"),
        pytest.param("..S", 360, ["all", "-", "hot"], id="level-change-at-once"),
        pytest.param("SSS", 360, ["all", "hot", "hot"], id="storm-townships-move-the-rest-stay-quiet"),
        pytest.param("SS.", 360, ["all", "hot", "cold"], id="drop-to-none-at-once"),
        pytest.param("S.....", 360, ["all", "cold", "-", "-", "-", "-"], id="after-the-drop-quiet-again"),
    ],
)
def test_publishes_changes_at_once_and_the_rest_on_the_heartbeat(
    pattern: str, heartbeat_s: int, tokens: list[str]
) -> None:
    processor, state = RadarProcessor(TOWNS, metrics=Metrics(), heartbeat_s=heartbeat_s), DictState()
    detector = full(pattern)
    for i, (raw, token) in enumerate(zip(minute_scans(pattern), tokens, strict=True)):
        emitted = levels(processor.process(record(topics.OBS_RADAR, raw, i, key=RADAR), state))
        want = expected_keys(token, detector[i], detector[i - 1] if i else {})
        assert set(emitted) == want, f"scan {i} ({token})"
        assert all(emitted[k] == detector[i][k] for k in emitted)  # what goes out is the detector's own
        if token in ("hot", "cold"):
            assert want, "the case must exercise a change"
    assert len(state[RADAR].get("emitted", {})) <= 3 * COVERED  # bounded by townships x hazards


def test_a_township_heartbeat_counts_from_its_own_last_publication() -> None:
    """Storm townships last published at minute 2 (the drop) are due at 8, the rest at 6."""
    pattern = ".S........"
    processor, state = RadarProcessor(TOWNS, metrics=Metrics(), heartbeat_s=360), DictState()
    detector = full(pattern)
    stormy = {k for k, level in detector[1].items() if level != "none"}
    emitted = [
        levels(processor.process(record(topics.OBS_RADAR, raw, i, key=RADAR), state))
        for i, raw in enumerate(minute_scans(pattern))
    ]
    assert set(emitted[6]) == set(detector[6]) - stormy
    assert set(emitted[7]) == set()
    assert set(emitted[8]) == stormy
    assert all(level == "none" for level in emitted[8].values())


def test_restart_from_the_changelog_keeps_the_suppression() -> None:
    """State round-tripped through JSON (a restart) publishes exactly what an uninterrupted run does."""
    pattern = ".SS...S........"
    raws = minute_scans(pattern)
    steady, steady_state = RadarProcessor(TOWNS, metrics=Metrics()), DictState()
    uninterrupted = [
        steady.process(record(topics.OBS_RADAR, raw, i, key=RADAR), steady_state) for i, raw in enumerate(raws)
    ]
    saved: Any = None
    for i, raw in enumerate(raws):
        restarted, state = RadarProcessor(TOWNS, metrics=Metrics()), DictState()
        if saved is not None:
            state[RADAR] = json.loads(saved)
        assert restarted.process(record(topics.OBS_RADAR, raw, i, key=RADAR), state) == uninterrupted[i]
        json_round_trip(state[RADAR])
        saved = json.dumps(state[RADAR])
    assert sum(1 for emits in uninterrupted if not emits) >= 5  # suppression was exercised


def test_a_redelivered_scan_repeats_exactly_what_it_published() -> None:
    processor, state = RadarProcessor(TOWNS, metrics=Metrics()), DictState()
    for i, raw in enumerate(minute_scans("..S..S.")):
        first = processor.process(record(topics.OBS_RADAR, raw, i, key=RADAR), state)
        assert processor.process(record(topics.OBS_RADAR, raw, i + 100, key=RADAR), state) == first


def test_heartbeat_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="heartbeat_s"):
        RadarProcessor(TOWNS, heartbeat_s=-1)


def test_the_gauge_vote_rides_on_the_heartbeat() -> None:
    """Empty 1-min scans for 70 min, gauges at every township, a 55-min window: each SHR
    ``none`` goes out at the first scan, on each 6-min heartbeat, and at once when the
    township has been dry for the whole window (minute 55) with the new vote; the heartbeat
    then counts from there."""
    rows = [(code, float(lon), float(lat)) for code, lon, lat in zip(TOWNS.codes, TOWNS.lon, TOWNS.lat, strict=True)]
    config = ConvectionConfig(field=FieldCheckConfig(window_s=55 * 60))
    processor = RadarProcessor(TOWNS, config, Metrics(), heartbeat_s=360, gauges=GaugeSites.from_rows(rows))
    state = DictState()
    empty = np.full((N_ROWS, N_COLS), np.nan)
    shr: dict[int, dict[str, float]] = {}
    for minute in range(71):
        published = assessments(processor.process(record(topics.OBS_RADAR, radar_scan(minute, empty), minute), state))
        shr[minute] = {
            a.township_code: next(e.value for e in a.evidence if e.metric == FIELD_METRIC)
            for a in published
            if a.hazard == "short_heavy_rain" and a.evidence
        }
    voted = set(shr[0])
    assert len(voted) >= COVERED - 2  # townships whose gauge neighbourhood is on the grid
    assert {m for m, votes in shr.items() if votes} == {*range(0, 55, 6), 55, 61, 67}
    assert set(shr[55]) == set(shr[61]) == voted
    assert set(shr[55].values()) == set(shr[67].values()) == {1.0}
    assert all(set(shr[m].values()) == {0.0} for m in range(0, 55, 6))
    json_round_trip(state[RADAR])
