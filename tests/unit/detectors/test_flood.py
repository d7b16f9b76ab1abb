"""Water-level and tide gauges: table of timestamped cases.

River gauge under test: warning 3.0 m, guaranteed 3.6 m, record 4.2 m, so (§3.2)
blue ≥ 2.7 (near warning), yellow ≥ 3.0, orange ≥ 3.6, red ≥ 4.2. One reading every 5 min;
``↗ r`` = rising at r m/h. The level is the one after the last reading.

    case              readings                    rate    projection          level
    steady-below      2.5 ×7                      0       —                   none
    near-warning      2.7 ×3                      —       —                   blue
    at-warning        3.0 ×3                      —       —                   yellow
    guaranteed        3.6 ×3                      —       —                   orange
    record            4.2 ×3                      —       —                   red
    rate-blue         1.0 ↗ 0.35 for 30 min       blue    2.7 in 4.4 h: no    blue
    rate-yellow       1.0 ↗ 0.6                   yellow  blue only           yellow
    projected-yellow  2.0 ↗ 0.4 → 2.2             blue    3.0 in 2 h          yellow, Likely, onset +2 h
    falling           2.69 ↘ 0.4                  —       —                   none
    gap-no-rate       1.0 … (2 h gap) … 2.0       none    none                none
    one-spike         2.0 ×7, 6th reads 2.9       0       —                   none  (Theil–Sen)
    stuck-sensor      2.5 ×12                     0       —                   none

Tide gauge (hazard ``tide``), warning tides 3.7 / 4.0 / 4.3 / 4.6 m, semidiurnal cosine:

    high water 3.9 m, 30 min before HW   tidal (M2) fit: blue (turns below 4.0)   linear: a false alarm
    high water 4.2 m, 60 min before HW   tidal fit: yellow Likely, onset at the real crossing ± 3 min
    high water 4.2 m plus 0.5 m surge    the offset absorbs the surge: red Likely in ≈ 25 min
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.common import LEVEL_RANK
from schemas.observations import WaterLevelObservation
from services.rules.detectors.flood import (
    GaugeLevels,
    WaterGaugeConfig,
    assess_water_level,
    new_gauge_state,
    river_gauge,
    tide_gauge,
)

T0 = datetime(2016, 9, 28, 0, 0, tzinfo=UTC)
TOWN = "330326100"
GAUGE = "WL-SHUITOU"
RIVER = river_gauge(warning_level_m=3.0, guaranteed_level_m=3.6, historical_max_m=4.2)
TIDE = tide_gauge(3.7, 4.0, 4.3, 4.6)


def reading(minute: float, level_m: float) -> WaterLevelObservation:
    return WaterLevelObservation(station_id=GAUGE, observed_at=T0 + timedelta(minutes=minute), level_m=level_m)


def ramp(start_m: float, rate_m_per_h: float, n: int = 7, step_min: int = 5) -> list[tuple[float, float]]:
    return [(i * step_min, start_m + rate_m_per_h * i * step_min / 60) for i in range(n)]


def feed(series: Sequence[tuple[float, float]], gauge: WaterGaugeConfig = RIVER) -> Any:
    state = new_gauge_state()
    result = None
    for minute, level in series:
        result = assess_water_level(reading(minute, level), state, TOWN, gauge)
    return result


def flat(level: float, n: int = 3) -> list[tuple[float, float]]:
    return [(5 * i, level) for i in range(n)]


SPIKE = [(5 * i, 2.9 if i == 5 else 2.0) for i in range(7)]  # least squares would read 0.77 m/h


@pytest.mark.parametrize(
    ("series", "expected", "certainty"),
    [
        pytest.param(flat(2.5, 7), "none", "Observed", id="steady-below"),
        pytest.param(flat(2.7), "blue", "Observed", id="near-warning"),
        pytest.param(flat(3.0), "yellow", "Observed", id="at-warning"),
        pytest.param(flat(3.6), "orange", "Observed", id="guaranteed"),
        pytest.param(flat(4.2), "red", "Observed", id="record"),
        pytest.param(ramp(1.0, 0.35), "blue", "Observed", id="rate-blue"),
        pytest.param(ramp(1.0, 0.6), "yellow", "Observed", id="rate-yellow"),
        pytest.param(ramp(2.0, 0.4), "yellow", "Likely", id="projected-yellow"),
        pytest.param(ramp(2.69, -0.4), "none", "Observed", id="falling"),
        pytest.param([(0, 1.0), (120, 2.0)], "none", "Observed", id="gap-no-rate"),
        pytest.param(SPIKE, "none", "Observed", id="one-spike"),
        pytest.param(flat(2.5, 12), "none", "Observed", id="stuck-sensor"),
    ],
)
def test_river_levels(series: list[tuple[float, float]], expected: str, certainty: str) -> None:
    result = feed(series)
    assert result.hazard == "flood"
    assert (result.level, result.certainty) == (expected, certainty)
    assert (result.onset_at is not None) is (certainty == "Likely")


def test_projection_onset_is_the_crossing_time() -> None:
    result = feed(ramp(2.0, 0.4))
    assert result.onset_at is not None
    lead = result.onset_at - result.assessed_at
    assert abs(lead - timedelta(hours=2)) <= timedelta(minutes=2)  # 2.2 → 3.0 m at 0.4 m/h
    projected = next(e for e in result.evidence if e.metric == "projected_level_m")
    assert (projected.basis, projected.threshold) == ("forecast", 3.0)


def test_gap_reports_no_rate() -> None:
    result = feed([(0, 1.0), (120, 2.0)])
    assert "rise_rate_m_per_h" not in {e.metric for e in result.evidence}


def test_spike_does_not_become_a_rate() -> None:
    result = feed(SPIKE)
    rate = next(e.value for e in result.evidence if e.metric == "rise_rate_m_per_h")
    assert rate == pytest.approx(0.0, abs=1e-9)


def test_plain_network_rate_threshold_is_configurable() -> None:
    slow = RIVER.model_copy(update={"rate_of_rise": RIVER.rate_of_rise.model_copy(update={"blue_m_per_h": 0.1})})  # type: ignore[union-attr]  # set in river_gauge
    assert feed(ramp(1.0, 0.15), slow).level == "blue"
    assert feed(ramp(1.0, 0.15)).level == "none"


def tide_series(high_water_m: float, minutes_before_hw: int, mean_m: float = 1.9) -> list[tuple[float, float]]:
    amplitude = high_water_m - mean_m
    period_min = 12.42 * 60
    end = 13 * 60  # the harmonic is fitted over one whole M2 period
    return [
        (m, mean_m + amplitude * math.cos(2 * math.pi * (m - end - minutes_before_hw) / period_min))
        for m in range(0, end + 1, 5)
    ]


def test_tide_turning_below_warning_is_not_projected_over_it() -> None:
    series = tide_series(3.9, 30)
    tidal = feed(series, TIDE)
    assert tidal.hazard == "tide"
    assert (tidal.level, tidal.certainty) == ("blue", "Observed")
    linear = feed(series, TIDE.model_copy(update={"projection": "linear", "projection_fit_window_s": 1800}))
    assert linear.certainty == "Likely"  # why tides are not projected with a line
    assert LEVEL_RANK[linear.level] >= LEVEL_RANK["yellow"]


def test_tide_projected_before_the_crossing() -> None:
    series = tide_series(4.2, 60)
    result = feed(series, TIDE)
    assert (result.level, result.certainty) == ("yellow", "Likely")
    # true crossing of 4.0 m: cos x = 2.1/2.3 → 0.831 h before high water → 10.1 min from now
    true_crossing = result.assessed_at + timedelta(minutes=60 - 0.831 * 60)
    assert result.onset_at is not None
    assert abs(result.onset_at - true_crossing) <= timedelta(minutes=3)


def test_a_still_reach_with_noise_is_not_projected_as_a_tide() -> None:
    # the Wen-Rui canal (warning 3.12 m) is judged as a tidal reach; it stands at 2.98 m
    # (blue, observed) with a 5 cm sluice oscillation of 3 h and ±2 cm noise. A harmonic
    # fitted over a few hours reads the wiggle as the M2 tide's flank and projects it over
    # the warning level; fitted over a whole period it cannot
    import numpy as np

    canal = TIDE.model_copy(update={"hazard": "flood", "levels": river_gauge(3.12, 3.62, 4.12).levels})
    rng = np.random.default_rng(5)
    series = [
        (m, 2.98 + 0.05 * math.sin(2 * math.pi * m / 180) + float(rng.normal(0.0, 0.02)))
        for m in range(0, 13 * 60 + 1, 5)
    ]
    period = {(r.level, r.certainty) for r in (feed(series[: k + 1], canal) for k in range(80, len(series)))}
    assert period == {("blue", "Observed")}
    short = canal.model_copy(update={"projection_fit_window_s": 3 * 3600})
    projected = {feed(series[: k + 1], short).certainty for k in range(40, len(series))}
    assert "Likely" in projected, "the short fit is what projected noise (why the window is a period)"


def test_surge_on_top_of_the_tide_is_projected() -> None:
    series = [(m, level + 0.5) for m, level in tide_series(4.2, 60)]  # HW 4.7 m, now 4.41 m (orange)
    result = feed(series, TIDE)
    assert (result.level, result.certainty) == ("red", "Likely")
    assert result.onset_at is not None
    # 4.6 m: cos x = (4.6 − 2.4) / 2.3 → 0.586 h before high water → 24.9 min from now
    assert abs(result.onset_at - result.assessed_at - timedelta(minutes=24.9)) <= timedelta(minutes=3)


def test_tide_gauge_has_no_rate_rule() -> None:
    assert TIDE.rate_of_rise is None
    assert feed(ramp(1.0, 1.2), TIDE).level == "none"


def test_late_reading_assessed_at_its_own_time_too_late_dropped() -> None:
    state = new_gauge_state()
    assess_water_level(reading(20, 3.1), state, TOWN, RIVER)
    late = assess_water_level(reading(15, 2.8), state, TOWN, RIVER)
    assert late is not None
    assert (late.level, late.assessed_at) == ("blue", T0 + timedelta(minutes=15))
    snapshot = json.dumps(state)
    assert assess_water_level(reading(5, 3.9), state, TOWN, RIVER) is None
    assert json.dumps(state) == snapshot


def test_redelivery_is_idempotent() -> None:
    state = new_gauge_state()
    for minute, level in ramp(2.0, 0.4):
        first = assess_water_level(reading(minute, level), state, TOWN, RIVER)
        snapshot = json.dumps(state)
        assert assess_water_level(reading(minute, level), state, TOWN, RIVER) == first
        assert json.dumps(state) == snapshot


def test_state_is_bounded() -> None:
    state = new_gauge_state()
    for minute in range(0, 24 * 60, 5):
        assess_water_level(reading(minute, 2.0), state, TOWN, RIVER)
    assert len(state["t"]) <= (1800 + 600) // 300 + 1


def test_gauge_levels_validation() -> None:
    with pytest.raises(ValueError, match="increase"):
        GaugeLevels(blue_m=3.0, yellow_m=2.0)
    with pytest.raises(ValueError, match="at least one"):
        GaugeLevels()


series_strategy = st.lists(st.floats(min_value=-0.3, max_value=0.3), min_size=1, max_size=24).map(
    lambda steps: [(5 * i, 2.0 + sum(steps[: i + 1])) for i in range(len(steps))]
)


@settings(max_examples=80, deadline=None)
@given(series_strategy, st.floats(min_value=0.0, max_value=2.0))
def test_property_higher_water_never_lowers_the_level(series: list[tuple[float, float]], offset: float) -> None:
    base = feed(series)
    higher = feed([(m, level + offset) for m, level in series])
    assert LEVEL_RANK[higher.level] >= LEVEL_RANK[base.level]


@settings(max_examples=80, deadline=None)
@given(series_strategy)
def test_property_projection_onset_within_horizon_and_idempotent(series: list[tuple[float, float]]) -> None:
    state, twice = new_gauge_state(), new_gauge_state()
    for minute, level in series:
        result = assess_water_level(reading(minute, level), state, TOWN, RIVER)
        assess_water_level(reading(minute, level), twice, TOWN, RIVER)
        again = assess_water_level(reading(minute, level), twice, TOWN, RIVER)
        assert result == again
        assert result is not None
        if result.onset_at is not None:
            assert (
                result.assessed_at
                < result.onset_at
                <= result.assessed_at + timedelta(seconds=RIVER.projection_horizon_s)
            )
