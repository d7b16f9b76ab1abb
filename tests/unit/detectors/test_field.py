"""The radars' vote on a township's rain gauges (``detectors.field``): tables of scans.

Grid 40 × 40 cells of 0.01° from (119.6, 27.0); window 30 min, wet at ≥ 30 dBZ within 2 km
(± 2 cells) of a gauge, a gap over 12 min restarts the window. Scans every 6 min; ``.`` is
no echo near the gauge, a number is the dBZ there; the vote row is 1 = dry, 0 = not::

    case                      min  0   6  12  18  24  30  36  42  48
    dry-after-a-window        dBZ  .   .   .   .   .   .   .   .   .
                              vote 0   0   0   0   0   1   1   1   1
    echo-restarts-the-window  dBZ  .   .  35   .   .   .   .   .   .
                              vote 0   0   0   0   0   0   0   1   1
    light-echo-is-dry         dBZ 29  29  29  29  29  29  29  29  29
                              vote 0   0   0   0   0   1   1   1   1
    wet-at-the-threshold      dBZ 30  30  30  30  30  30  30  30  30
                              vote 0   0   0   0   0   0   0   0   0
    echo-2-cells-away-is-near dBZ  (50 dBZ two cells east of the gauge, every scan)
                              vote 0   0   0   0   0   0   0   0   0
    echo-3-cells-away         dBZ  (50 dBZ three cells, 3 km, east of the gauge)
                              vote 0   0   0   0   0   1   1   1   1

A scan gap longer than 12 min starts the window again (scans 0–24, then 42, 48, … 72: dry
from 72). A township with a gauge whose neighbourhood leaves the grid gets no vote.
"""

from __future__ import annotations

import json

import numpy as np
import numpy.typing as npt
import pytest

from services.rules.detectors.field import (
    FIELD_METRIC,
    FieldCheckConfig,
    GaugeSites,
    field_evidence,
    field_votes,
    new_field_state,
)
from tests.unit.detectors.test_convection import CELL_DEG, LAT0, LON0, radar_scan

CELL = CELL_DEG
N = 40
CONFIG = FieldCheckConfig(window_s=1800, max_gap_s=720)
TOWN, EDGE = "330302001", "330302002"
GAUGE_ROW, GAUGE_COL = 10, 10
SITES = GaugeSites.from_rows(
    [
        (TOWN, LON0 + (GAUGE_COL + 0.5) * CELL, LAT0 + (GAUGE_ROW + 0.5) * CELL),
        (EDGE, LON0 + 38.5 * CELL, LAT0 + 20.5 * CELL),  # 2 cells from the grid's east edge
    ]
)
Grid = npt.NDArray[np.float64]


def grid(dbz: float | None, col_offset: int = 0) -> Grid:
    out = np.full((N, N), np.nan)
    if dbz is not None:
        out[GAUGE_ROW, GAUGE_COL + col_offset] = dbz
    return out


def votes(timeline: list[tuple[int, Grid]]) -> list[int]:
    state = new_field_state()
    out = []
    for minute, cells in timeline:
        s = radar_scan(minute, cells)
        out.append(int(field_votes(s, s.dbz(), state, SITES, CONFIG)[TOWN]))
    return out


MINUTES = list(range(0, 49, 6))


@pytest.mark.parametrize(
    ("timeline", "expected"),
    [
        pytest.param([(m, grid(None)) for m in MINUTES], [0, 0, 0, 0, 0, 1, 1, 1, 1], id="dry-after-a-window"),
        pytest.param(
            [(m, grid(35.0 if m == 12 else None)) for m in MINUTES],
            [0, 0, 0, 0, 0, 0, 0, 1, 1],
            id="echo-restarts-the-window",
        ),
        pytest.param([(m, grid(29.0)) for m in MINUTES], [0, 0, 0, 0, 0, 1, 1, 1, 1], id="light-echo-is-dry"),
        pytest.param([(m, grid(30.0)) for m in MINUTES], [0] * 9, id="wet-at-the-threshold"),
        pytest.param([(m, grid(50.0, col_offset=2)) for m in MINUTES], [0] * 9, id="echo-2-cells-away-is-near"),
        pytest.param(
            [(m, grid(50.0, col_offset=3)) for m in MINUTES], [0, 0, 0, 0, 0, 1, 1, 1, 1], id="echo-3-cells-away"
        ),
        pytest.param(
            [(m, grid(None)) for m in (0, 6, 12, 18, 24, 42, 48, 54, 60, 66, 72)],
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            id="gap-restarts-the-window",
        ),
    ],
)
def test_vote_timeline(timeline: list[tuple[int, Grid]], expected: list[int]) -> None:
    assert votes(timeline) == expected


def test_a_township_partly_off_the_grid_gets_no_vote() -> None:
    state = new_field_state()
    s = radar_scan(0, grid(None))
    assert set(field_votes(s, None, state, SITES, CONFIG)) == {TOWN}


def test_redelivered_scan_votes_again_and_leaves_state_alone() -> None:
    state = new_field_state()
    for minute in MINUTES[:-1]:
        s = radar_scan(minute, grid(None))
        field_votes(s, None, state, SITES, CONFIG)
    last = radar_scan(MINUTES[-1], grid(35.0))
    first = field_votes(last, None, state, SITES, CONFIG)
    before = json.dumps(state, sort_keys=True)
    assert field_votes(last, None, state, SITES, CONFIG) == first == {TOWN: False}
    assert json.dumps(state, sort_keys=True) == before


def test_state_is_bounded_by_the_townships_and_json() -> None:
    state = new_field_state()
    for minute in range(0, 600, 6):
        s = radar_scan(minute, grid(40.0 if minute % 60 == 0 else None))
        field_votes(s, None, state, SITES, CONFIG)
    assert set(state) == {"since", "last", "wet"}
    assert set(state["wet"]) <= {TOWN}
    assert json.loads(json.dumps(state)) == state


def test_evidence_names_the_threshold_and_window() -> None:
    dry = field_evidence("RADAR-X1", True, CONFIG)
    assert (dry.metric, dry.value, dry.threshold, dry.window_s) == (FIELD_METRIC, 1.0, 30.0, 1800)
    assert field_evidence("RADAR-X1", False, CONFIG).value == 0.0
