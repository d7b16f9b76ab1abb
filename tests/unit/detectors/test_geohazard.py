"""Geo-hazard monitoring point: effective rainfall, deformation, roll-up.

Rain timelines: one report a day at 00:00 UTC carrying the previous 24 h of rain, listed
oldest first; K = 0.8, so R_eff = Σ 0.8^i · R_i with R_0 the last report.

    case                     daily rain (mm) →        R_eff        level
    dry                      0 0 0                     0            none
    blue-edge                100                     100            blue
    antecedent-decays        100 0                    80            none
    antecedent-adds          100 30                  110            blue
    three-days-yellow        70 60 60                152.8          yellow
    window-21-days (K = 1)   150 then 20 dry days    150            yellow
    window-22-days (K = 1)   150 then 21 dry days      0            none  (left the window)

Deformation timelines: hourly cumulative displacement over 30 h; v_c = 0.5 mm/d unless said.

    case                       displacement                     v (mm/d)  α      level
    at-rest-noise              0 ± 1 mm                          ≈ 0      —      none  (gate)
    creep-below-gate           1 mm/d                            1        63°    none  (gate 2 mm/d)
    velocity-yellow (v_c=2)    6 mm/d                            6        71.6°  yellow
    angle-orange               3 mm/d                            3        80.5°  orange
    angle-red                  12 mm/d                           12       87.6°  red
    one-spike                  0 mm with one +80 mm epoch        ≈ 0      —      none  (Theil–Sen)
    gap                        two readings 3 h apart            —        —      none  (no velocity)
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.common import LEVEL_RANK
from schemas.observations import GeoHazardObservation
from services.rules.detectors.geohazard import (
    GeoHazardPointThresholds,
    LevelValues,
    RollupPolicy,
    assess_geohazard,
    effective_rainfall_mm,
    new_point_state,
    tangent_angle_deg,
    township_geohazard_rollup,
)

T0 = datetime(2019, 8, 1, 0, 0, tzinfo=UTC)
TOWN = "330324100"
POINT = "GEO-YJ-0042"


def report(hours: float, displacement_mm: float = 0.0, rain_mm: float | None = 0.0) -> GeoHazardObservation:
    return GeoHazardObservation(
        station_id=POINT,
        observed_at=T0 + timedelta(hours=hours),
        displacement_mm=displacement_mm,
        rain_mm=rain_mm,
        interval_s=3600,
    )


def evidence_of(result: Any) -> dict[str, float]:
    return {e.metric: e.value for e in result.evidence}


def feed_daily(rain: list[float], config: GeoHazardPointThresholds) -> Any:
    state = new_point_state()
    result = None
    for day, mm in enumerate(rain):
        result = assess_geohazard(report(24 * day, rain_mm=mm), state, TOWN, config)
    return result


K1 = GeoHazardPointThresholds(decay_factor=1.0)


@pytest.mark.parametrize(
    ("daily_rain", "config", "expected_reff", "expected_level"),
    [
        pytest.param([0, 0, 0], GeoHazardPointThresholds(), 0.0, "none", id="dry"),
        pytest.param([100], GeoHazardPointThresholds(), 100.0, "blue", id="blue-edge"),
        pytest.param([100, 0], GeoHazardPointThresholds(), 80.0, "none", id="antecedent-decays"),
        pytest.param([100, 30], GeoHazardPointThresholds(), 110.0, "blue", id="antecedent-adds"),
        pytest.param([70, 60, 60], GeoHazardPointThresholds(), 152.8, "yellow", id="three-days-yellow"),
        pytest.param([150] + [0] * 20, K1, 150.0, "yellow", id="window-21-days"),
        pytest.param([150] + [0] * 21, K1, 0.0, "none", id="window-22-days"),
        pytest.param([300, 0, 0], GeoHazardPointThresholds(decay_factor=0.9), 243.0, "orange", id="k-0.9"),
    ],
)
def test_effective_rainfall_levels(
    daily_rain: list[float], config: GeoHazardPointThresholds, expected_reff: float, expected_level: str
) -> None:
    result = feed_daily(daily_rain, config)
    assert evidence_of(result)["effective_rain_mm"] == pytest.approx(expected_reff)
    assert result.level == expected_level


def test_effective_rainfall_formula() -> None:
    assert effective_rainfall_mm([10.0, 10.0, 10.0], 0.8) == pytest.approx(10 + 8 + 6.4)


def test_hourly_reports_bin_into_rolling_days() -> None:
    """Rain in the last 24 h weighs 1 whatever the clock says; the day before weighs K."""
    state = new_point_state()
    result = None
    for hour in range(1, 49):
        result = assess_geohazard(report(hour, rain_mm=2.0 if hour <= 24 else 3.0), state, TOWN)
    assert result is not None
    assert evidence_of(result)["effective_rain_mm"] == pytest.approx(72.0 + 0.8 * 48.0)


def deformation(velocity_mm_per_day: float, hours: int = 30, noise: list[float] | None = None) -> list[float]:
    return [velocity_mm_per_day * h / 24 + (noise[h % len(noise)] if noise else 0.0) for h in range(hours)]


def feed_deformation(series: list[float], config: GeoHazardPointThresholds, step_h: float = 1.0) -> Any:
    state = new_point_state()
    result = None
    for i, disp in enumerate(series):
        result = assess_geohazard(report(i * step_h, displacement_mm=disp), state, TOWN, config)
    return result


BASE = GeoHazardPointThresholds()
SLOW_POINT = GeoHazardPointThresholds(constant_velocity_mm_per_day=2.0)
SPIKED = [0.0] * 26 + [80.0] + [0.0] * 3  # least squares would read ≈ 14 mm/d


@pytest.mark.parametrize(
    ("series", "config", "expected_level", "gated"),
    [
        pytest.param(deformation(0.0, noise=[1.0, -1.0, 0.5, -0.5]), BASE, "none", True, id="at-rest-noise"),
        pytest.param(deformation(1.0), BASE, "none", True, id="creep-below-gate"),
        pytest.param(deformation(6.0), SLOW_POINT, "yellow", False, id="velocity-yellow"),
        pytest.param(deformation(3.0), BASE, "orange", False, id="angle-orange"),
        pytest.param(deformation(12.0), BASE, "red", False, id="angle-red"),
        pytest.param(deformation(25.0), SLOW_POINT, "red", False, id="velocity-red"),
        pytest.param(SPIKED, BASE, "none", True, id="one-spike-ignored"),
    ],
)
def test_deformation_levels(
    series: list[float], config: GeoHazardPointThresholds, expected_level: str, gated: bool
) -> None:
    result = feed_deformation(series, config)
    assert result.level == expected_level
    evidence = {e.metric: e for e in result.evidence}
    velocity = evidence["velocity_mm_per_day"]
    assert (evidence["tangent_angle_deg"].threshold is None) is gated  # a gated angle is compared with nothing
    angle = evidence["tangent_angle_deg"].value
    assert angle == pytest.approx(tangent_angle_deg(velocity.value, config.constant_velocity_mm_per_day), abs=0.01)


def test_tangent_angle_is_45_at_constant_velocity() -> None:
    assert tangent_angle_deg(0.5, 0.5) == pytest.approx(45.0)
    assert tangent_angle_deg(0.5 * math.tan(math.radians(85)), 0.5) == pytest.approx(85.0)


def test_gap_gives_no_velocity() -> None:
    result = feed_deformation([0.0, 30.0], BASE, step_h=3.0)
    assert result.level == "none"
    assert "velocity_mm_per_day" not in evidence_of(result)


def test_final_level_is_max_of_rain_and_deformation() -> None:
    state = new_point_state()
    result = None
    for hour in range(30):
        # 130 mm in the first hour (29 h later: 0.8 × 130 = 104, blue) and 3 mm/d creep (orange by angle)
        result = assess_geohazard(report(hour, 3.0 * hour / 24, 130.0 if hour == 0 else 0.0), state, TOWN)
    assert result is not None
    assert result.level == "orange"
    evidence = {e.metric: e for e in result.evidence}
    assert evidence["effective_rain_mm"].value == pytest.approx(104.0)
    assert evidence["effective_rain_mm"].threshold == 100.0  # rain alone says blue
    assert evidence["tangent_angle_deg"].threshold == 80.0


def test_missing_rain_field_is_not_zero_rain_but_counts_nothing() -> None:
    state = new_point_state()
    assess_geohazard(report(0, rain_mm=120.0), state, TOWN)
    result = assess_geohazard(report(1, rain_mm=None), state, TOWN)
    assert result is not None
    assert evidence_of(result)["effective_rain_mm"] == pytest.approx(120.0)


def test_late_report_within_lateness_counts_too_late_is_dropped() -> None:
    config = GeoHazardPointThresholds(allowed_lateness_s=3600)
    state = new_point_state()
    assess_geohazard(report(10, rain_mm=60.0), state, TOWN, config)
    late = assess_geohazard(report(9.5, rain_mm=50.0), state, TOWN, config)
    assert late is not None
    assert evidence_of(late)["effective_rain_mm"] == pytest.approx(50.0)  # assessed at its own time
    after = assess_geohazard(report(10.5, rain_mm=0.0), state, TOWN, config)
    assert after is not None
    assert after.level == "blue"  # 60 + 50 = 110 mm
    before = json.dumps(state)
    assert assess_geohazard(report(8, rain_mm=90.0), state, TOWN, config) is None
    assert json.dumps(state) == before


def test_redelivery_is_idempotent() -> None:
    state = new_point_state()
    first = assess_geohazard(report(1, rain_mm=80.0), state, TOWN)
    snapshot = json.dumps(state)
    again = assess_geohazard(report(1, rain_mm=80.0), state, TOWN)
    assert first == again
    assert json.dumps(state) == snapshot


def test_state_bounded_over_a_long_run() -> None:
    config = GeoHazardPointThresholds(antecedent_days=3)
    state = new_point_state()
    for step in range(6 * 24 * 6):  # six days of 10-min reports
        assess_geohazard(report(step / 6, displacement_mm=0.0, rain_mm=0.1), state, TOWN, config)
    assert len(state["hourly"]["t"]) <= 3 * 24 + 2
    assert len(state["reports"]["t"]) <= (24 + 3) * 6
    assert json.loads(json.dumps(state)) == state


@pytest.mark.parametrize(
    ("levels", "expected"),
    [
        pytest.param([], "none", id="no-points"),
        pytest.param(["none", "none"], "none", id="all-quiet"),
        pytest.param(["blue", "yellow"], "yellow", id="max"),
        pytest.param(["orange", "blue"], "orange", id="one-orange"),
        pytest.param(["orange", "orange"], "red", id="two-orange-escalate"),
        pytest.param(["orange", "red", "none"], "red", id="orange-and-red"),
        pytest.param(["yellow", "yellow", "yellow"], "yellow", id="many-yellow-no-escalation"),
    ],
)
def test_township_rollup(levels: list[str], expected: str) -> None:
    assert township_geohazard_rollup(levels) == expected


def test_rollup_policy_is_configurable() -> None:
    policy = RollupPolicy(escalate_from="yellow", escalate_min_points=3, escalate_to="orange")
    assert township_geohazard_rollup(["yellow", "yellow", "yellow"], policy) == "orange"
    assert township_geohazard_rollup(["yellow", "yellow"], policy) == "yellow"


def test_level_values_must_increase() -> None:
    with pytest.raises(ValueError, match="increase"):
        LevelValues(blue=10.0, yellow=5.0)


# ── properties ────────────────────────────────────────────────────────────────────────────

LATENESS_S = 3600


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(min_value=0.0, max_value=30.0), st.integers(min_value=0, max_value=LATENESS_S - 1)),
        min_size=1,
        max_size=150,
    ),
    st.floats(min_value=0.5, max_value=1.0),
)
def test_property_folded_bins_equal_brute_force(reports: list[tuple[float, int]], decay: float) -> None:
    """Reports every 10 min, delivered out of order (delay < lateness) and twice each:
    R_eff from the folded state equals the formula over the delivered reports."""
    config = GeoHazardPointThresholds(decay_factor=decay, antecedent_days=2, allowed_lateness_s=LATENESS_S)
    times = [int((T0 + timedelta(minutes=10 * (i + 1))).timestamp()) for i in range(len(reports))]
    arrivals = sorted(range(len(reports)), key=lambda i: (times[i] + reports[i][1], i))
    state = new_point_state()
    delivered: list[int] = []
    for i in arrivals:
        obs = report((times[i] - T0.timestamp()) / 3600, rain_mm=reports[i][0])
        for _ in range(2):
            result = assess_geohazard(obs, state, TOWN, config)
            assert result is not None
        delivered.append(i)
        at = times[i]
        now_hour = -(-at // 3600) * 3600
        daily = [0.0] * config.antecedent_days
        for j in delivered:
            age_h = (now_hour - (-(-times[j] // 3600) * 3600)) // 3600
            if times[j] <= at and 0 <= age_h < 24 * config.antecedent_days:
                daily[age_h // 24] += reports[j][0]
        expected = sum(mm * decay**k for k, mm in enumerate(daily))
        assert evidence_of(result)["effective_rain_mm"] == pytest.approx(expected, abs=0.02)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(min_value=0.0, max_value=60.0), min_size=1, max_size=10),
    st.floats(min_value=1.0, max_value=3.0),
)
def test_property_more_rain_never_lowers_the_level(daily: list[float], factor: float) -> None:
    base = feed_daily(daily, BASE)
    more = feed_daily([mm * factor for mm in daily], BASE)
    assert LEVEL_RANK[more.level] >= LEVEL_RANK[base.level]


# -- the velocity gate on a noisy record ---------------------------------------------------
#
#   GNSS epochs every 10 min, displacement noise σ = 0.5 mm (the simulator's default):
#
#   case                        record        true v (mm/d)   expected
#   creeping-noise (50 seeds)   48 h          0.5             never a deformation level
#   short-record                < 12 h        40              no velocity at all (span gate)
#   accelerating-to-failure     48 h          0.5 → 100 (e-folding 3 h over the last 12 h)
#                                                              yellow ≥ 4 h, orange ≥ 1.5 h before failure


def gnss_series(velocity: Any, hours: float, seed: int, sigma_mm: float = 0.5) -> list[tuple[float, float]]:
    """(hour, displacement) every 10 min: ∫ velocity(h) dh (mm/d) plus Gaussian noise."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out: list[tuple[float, float]] = []
    disp = 0.0
    step_h = 1 / 6
    for k in range(int(hours / step_h) + 1):
        hour = k * step_h
        if k:
            disp += velocity(hour) * step_h / 24
        out.append((hour, disp + float(rng.normal(0.0, sigma_mm))))
    return out


