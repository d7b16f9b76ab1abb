"""Rainstorm signal per gauge: table of timestamped cases.

Each case feeds hourly reports (mm in the hour ending at that time) and checks the level
after the last one. Timeline notation: one character per hour, digits are tens of mm
(``5`` = 50 mm in that hour), ``.`` = 0 mm, ``_`` = no report (gap).

    case                 hours →  level
    below-blue           4.........       none   (40 mm in 12 h)
    blue-edge            5...........     blue   (exactly 50 mm in 12 h)
    yellow-6h            2..3             yellow (50 mm in 6 h, 30 in 3 h)
    orange-3h-edge       ..5              orange (50 mm in 3 h)
    red-3h               55               red    (100 mm in 3 h)
    rain-leaves-window   5.............   none   (50 mm fell 14 h ago)
    gap-is-not-rain      2_2_1            yellow (gaps add nothing)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from schemas.observations import RainObservation
from services.rules.detectors.rainstorm import assess_rainstorm
from services.rules.windows import Series, new_series

T0 = datetime(2019, 8, 9, 0, 0, tzinfo=UTC)


def feed(timeline: str) -> str:
    state: Series = new_series()
    level = "none"
    for hour, char in enumerate(timeline, start=1):
        if char == "_":
            continue
        mm = 0.0 if char == "." else float(char) * 10.0
        obs = RainObservation(
            station_id="RAIN-A0001", observed_at=T0 + timedelta(hours=hour), rain_mm=mm, interval_s=3600
        )
        level = assess_rainstorm(obs, state, "330302006").level
    return level


@pytest.mark.parametrize(
    ("timeline", "expected"),
    [
        pytest.param("4.........", "none", id="below-blue"),
        pytest.param("5...........", "blue", id="blue-edge"),
        pytest.param("2..3", "yellow", id="yellow-6h"),
        pytest.param("..5", "orange", id="orange-3h-edge"),
        pytest.param("55", "red", id="red-3h"),
        pytest.param("5.............", "none", id="rain-leaves-window"),
        pytest.param("2_2_1", "yellow", id="gap-is-not-rain"),
        pytest.param("", "none", id="no-reports"),
    ],
)
def test_rainstorm_levels(timeline: str, expected: str) -> None:
    assert feed(timeline) == expected


def test_redelivered_report_is_not_counted_twice() -> None:
    state: Series = new_series()
    obs = RainObservation(station_id="RAIN-A0001", observed_at=T0, rain_mm=30.0, interval_s=3600)
    first = assess_rainstorm(obs, state, "330302006")
    again = assess_rainstorm(obs, state, "330302006")
    assert first.level == again.level == "none"
    assert len(state["t"]) == 1


def test_late_report_counts_in_its_own_window() -> None:
    """A report arriving after a later one still adds to the windows that contain it."""
    state: Series = new_series()
    later = RainObservation(station_id="G", observed_at=T0 + timedelta(hours=2), rain_mm=30.0, interval_s=3600)
    late = RainObservation(station_id="G", observed_at=T0 + timedelta(hours=1), rain_mm=30.0, interval_s=3600)
    assess_rainstorm(later, state, "330302006")
    result = assess_rainstorm(late, state, "330302006")
    # evaluated at the late report's own time: only its 30 mm lies in (t-3h, t]
    assert result.level == "none"
    follow = RainObservation(station_id="G", observed_at=T0 + timedelta(hours=3), rain_mm=0.0, interval_s=3600)
    assert assess_rainstorm(follow, state, "330302006").level == "orange"


def test_state_is_bounded_by_window_length() -> None:
    state: Series = new_series()
    for minute in range(0, 48 * 60, 5):
        obs = RainObservation(station_id="G", observed_at=T0 + timedelta(minutes=minute), rain_mm=0.1, interval_s=300)
        assess_rainstorm(obs, state, "330302006")
    # 12 h window + 10 min lateness at 5-min reports
    assert len(state["t"]) <= 12 * 12 + 3


def test_evidence_names_window_and_threshold() -> None:
    state: Series = new_series()
    obs = RainObservation(station_id="RAIN-A0009", observed_at=T0, rain_mm=101.0, interval_s=3600)
    result = assess_rainstorm(obs, state, "330302006")
    assert result.level == "red"
    (evidence,) = result.evidence
    assert (evidence.metric, evidence.threshold, evidence.window_s) == ("rain_3h_mm", 100.0, 10800)
