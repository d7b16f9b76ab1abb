"""Short-duration heavy rain per gauge: table of timestamped cases, plus the nowcast variant.

Timeline notation: one character per 10-min report (the rain of the 10 min ending then);
``0``–``9`` = that many mm, ``A``–``Z`` = 10–35 mm, ``.`` = 0 mm, ``_`` = no report (gap).
The level is the one after the last report, over the rolling 60 min ending there.

    case                   10-min reports →  60-min sum   level
    just-below-blue        9910              19 mm        none
    blue-edge              9911              20 mm        blue
    yellow-edge            99912             30 mm        yellow
    orange-edge            ZF                50 mm        orange
    red-edge               ZZA               80 mm        red
    window-edge-inside     Z.....            35 mm        yellow  (Z ended 50 min ago)
    window-edge-outside    Z......            0 mm        none    (Z ended 60 min ago: out)
    gap-is-not-rain        9_9_2             20 mm        blue    (coverage 0.5)
    one-minute-burst       see below          6 mm        none    (a burst is not an hour)

    late report:           reports at 10, 20, 40 min; then the 30-min one arrives late
    late, whole window:    25 mm at 10 min, 0 at 75 min, then the 65-min report: blue
    too-late report:       older than newest − allowed lateness → None, state untouched
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.common import LEVEL_RANK
from schemas.observations import RainObservation
from services.rules.detectors.common import Table
from services.rules.detectors.health import RAIN_HEALTH, assess_health, downgrade, health_value, new_health_state
from services.rules.detectors.short_heavy_rain import (
    ShortHeavyRainConfig,
    ShortHeavyRainThresholds,
    assess_short_heavy_rain,
    assess_short_heavy_rain_forecast,
    new_gauge_state,
)

T0 = datetime(2019, 8, 9, 6, 0, tzinfo=UTC)
TOWN = "330302006"
GAUGE = "RAIN-A0001"


def mm_of(char: str) -> float:
    if char == ".":
        return 0.0
    if char.isdigit():
        return float(char)
    return float(ord(char) - ord("A") + 10)


def rain(minute: float, mm: float, interval_s: int = 600, station: str = GAUGE) -> RainObservation:
    return RainObservation(
        station_id=station, observed_at=T0 + timedelta(minutes=minute), rain_mm=mm, interval_s=interval_s
    )


def feed(timeline: str, state: Table | None = None) -> tuple[str, dict[str, float]]:
    state = new_gauge_state() if state is None else state
    level, evidence = "none", {}
    for index, char in enumerate(timeline, start=1):
        if char == "_":
            continue
        result = assess_short_heavy_rain(rain(10 * index, mm_of(char)), state, TOWN)
        assert result is not None
        level, evidence = result.level, {e.metric: e.value for e in result.evidence}
    return level, evidence


@pytest.mark.parametrize(
    ("timeline", "expected"),
    [
        pytest.param("9910", "none", id="just-below-blue"),
        pytest.param("9911", "blue", id="blue-edge"),
        pytest.param("99912", "yellow", id="yellow-edge"),
        pytest.param("ZF", "orange", id="orange-edge"),
        pytest.param("ZZA", "red", id="red-edge"),
        pytest.param("Z.....", "yellow", id="window-edge-inside"),
        pytest.param("Z......", "none", id="window-edge-outside"),
        pytest.param("9_9_2", "blue", id="gap-is-not-rain"),
        pytest.param("", "none", id="no-reports"),
    ],
)
def test_observed_levels(timeline: str, expected: str) -> None:
    assert feed(timeline)[0] == expected


def test_evidence_names_sum_threshold_and_coverage_after_a_gap() -> None:
    level, evidence = feed("9_9_2")
    assert level == "blue"
    assert evidence == {"rain_1h_mm": 20.0, "window_coverage": 0.5}


def test_one_minute_burst_is_not_an_hour_of_rain() -> None:
    """A 6 mm minute is 360 mm/h as a rate, but SHR is about the hourly amount."""
    state = new_gauge_state()
    result = assess_short_heavy_rain(rain(1, 6.0, interval_s=60), state, TOWN)
    assert result is not None
    assert result.level == "none"


def test_late_report_counts_in_its_own_window_and_later_ones() -> None:
    state = new_gauge_state()
    for minute, mm in ((10, 9.0), (20, 9.0), (40, 0.0)):
        assess_short_heavy_rain(rain(minute, mm), state, TOWN)
    late = assess_short_heavy_rain(rain(30, 12.0), state, TOWN)
    assert late is not None
    assert late.level == "yellow"  # (−30, 30]: 9 + 9 + 12 = 30 mm, assessed at its own time
    assert late.assessed_at == T0 + timedelta(minutes=30)
    follow = assess_short_heavy_rain(rain(50, 0.0), state, TOWN)
    assert follow is not None
    assert follow.level == "yellow"  # the late 12 mm is in the window ending at 50 min


def test_late_report_still_sees_its_whole_window() -> None:
    """State keeps window + lateness, so a late report's hour is complete, not truncated."""
    state = new_gauge_state()
    assess_short_heavy_rain(rain(10, 25.0), state, TOWN)
    assess_short_heavy_rain(rain(75, 0.0), state, TOWN)
    late = assess_short_heavy_rain(rain(65, 0.0), state, TOWN)  # 10 min late; window (5, 65] holds 25 mm
    assert late is not None
    assert late.level == "blue"


