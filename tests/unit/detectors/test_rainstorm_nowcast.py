"""Rainstorm nowcast (radar observed + forecast rain per township): table of timed cases.

Timeline notation, one township, one character per 5-min radar scan (one bucket):
``0``–``9`` = a rain rate of 12·d mm/h at the scan (steady: d mm per 5 min), ``.`` = no
echo, ``_`` = no scan (a gap). The observed rain of an interval is the trapezoid of its two
scans' rates; the first scan adds nothing. The forecast is the same notation per 5-min step
from the last scan (step 0 = now), padded with ``.`` to the 90-min horizon.

    case                         observed (3 h ≥ 50 orange)     forecast     result
    dry                          ......                         .            none
    reached-not-continuing       5 ×12 → 55 mm                  .            none (no forecast rain)
    reached-and-continuing       5 ×12 → 55 mm                  1 …          orange, onset now
    will-reach                   3 ×12 → 33 mm                  2 …          orange, onset +45 min (33+18)
    edge-exactly                 3 ×12 → 33 mm                  1 ×18, .     orange at +85 min (33+17 = 50.0)
    edge-below                   3 ×12 → 33 mm                  1 ×17, .     none (33 + 16.5 = 49.5)
    red                          8 ×12 → 88 mm                  3 …          red, onset +20 min (88+12)
    rain-older-than-window       5 ×12 then 3 h dry             1 …          none (2.5 mm left in window)
    gap-adds-nothing             5 ×6, 3 missing, 5 ×5          1 1 .        none (25 + 20, the 20-min gap
                                                                             adds nothing; + 1 = 46)
    short-gap-counts             5 ×6, 1 missing, 5 ×5          1 1 .        orange now (25 + 10 + 20 = 55:
                                                                             a 10-min gap ≤ max_gap_s counts)
    six-hour-rule-off-by-default 1 ×61 → 60 mm in 5 h           1 …          none; yellow with 12-h rules on
    forecast-alone-is-not-enough ........ → 0 mm                5 … (90 mm)  none (observed < half of 50)
    under-half-observed          2 ×13 → 24 mm                  3 …          none (24 < 25)
    half-observed                2 ×13, 1 → 25.5 mm             3 …          orange, +45 min (25.5 + 2 + 8·3)
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.rules.detectors.convection import TownshipPoints, dbz_to_rain_rate_mm_h
from services.rules.detectors.rainstorm_nowcast import (
    PointSampling,
    RainstormNowcast,
    RainstormNowcastConfig,
    fold_qpe,
    new_qpe_state,
    point_sampling,
    rainstorm_nowcast,
    sample_rates,
)

STEP = 300
HORIZON_STEPS = 19  # 0 … 5400 s
T0 = 1_565_300_000 - 1_565_300_000 % STEP  # on a bucket edge, as scans of a real radar need not be


def rate(char: str) -> float:
    return 0.0 if char in "._" else 12.0 * int(char)


def observe(timeline: str, config: RainstormNowcastConfig | None = None) -> tuple[dict[str, Any], int]:
    """Fold the scans of ``timeline``; the state and the last scan's time."""
    config = config or RainstormNowcastConfig()
    state = new_qpe_state(1)
    scan_s = T0
    for i, char in enumerate(timeline):
        scan_s = T0 + i * STEP
        if char != "_":
            fold_qpe(state, scan_s, np.array([rate(char)]), config)
    return state, scan_s


def nowcast(observed: str, forecast: str, config: RainstormNowcastConfig | None = None) -> RainstormNowcast | None:
    config = config or RainstormNowcastConfig()
    state, scan_s = observe(observed, config)
    steps = forecast.ljust(HORIZON_STEPS, ".")[:HORIZON_STEPS]
    rates = np.array([[rate(c) for c in steps]])
    (result,) = rainstorm_nowcast(state, scan_s, np.array([0]), rates, STEP, config)
    return result


def forever(char: str) -> str:
    return char * HORIZON_STEPS


@pytest.mark.parametrize(
    ("observed", "forecast", "level", "onset_min"),
    [
        pytest.param("......", ".", None, None, id="dry"),
        pytest.param("5" * 12, ".", None, None, id="reached-not-continuing"),
        pytest.param("5" * 12, forever("1"), "orange", 0, id="reached-and-continuing"),
        pytest.param("3" * 12, forever("2"), "orange", 45, id="will-reach"),
        pytest.param("3" * 12, "1" * 18, "orange", 85, id="edge-exactly"),
        pytest.param("3" * 12, "1" * 17, None, None, id="edge-below"),
        pytest.param("8" * 12, forever("3"), "red", 20, id="red"),
        pytest.param("5" * 12 + "." * 36, forever("1"), None, None, id="rain-older-than-window"),
        pytest.param("5" * 6 + "___" + "5" * 5, "11", None, None, id="gap-adds-nothing"),
        pytest.param("5" * 6 + "_" + "5" * 5, "11", "orange", 0, id="short-gap-counts"),
        pytest.param("1" * 61, forever("1"), None, None, id="six-hour-rule-off-by-default"),
        pytest.param("." * 12, forever("5"), None, None, id="forecast-alone-is-not-enough"),
        pytest.param("2" * 13, forever("3"), None, None, id="under-half-observed"),
        pytest.param("2" * 13 + "1", forever("3"), "orange", 45, id="half-observed"),
    ],
)
def test_nowcast_table(observed: str, forecast: str, level: str | None, onset_min: int | None) -> None:
    result = nowcast(observed, forecast)
    if level is None:
        assert result is None
        return
    assert result is not None
    assert onset_min is not None
    assert result.level == level
    last_scan = T0 + (len(observed) - 1) * STEP
    assert result.onset_s - last_scan == 60 * onset_min
    assert result.total_mm >= result.threshold_mm
    assert result.total_mm == pytest.approx(result.observed_mm + result.forecast_mm, abs=0.11)
    assert result.forecast_mm >= 1.0


