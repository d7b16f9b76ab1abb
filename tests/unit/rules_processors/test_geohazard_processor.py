"""GeoHazardProcessor: each point on its own registry thresholds; the township roll-up.

Roll-up (through the lifecycle, where a township's points meet)::

    points of the township at one time      township geo-hazard level
    orange, none, none                      orange   (the highest point)
    orange, yellow, none                    orange
    orange, orange, none                    red      (two points at orange or above)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from schemas import topics
from schemas.observations import GeoHazardObservation
from schemas.registry import Station
from schemas.warning import WarningMessage
from services.common.bus.base import Emit
from services.common.bus.processor import DictState
from services.common.geo.registry import default_registry
from services.common.metrics import Metrics
from services.rules.detectors.geohazard import GeoHazardPointThresholds, LevelValues, RainWindow
from services.rules.hazard_processors import GeoHazardProcessor
from services.rules.lifecycle import LifecyclePolicy
from services.rules.processors import LifecycleProcessor
from services.rules.registry_config import PointConfig, expected_sources, geohazard_points, point_thresholds
from tests.unit.rules_processors.helpers import assessments, json_round_trip, metric, record, rejections

T0 = datetime(2019, 8, 9, 0, 0, tzinfo=UTC)
TOWN = "330324111"
POINTS = ("GEO-0901", "GEO-0902", "GEO-0903")
# rain in one hour: blue ≥ 10, yellow ≥ 20, orange ≥ 30, red ≥ 60 (effective rain out of reach)
THRESHOLDS = GeoHazardPointThresholds(
    effective_rain_mm=LevelValues(blue=1000.0),
    rain_windows=(RainWindow(window_s=3600, mm=LevelValues(blue=10.0, yellow=20.0, orange=30.0, red=60.0)),),
)


def report(
    point: str, minutes: int, rain_mm: float = 0.0, displacement_mm: float = 10.0, town: str | None = TOWN
) -> GeoHazardObservation:
    return GeoHazardObservation(
        station_id=point,
        township_code=town,
        observed_at=T0 + timedelta(minutes=minutes),
        displacement_mm=displacement_mm,
        rain_mm=rain_mm,
        interval_s=600,
    )


def processor(metrics: Metrics | None = None) -> GeoHazardProcessor:
    return GeoHazardProcessor({p: PointConfig(TOWN, THRESHOLDS) for p in POINTS}, metrics=metrics)


def test_each_point_uses_its_own_registry_record() -> None:
    registry = default_registry()
    station: Station = registry.station("GEO-0001")
    assert station.geohazard is not None
    points = geohazard_points(registry.stations_of("geohazard"))
    assert len(points) == len(registry.stations_of("geohazard"))
    config = points["GEO-0001"]
    assert config.township_code == station.township_code
    assert config.thresholds == point_thresholds(station.geohazard)
    info = station.geohazard
    assert config.thresholds.effective_rain_mm.blue == info.effective_rain_mm.blue
    assert config.thresholds.decay_factor == info.decay_factor
    assert config.thresholds.antecedent_days == info.effective_rain_window_days
    assert config.thresholds.min_velocity_mm_per_day == info.min_velocity_mm_per_day
    assert [w.window_s for w in config.thresholds.rain_windows] == [3600, 3 * 3600, 6 * 3600, 24 * 3600]
    assert config.thresholds.rain_windows[0].mm.yellow == info.rain_1h_mm.yellow

    # its 1-h rain thresholds decide: blue at the record's 38 mm
    geo = GeoHazardProcessor(points, metrics=Metrics())
    state = DictState()
    obs = [
        GeoHazardObservation(
            station_id="GEO-0001",
            township_code=station.township_code,
            observed_at=T0 + timedelta(minutes=10 * i),
            displacement_mm=20.0,
            rain_mm=info.rain_1h_mm.blue / 6 + 0.01,
        )
        for i in range(6)
    ]
    last = [geo.process(record(topics.OBS_GEOHAZARD, o, i), state) for i, o in enumerate(obs)][-1]
    (assessment,) = assessments(last)
    assert assessment.level == "blue"
    assert assessment.key == f"geohazard:{station.township_code}"
    assert any(e.metric == "rain_1h_mm" and e.threshold == info.rain_1h_mm.blue for e in assessment.evidence)


def test_point_assessment_goes_to_the_township_key_and_state_is_json() -> None:
    geo, state = processor(), DictState()
    for i, rain in enumerate([5.0, 5.0, 5.0, 5.0]):
        emits = geo.process(record(topics.OBS_GEOHAZARD, report(POINTS[0], 10 * i, rain), i), state)
    (assessment,) = assessments(emits)
    assert (assessment.key, assessment.source_id, assessment.level) == (f"geohazard:{TOWN}", POINTS[0], "yellow")
    json_round_trip(state[POINTS[0]])


def test_a_displacement_jump_is_a_sensor_fault_not_a_warning() -> None:
    geo, state = processor(), DictState()
    geo.process(record(topics.OBS_GEOHAZARD, report(POINTS[0], 0, 0.0, 10.0), 0), state)
    emits = geo.process(record(topics.OBS_GEOHAZARD, report(POINTS[0], 10, 40.0, 500.0), 1), state)
    (assessment,) = assessments(emits)
    assert assessment.level == "none"
    assert assessment.certainty == "Unlikely"
    assert assessment.evidence[-1].metric == "suppressed_by_sensor_spike"
    assert assessment.evidence[-1].value == 3.0  # it would have said orange


def test_too_late_is_counted_not_assessed() -> None:
    metrics = Metrics()
    geo, state = processor(metrics), DictState()
    geo.process(record(topics.OBS_GEOHAZARD, report(POINTS[0], 180), 0), state)
    assert geo.process(record(topics.OBS_GEOHAZARD, report(POINTS[0], 100), 1), state) == []
    assert metric(metrics, "earlywarn_late_records_total", processor="rules-geohazard") == 1
    assert len(geo.process(record(topics.OBS_GEOHAZARD, report(POINTS[0], 150), 2), state)) == 1  # within 1 h


@pytest.mark.parametrize(
    ("payload", "reason", "field"),
    [
        pytest.param(b"[1, 2", "malformed_json", None, id="malformed"),
        pytest.param(report(POINTS[0], 0).model_dump_json().replace('"displacement_mm":10.0', '"displacement_mm":1e9'),
                     "implausible_value", "displacement_mm", id="implausible"),
        pytest.param(report("GEO-0999", 0), "unknown_station", "station_id", id="no-record"),
        pytest.param(report(POINTS[0], 0, town=None), "unknown_station", "township_code", id="not-enriched"),
    ],
)  # fmt: skip
def test_bad_input_is_rejected_with_the_reason(
    payload: str | GeoHazardObservation, reason: str, field: str | None
) -> None:
    metrics = Metrics()
    geo, state = processor(metrics), DictState()
    raw = payload.encode() if isinstance(payload, str) else payload
    emits = geo.process(record(topics.OBS_GEOHAZARD, raw, 7, key=POINTS[0]), state)
    (rejected,) = rejections(emits)
    assert (rejected.reason, rejected.field) == (reason, field)
    assert metric(metrics, "earlywarn_observations_rejected_total", reason=reason) == 1
    assert assessments(emits) == []


def run_township(rain_by_point: dict[str, float], policy: LifecyclePolicy | None = None) -> list[WarningMessage]:
    """One hour of 10-min reports from every point (rain per report), through the lifecycle."""
    geo = processor()
    expected = expected_sources({}, points={TOWN: frozenset(POINTS)})
    lifecycle = LifecycleProcessor(policy, Metrics(), expected)
    geo_state, life_state = DictState(), DictState()
    out: list[Emit] = []
    offset = 0
    for minutes in range(0, 70, 10):
        for point in POINTS:
            offset += 1
            obs = report(point, minutes, rain_by_point.get(point, 0.0))
            for emit in geo.process(record(topics.OBS_GEOHAZARD, obs, offset), geo_state):
                out += lifecycle.process(record(topics.ASSESSMENTS, emit.value, offset, key=emit.key), life_state)
    return [WarningMessage.model_validate_json(e.value) for e in out if e.topic == topics.WARNINGS]


@pytest.mark.parametrize(
    ("rain", "level"),
    [
        pytest.param({POINTS[0]: 6.0}, "orange", id="one-point-orange"),
        pytest.param({POINTS[0]: 6.0, POINTS[1]: 4.0}, "orange", id="orange-and-yellow"),
        pytest.param({POINTS[0]: 6.0, POINTS[1]: 6.0}, "red", id="two-points-orange-make-red"),
    ],
)
def test_township_rollup_of_its_points(rain: dict[str, float], level: str) -> None:
    messages = run_township(rain)
    assert messages
    assert {m.township_codes for m in messages} == {(TOWN,)}
    assert messages[-1].level == level
    if level == "red":
        count = messages[-1].evidence[0]
        assert (count.metric, count.value, count.threshold) == ("points_at_or_above_orange", 2.0, 2.0)
        assert {e.station_id for e in messages[-1].evidence} == {POINTS[0], POINTS[1]}


def test_rollup_can_be_switched_off() -> None:
    messages = run_township({POINTS[0]: 6.0, POINTS[1]: 6.0}, LifecyclePolicy(geohazard_rollup=None))
    assert messages[-1].level == "orange"