def test_too_late_report_is_dropped_and_state_untouched() -> None:
    config = ShortHeavyRainConfig(allowed_lateness_s=600)
    state = new_gauge_state()
    assess_short_heavy_rain(rain(60, 1.0), state, TOWN, config)
    before = json.dumps(state)
    assert assess_short_heavy_rain(rain(49, 30.0), state, TOWN, config) is None
    assert json.dumps(state) == before
    kept = assess_short_heavy_rain(rain(50, 30.0), state, TOWN, config)  # exactly at the lateness edge
    assert kept is not None
    assert kept.level == "yellow"


def test_redelivery_does_not_double_count() -> None:
    state = new_gauge_state()
    first = assess_short_heavy_rain(rain(10, 15.0), state, TOWN)
    again = assess_short_heavy_rain(rain(10, 15.0), state, TOWN)
    assert first == again
    assert first is not None
    assert first.level == "none"  # 15 mm once, not 30 mm
    assert state["t"] == [int((T0 + timedelta(minutes=10)).timestamp())]


def test_stuck_gauge_is_counted_here_but_suppressed_by_health() -> None:
    """The detector trusts its input; the health check is what stops a stuck gauge warning."""
    state, health_state = new_gauge_state(), new_health_state()
    result = health = None
    for minute in range(1, 61):
        obs = rain(minute, 0.5, interval_s=60)
        result = assess_short_heavy_rain(obs, state, TOWN)
        health = assess_health(GAUGE, obs.observed_at, health_value(obs), health_state, RAIN_HEALTH)
    assert result is not None
    assert health is not None
    assert result.level == "yellow"  # 60 × 0.5 mm = 30 mm
    assert health.status == "flatline"
    assert downgrade(result, health).level == "none"


@pytest.mark.parametrize(
    ("forecast_mm", "expected_level", "threshold"),
    [
        pytest.param(19.9, "none", None, id="forecast-below"),
        pytest.param(20.0, "blue", 20.0, id="forecast-blue-edge"),
        pytest.param(49.9, "yellow", 30.0, id="forecast-yellow"),
        pytest.param(50.0, "orange", 50.0, id="forecast-orange-edge"),
        pytest.param(120.0, "red", 80.0, id="forecast-red"),
    ],
)
def test_forecast_levels(forecast_mm: float, expected_level: str, threshold: float | None) -> None:
    onset = T0 + timedelta(minutes=55)
    result = assess_short_heavy_rain_forecast(TOWN, "RADAR-WZ", T0, forecast_mm, onset)
    assert result.level == expected_level
    assert result.certainty == "Likely"
    if threshold is None:
        assert result.onset_at is None
        assert result.evidence == ()
    else:
        assert result.onset_at == onset
        (evidence,) = result.evidence
        assert (evidence.basis, evidence.threshold, evidence.metric) == ("forecast", threshold, "rain_1h_forecast_mm")


def test_forecast_onset_in_the_past_is_clamped_to_issue_time() -> None:
    result = assess_short_heavy_rain_forecast(TOWN, "RADAR-WZ", T0, 35.0, T0 - timedelta(minutes=5))
    assert result.onset_at == T0


def test_thresholds_must_increase() -> None:
    with pytest.raises(ValueError, match="increase"):
        ShortHeavyRainThresholds(blue_mm=30.0, yellow_mm=20.0)


def test_disabled_level_is_skipped() -> None:
    config = ShortHeavyRainConfig(thresholds=ShortHeavyRainThresholds(red_mm=None))
    result = assess_short_heavy_rain(rain(10, 150.0, interval_s=3600), new_gauge_state(), TOWN, config)
    assert result is not None
    assert result.level == "orange"


reports = st.lists(
    st.tuples(st.integers(min_value=1, max_value=240), st.floats(min_value=0.0, max_value=6.0)),
    min_size=1,
    max_size=60,
)


def _levels(sequence: list[tuple[int, float]], repeat: int = 1, scale: float = 1.0) -> list[str]:
    state = new_gauge_state()
    config = ShortHeavyRainConfig(allowed_lateness_s=10**6)
    out: list[str] = []
    for minute, mm in sorted(sequence):
        obs = rain(minute, min(mm * scale, 6.6), interval_s=60)
        results = [assess_short_heavy_rain(obs, state, TOWN, config) for _ in range(repeat)]
        assert all(r is not None and r == results[0] for r in results)
        out.append(results[-1].level if results[-1] is not None else "dropped")
    return out


@settings(max_examples=60, deadline=None)
@given(reports)
def test_property_idempotent_under_redelivery(sequence: list[tuple[int, float]]) -> None:
    assert _levels(sequence, repeat=2) == _levels(sequence, repeat=1)


@settings(max_examples=60, deadline=None)
@given(reports, st.floats(min_value=1.0, max_value=3.0))
def test_property_more_rain_never_lowers_the_level(sequence: list[tuple[int, float]], factor: float) -> None:
    base = _levels(sequence)
    more = _levels(sequence, scale=factor)
    assert all(LEVEL_RANK[m] >= LEVEL_RANK[b] for b, m in zip(base, more, strict=True))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=6.0), min_size=1, max_size=400))
def test_property_state_bounded_and_json_compatible(amounts: list[float]) -> None:
    config = ShortHeavyRainConfig()
    state = new_gauge_state()
    for minute, mm in enumerate(amounts, start=1):
        assess_short_heavy_rain(rain(minute, mm, interval_s=60), state, TOWN, config)
    # window + lateness at one report per minute
    assert len(state["t"]) <= (config.window_s + config.allowed_lateness_s) // 60
    assert json.loads(json.dumps(state)) == state
