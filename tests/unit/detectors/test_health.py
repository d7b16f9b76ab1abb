"""Sensor health and the downgrade rule: tables of timestamped cases.

Rain gauge (rate mm/h per 5-min report), config N = 4 identical for flatline, spike when
value > 5 × median(previous 6) + 150 mm/h:

    t (min)  00  05  10  15  20   25  30  35  40  45  50   … silence …  90
    value     0   2   3   2  300   4  24  24  24  24   3
    status   ok  ok  ok  ok spike ok  ok  ok  ok flat ok     stale (check_stale at 90)

Other cases, one per row (value sequence → status of the last report):

    steady-light-rain          2 3 2 4 3             ok
    onset-below-spike-floor    0 0 0 120             ok         (real convective onsets)
    zero-rain-repeated         0 ×12                 ok         (dry weather is not a fault)
    identical-light-rain       6 ×12                 ok         (below flatline_min_abs_value)
    identical-heavy-rain       24 ×4                 flatline   since the first 24
    water-jump                 2.0 2.0 3.5           spike      (> 1 m between readings)
    water-rise                 2.0 2.5 3.0           ok
    report-after-gap           2 … 40 min … 3        ok, gap_before_s = 2400
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.assessment import Evidence, HazardAssessment
from schemas.common import LEVEL_RANK
from schemas.observations import GeoHazardObservation, RainObservation, WaterLevelObservation
from services.rules.detectors.health import (
    GEOHAZARD_HEALTH,
    RAIN_HEALTH,
    WATER_LEVEL_HEALTH,
    HealthConfig,
    SensorHealth,
    assess_health,
    check_stale,
    downgrade,
    health_value,
    new_health_state,
)

T0 = datetime(2019, 8, 9, 6, 0, tzinfo=UTC)
GAUGE = "RAIN-A0007"
TOWN = "330302006"
TIMELINE_CONFIG = RAIN_HEALTH.model_copy(
    update={"expected_interval_s": 300, "flatline_reports": 4, "spike_median_reports": 6}
)
RAIN_5MIN = RAIN_HEALTH.model_copy(update={"expected_interval_s": 300})


def run(values: list[float], config: HealthConfig, step_min: float = 5.0) -> list[SensorHealth]:
    state = new_health_state()
    out = []
    for i, value in enumerate(values):
        result = assess_health(GAUGE, T0 + timedelta(minutes=step_min * i), value, state, config)
        assert result is not None
        out.append(result)
    return out


def test_docstring_timeline() -> None:
    values = [0, 2, 3, 2, 300, 4, 24, 24, 24, 24, 3]
    statuses = [h.status for h in run([float(v) for v in values], TIMELINE_CONFIG)]
    assert statuses == ["ok", "ok", "ok", "ok", "spike", "ok", "ok", "ok", "ok", "flatline", "ok"]


@pytest.mark.parametrize(
    ("values", "config", "expected"),
    [
        pytest.param([2, 3, 2, 4, 3], RAIN_5MIN, "ok", id="steady-light-rain"),
        pytest.param([0, 0, 0, 120], RAIN_5MIN, "ok", id="onset-below-spike-floor"),
        pytest.param([0, 0, 0, 151], RAIN_5MIN, "spike", id="spike-just-above-floor"),
        pytest.param([0] * 12, RAIN_5MIN, "ok", id="zero-rain-repeated"),
        pytest.param([6] * 12, RAIN_5MIN, "ok", id="identical-light-rain"),
        pytest.param([24] * 9, RAIN_5MIN, "ok", id="identical-heavy-9-of-10"),
        pytest.param([24] * 10, RAIN_5MIN, "flatline", id="identical-heavy-10"),
        pytest.param([2.0, 2.0, 3.5], WATER_LEVEL_HEALTH, "spike", id="water-jump"),
        pytest.param([2.0, 2.5, 3.0], WATER_LEVEL_HEALTH, "ok", id="water-rise"),
        pytest.param([10.0, 10.5, 70.0], GEOHAZARD_HEALTH, "spike", id="gnss-jump"),
        pytest.param([10.0] * 30, GEOHAZARD_HEALTH, "ok", id="slope-at-rest-is-not-flatline"),
    ],
)
def test_status_of_last_report(values: list[float], config: HealthConfig, expected: str) -> None:
    assert run([float(v) for v in values], config)[-1].status == expected


def test_flatline_since_is_the_first_identical_report() -> None:
    health = run([3.0, 24.0, 24.0, 24.0, 24.0, 24.0], TIMELINE_CONFIG)[-1]
    assert health.status == "flatline"
    assert health.since == T0 + timedelta(minutes=5)


def test_report_after_gap_is_ok_and_records_the_gap() -> None:
    state = new_health_state()
    assess_health(GAUGE, T0, 2.0, state, RAIN_5MIN)
    health = assess_health(GAUGE, T0 + timedelta(minutes=40), 3.0, state, RAIN_5MIN)
    assert health is not None
    assert (health.status, health.gap_before_s) == ("ok", 2400)


@pytest.mark.parametrize(
    ("silence_min", "expected"),
    [
        pytest.param(14, "ok", id="within-3-intervals"),
        pytest.param(15, "ok", id="exactly-3-intervals"),
        pytest.param(16, "stale", id="beyond-3-intervals"),
    ],
)
def test_stale_on_tick(silence_min: int, expected: str) -> None:
    state = new_health_state()
    assess_health(GAUGE, T0, 2.0, state, RAIN_5MIN)
    health = check_stale(GAUGE, state, T0 + timedelta(minutes=silence_min), RAIN_5MIN)
    assert health.status == expected
    assert (health.since == T0) is (expected == "stale")


def test_never_reported_is_stale() -> None:
    health = check_stale(GAUGE, new_health_state(), T0, RAIN_5MIN)
    assert (health.status, health.since) == ("stale", None)


def test_late_redelivered_and_too_late_reports() -> None:
    state = new_health_state()
    for i, value in enumerate([2.0, 3.0, 2.0]):
        assess_health(GAUGE, T0 + timedelta(minutes=5 * (i + 2)), value, state, RAIN_5MIN)
    late = assess_health(GAUGE, T0 + timedelta(minutes=12), 400.0, state, RAIN_5MIN)
    assert late is not None
    assert late.status == "spike"  # judged at its own time, against the 10-min reading only
    snapshot = json.dumps(state)
    again = assess_health(GAUGE, T0 + timedelta(minutes=12), 400.0, state, RAIN_5MIN)
    assert again == late
    assert json.dumps(state) == snapshot
    assert assess_health(GAUGE, T0 + timedelta(minutes=9), 1.0, state, RAIN_5MIN) is None  # 11 min late


def test_health_values_per_kind() -> None:
    rain = RainObservation(station_id=GAUGE, observed_at=T0, rain_mm=0.5, interval_s=60)
    water = WaterLevelObservation(station_id="WL-1", observed_at=T0, level_m=3.2)
    geo = GeoHazardObservation(station_id="GEO-1", observed_at=T0, displacement_mm=41.0)
    assert [health_value(rain), health_value(water), health_value(geo)] == [30.0, 3.2, 41.0]


def assessment(level: str, certainty: str = "Observed", source: str = GAUGE) -> HazardAssessment:
    return HazardAssessment.model_validate(
        {
            "hazard": "short_heavy_rain",
            "township_code": TOWN,
            "source_id": source,
            "assessed_at": T0,
            "level": level,
            "rule_id": "shr-observed-1h",
            "certainty": certainty,
            "onset_at": T0 if certainty == "Likely" else None,
            "evidence": (Evidence(station_id=source, metric="rain_1h_mm", value=31.0, threshold=30.0),),
        }
    )


def health(status: str) -> SensorHealth:
    return SensorHealth.model_validate({"station_id": GAUGE, "status": status, "checked_at": T0})


@pytest.mark.parametrize(
    ("status", "level", "certainty", "expected_level", "expected_certainty"),
    [
        pytest.param("ok", "orange", "Observed", "orange", "Observed", id="ok-unchanged"),
        pytest.param("stale", "orange", "Observed", "orange", "Possible", id="stale-keeps-level"),
        pytest.param("stale", "orange", "Unlikely", "orange", "Unlikely", id="stale-never-raises-certainty"),
        pytest.param("spike", "orange", "Observed", "none", "Unlikely", id="spike-suppressed"),
        pytest.param("flatline", "yellow", "Observed", "none", "Unlikely", id="flatline-suppressed"),
        pytest.param("implausible", "red", "Likely", "none", "Unlikely", id="implausible-suppressed"),
    ],
)
def test_downgrade_rule(status: str, level: str, certainty: str, expected_level: str, expected_certainty: str) -> None:
    result = downgrade(assessment(level, certainty), health(status))
    assert (result.level, result.certainty) == (expected_level, expected_certainty)
    markers = [e for e in result.evidence if e.metric.startswith("suppressed_by_sensor_")]
    if expected_level == "none":
        assert result.onset_at is None
        assert [(m.metric, m.value) for m in markers] == [(f"suppressed_by_sensor_{status}", LEVEL_RANK[level])]
        assert result.evidence[0].metric == "rain_1h_mm"  # the claim stays visible
    else:
        assert markers == []


def test_faulty_gauge_alone_cannot_warn_but_a_healthy_one_can() -> None:
    """Township level = highest over its sources, after the downgrade (module docstring)."""
    faulty = downgrade(assessment("orange", source="RAIN-A0007"), health("spike"))
    healthy = downgrade(assessment("blue", source="RAIN-A0008"), health("ok"))
    township = max((faulty.level, healthy.level), key=LEVEL_RANK.__getitem__)
    assert township == "blue"
    both = downgrade(assessment("orange", source="RAIN-A0008"), health("ok"))
    assert max((faulty.level, both.level), key=LEVEL_RANK.__getitem__) == "orange"


statuses = st.sampled_from(["ok", "stale", "flatline", "spike", "implausible"])
levels = st.sampled_from(["none", "blue", "yellow", "orange", "red"])
certainties = st.sampled_from(["Observed", "Likely", "Possible", "Unlikely"])


@settings(max_examples=100, deadline=None)
@given(statuses, levels, certainties)
def test_property_downgrade_never_raises_and_is_idempotent(status: str, level: str, certainty: str) -> None:
    original = assessment(level, certainty)
    once = downgrade(original, health(status))
    assert LEVEL_RANK[once.level] <= LEVEL_RANK[original.level]
    assert downgrade(once, health(status)) == once


@settings(max_examples=60, deadline=None)
@given(st.floats(min_value=20.0, max_value=390.0), st.integers(min_value=10, max_value=40))
def test_property_identical_heavy_readings_flatline(value: float, count: int) -> None:
    results = run([value] * count, RAIN_5MIN.model_copy(update={"spike_ratio": None}))
    assert results[-1].status == "flatline"
    assert results[-1].since == T0


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=390.0), min_size=1, max_size=80))
def test_property_state_bounded(values: list[float]) -> None:
    state = new_health_state()
    for i, value in enumerate(values):
        assess_health(GAUGE, T0 + timedelta(minutes=i), value, state, RAIN_HEALTH)
    assert len(state["t"]) <= max(RAIN_HEALTH.flatline_reports or 1, RAIN_HEALTH.spike_median_reports) + 1
    assert json.loads(json.dumps(state)) == state
