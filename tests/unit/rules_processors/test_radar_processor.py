"""RadarProcessor: scans in, convection and SHR nowcasts per covered township out."""

from __future__ import annotations

import json

import numpy as np
import pytest

from schemas import topics
from schemas.common import LEVEL_RANK
from services.common.bus.processor import DictState
from services.common.metrics import Metrics
from services.rules.detectors.convection import assess_convection, new_radar_state
from services.rules.hazard_processors import RadarProcessor
from tests.unit.detectors.test_convection import (
    DOWNSTREAM,
    OUTSIDE,
    RADAR,
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
    assert all(len(emits) == 2 * covered for emits in emitted)
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


def test_emits_exactly_what_the_detector_assesses() -> None:
    processor, state = RadarProcessor(TOWNS, metrics=Metrics()), DictState()
    detector_state = new_radar_state()
    for i, scan in enumerate(moving_blob_scans(4)):
        expected = [a.model_dump_json().encode() for a in assess_convection(scan, detector_state, TOWNS)]
        assert [e.value for e in processor.process(record(topics.OBS_RADAR, scan, i), state)] == expected
    assert state[RADAR] == detector_state


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