def test_evidence_of_the_highest_total() -> None:
    """55 mm observed and 1 mm per 5 min forecast: the total peaks at the horizon, 55 + 18."""
    result = nowcast("5" * 12, forever("1"))
    assert result == RainstormNowcast(
        level="orange",
        threshold_mm=50.0,
        window_s=10800,
        total_mm=73.0,
        observed_mm=55.0,
        forecast_mm=18.0,
        lead_s=5400,
        onset_s=T0 + 11 * STEP,
    )


def test_the_six_hour_rule_when_configured() -> None:
    """60 mm over 5 h: 36 mm in 3 h (no orange), but 60 + 18 in the 6-h window ending at +90 min."""
    config = RainstormNowcastConfig(max_window_s=12 * 3600)
    result = nowcast("1" * 61, forever("1"), config)
    assert result is not None
    assert (result.level, result.window_s, result.threshold_mm) == ("yellow", 6 * 3600, 50.0)
    assert result.observed_mm == 60.0


def test_no_rule_is_nowcast_when_the_horizon_is_longer_than_its_window() -> None:
    config = RainstormNowcastConfig(max_window_s=12 * 3600)
    assert [r.level for r in config.nowcast_rules(5400)] == ["red", "orange", "yellow", "blue"]
    assert [r.level for r in config.nowcast_rules(4 * 3600)] == ["yellow", "blue"]
    assert [r.level for r in RainstormNowcastConfig().nowcast_rules(5400)] == ["red", "orange"]


def test_a_forecast_alone_warns_when_configured_to() -> None:
    """``min_observed_fraction = 0``: the "will reach" half on the forecast alone. 60 mm/h
    forecast (step 0 included): 5 mm per step, 50 mm at +50 min, 90 by +90."""
    result = nowcast("." * 12, forever("5"), RainstormNowcastConfig(min_observed_fraction=0.0))
    assert result is not None
    assert (result.level, result.observed_mm, result.forecast_mm) == ("orange", 0.0, 90.0)
    assert result.onset_s == T0 + 11 * STEP + 50 * 60


def test_min_forecast_is_configurable() -> None:
    """'Rain likely to continue' is a forecast of at least ``min_forecast_mm``."""
    assert nowcast("5" * 12, "11") is not None  # 1 mm in the first 5 min
    assert nowcast("5" * 12, "1") is None  # 12 mm/h now, none in 5 min: 0.5 mm
    assert nowcast("5" * 12, "11", RainstormNowcastConfig(min_forecast_mm=2.0)) is None


def test_redelivered_and_late_scans_add_nothing() -> None:
    config = RainstormNowcastConfig()
    state, scan_s = observe("5" * 12, config)
    before = json.dumps(state, sort_keys=True)
    fold_qpe(state, scan_s, np.array([120.0]), config)  # the same scan again
    fold_qpe(state, scan_s - STEP, np.array([120.0]), config)  # an older one
    assert json.dumps(state, sort_keys=True) == before


def test_state_is_bounded_by_the_window_and_strict_json() -> None:
    config = RainstormNowcastConfig()
    state, _ = observe("5" * 400, config)  # 33 h of rain
    assert len(state["t"]) <= config.max_window_s // config.bucket_s + 2
    assert json.loads(json.dumps(state, allow_nan=False)) == state
    dry, _ = observe("5" * 12 + "." * 60, config)
    assert dry["prev"] is None  # a dry scan stores no rates
    assert all(mm is not None for mm in dry["mm"])  # buckets with rain only


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from("0123456789._"), min_size=1, max_size=60),
    st.lists(st.sampled_from("0123456789."), min_size=1, max_size=HORIZON_STEPS),
    st.integers(min_value=0, max_value=9),
)
def test_property_more_forecast_rain_never_lowers_the_level(
    observed: list[str], forecast: list[str], more: int
) -> None:
    ranks = {None: 0, "orange": 3, "red": 4}
    base = nowcast("".join(observed), "".join(forecast))
    wetter = nowcast("".join(observed), "".join(str(min(9, int(rate(c) / 12) + more)) for c in forecast))
    assert ranks[wetter.level if wetter else None] >= ranks[base.level if base else None]
    if base is not None:
        assert base.onset_s >= T0 + (len(observed) - 1) * STEP  # never in the past


# ── sampling the township from the scan ─────────────────────────────────────────────────────

CELL = 0.01


def grid_points(*lonlat: tuple[float, float]) -> TownshipPoints:
    return TownshipPoints.from_rows([(f"33030200{i}", lon, lat) for i, (lon, lat) in enumerate(lonlat)])


def test_sampling_averages_the_cells_around_the_point() -> None:
    """1 km around a point at 0.01° (1.1 km) cells: the 3 × 3 block; clipped at the edge; none off the grid."""
    towns = grid_points((120.055, 27.055), (120.005, 27.005), (121.5, 27.5))
    sampling: PointSampling = point_sampling(towns, 120.0, 27.0, CELL, 10, 10, 1.0)
    assert sampling.counts.tolist() == [9.0, 4.0, 0.0]
    dbz = np.full((10, 10), np.nan)
    dbz[5, 5] = 45.0  # one cell of the first township's block
    rates = sample_rates(dbz, sampling, dbz_to_rain_rate_mm_h)
    assert rates[0] == pytest.approx(dbz_to_rain_rate_mm_h(45.0) / 9)
    assert rates[1] == rates[2] == 0.0  # no echo is no rain; off the grid, nothing
    assert point_sampling(towns, 120.0, 27.0, CELL, 10, 10, 1.0) is sampling  # cached per geometry