def feed_gnss(series: list[tuple[float, float]], config: GeoHazardPointThresholds = BASE) -> list[Any]:
    state = new_point_state()
    results = []
    for hour, disp in series:
        obs = GeoHazardObservation(
            station_id=POINT,
            observed_at=T0 + timedelta(hours=hour),
            displacement_mm=disp,
            rain_mm=0.0,
            interval_s=600,
        )
        results.append(assess_geohazard(obs, state, TOWN, config))
    return results


def test_creeping_slopes_under_gnss_noise_never_warn() -> None:
    # 50 points × 48 h of 10-min epochs: the gate uses the velocity's lower confidence
    # bound, so noise read over a short record cannot look like movement
    for seed in range(50):
        results = feed_gnss(gnss_series(lambda _h: 0.5, 48, seed), BASE)
        assert all(r is not None and r.level == "none" for r in results), f"seed {seed}"


def test_a_short_record_gives_no_velocity() -> None:
    results = feed_gnss(gnss_series(lambda _h: 40.0, 11.5, seed=1))
    assert all("velocity_mm_per_day" not in evidence_of(r) for r in results)


def test_an_accelerating_slope_is_warned_hours_before_failure() -> None:
    import math as m

    failure_h = 48.0
    point = GeoHazardPointThresholds(min_velocity_mm_per_day=1.0)  # the registry's gates: 0.8–1.2 mm/d

    def velocity(hour: float) -> float:  # 0.5 mm/d creep, then exponential growth to 100 mm/d
        return min(100.0, 0.5 * m.exp(max(0.0, hour - (failure_h - 16)) / 3.0))

    results = feed_gnss(gnss_series(velocity, failure_h, seed=7), point)

    def first_at(level: str) -> float:
        hits = (i / 6 for i, r in enumerate(results) if r is not None and LEVEL_RANK[r.level] >= LEVEL_RANK[level])
        return next(hits, failure_h)

    # a 24 h Theil–Sen velocity lags an acceleration, and 0.5 mm of noise hides the first
    # hours of it: yellow comes hours ahead, orange (α ≥ 80°) in the last two
    assert failure_h - first_at("yellow") >= 4.0, f"yellow only {failure_h - first_at('yellow'):.1f} h before"
    assert failure_h - first_at("orange") >= 1.5, f"orange only {failure_h - first_at('orange'):.1f} h before"
    evidence = {e.metric: e for e in results[-1].evidence}
    assert evidence["velocity_lower_bound_mm_per_day"].value >= point.min_velocity_mm_per_day


def test_the_lower_bound_is_sens_interval_as_scipy_computes_it() -> None:
    import numpy as np
    from scipy.stats import theilslopes  # type: ignore[import-untyped]

    from services.rules.detectors.common import theil_sen_lower_bound

    rng = np.random.default_rng(11)
    for n in (5, 12, 36, 144):
        t = np.arange(n, dtype=np.float64) * 600.0
        y = (2e-5 * t + rng.normal(0.0, 0.5, n)).astype(np.float64)
        for confidence in (0.95, 0.99, 0.999):
            slope, lower = theil_sen_lower_bound(t, y, confidence)
            reference = theilslopes(y, t, alpha=2 * confidence - 1)  # two-sided 2c − 1 = one-sided c
            assert slope == pytest.approx(reference.slope)
            assert lower == pytest.approx(reference.low_slope)
    for outside in (0.3, 1.0):
        with pytest.raises(ValueError, match="confidence"):
            theil_sen_lower_bound(t, y, outside)
    with pytest.raises(ValueError, match="velocity_confidence"):
        GeoHazardPointThresholds(velocity_confidence=1.0)
