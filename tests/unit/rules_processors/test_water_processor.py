"""WaterLevelProcessor: river and tide gauges on their registry levels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from schemas import topics
from schemas.observations import WaterLevelObservation
from services.common.bus.processor import DictState
from services.common.geo.registry import default_registry
from services.common.metrics import Metrics
from services.rules.hazard_processors import WaterLevelProcessor
from services.rules.registry_config import TIDAL_REACH_MAX_WARNING_M, near_warning_margin_m, water_gauges
from tests.unit.rules_processors.helpers import assessments, json_round_trip, metric, record, rejections

T0 = datetime(2019, 8, 9, 12, 0, tzinfo=UTC)


def reading(station_id: str, town: str | None, minutes: int, level_m: float) -> WaterLevelObservation:
    return WaterLevelObservation(
        station_id=station_id, township_code=town, observed_at=T0 + timedelta(minutes=minutes), level_m=level_m
    )


@pytest.fixture(scope="module")
def gauges() -> dict[str, object]:
    registry = default_registry()
    return dict(water_gauges((*registry.stations_of("water_level"), *registry.stations_of("tide"))))


def test_levels_come_from_each_gauges_record() -> None:
    registry = default_registry()
    stations = (*registry.stations_of("water_level"), *registry.stations_of("tide"))
    configs = water_gauges(stations)
    assert set(configs) == {s.station_id for s in stations}
    for station in stations:
        assert station.water is not None
        config = configs[station.station_id]
        levels = config.gauge.levels
        assert config.township_codes == (station.township_code,)
        assert (levels.yellow_m, levels.orange_m, levels.red_m) == (
            station.water.warning_level_m,
            station.water.guaranteed_level_m,
            station.water.historical_max_m,
        )
        margin = near_warning_margin_m(station.water)
        assert levels.blue_m == pytest.approx(station.water.warning_level_m - margin)
        assert 0.0 < margin <= 0.3
        if station.kind == "tide":
            assert config.gauge.hazard == "tide"
            assert config.gauge.projection == "tidal"
        else:
            assert config.gauge.hazard == "flood"
            tidal_reach = station.water.warning_level_m <= TIDAL_REACH_MAX_WARNING_M
            assert config.gauge.projection == ("tidal" if tidal_reach else "linear")
            assert (config.gauge.rate_of_rise is None) == tidal_reach
    canal = registry.station("WL-WENRUI-01").water
    river = registry.station("WL-OU-01").water
    assert canal is not None
    assert river is not None
    assert near_warning_margin_m(river) == pytest.approx(0.2)
    assert near_warning_margin_m(canal) == pytest.approx(0.1)


def test_canal_levels_map_to_colours() -> None:
    """Readings 4 h apart: no rate of rise or projection (too few readings to fit), the stage alone."""
    registry = default_registry()
    station = registry.station("WL-WENRUI-01")
    assert station.water is not None
    w = station.water
    metrics = Metrics()
    water, state = WaterLevelProcessor(water_gauges([station]), metrics=metrics), DictState()
    levels = [
        w.warning_level_m - 0.5,
        w.warning_level_m - 0.05,
        w.warning_level_m + 0.05,
        w.guaranteed_level_m,
        w.historical_max_m,
    ]
    out = [
        assessments(
            water.process(record(topics.OBS_WATER, reading(station.station_id, "330304003", 240 * i, lv), i), state)
        )
        for i, lv in enumerate(levels)
    ]
    assert [a.level for (a,) in out] == ["none", "blue", "yellow", "orange", "red"]
    yellow = out[2][0]
    assert (yellow.hazard, yellow.township_code, yellow.source_id) == (
        "flood",
        station.township_code,
        station.station_id,
    )
    assert any(e.metric == "level_m" and e.threshold == w.warning_level_m for e in yellow.evidence)
    assert metric(metrics, "earlywarn_assessments_total", hazard="flood", level="yellow") == 1
    json_round_trip(state[station.station_id])


def test_tide_station_reports_the_tide_hazard() -> None:
    registry = default_registry()
    station = registry.station("TIDE-01")
    assert station.water is not None
    water, state = WaterLevelProcessor(water_gauges([station]), metrics=Metrics()), DictState()
    obs = reading(station.station_id, station.township_code, 0, station.water.guaranteed_level_m + 0.01)
    (assessment,) = assessments(water.process(record(topics.OBS_WATER, obs), state))
    assert (assessment.hazard, assessment.level) == ("tide", "orange")


def test_a_gauge_can_speak_for_more_townships() -> None:
    registry = default_registry()
    station = registry.station("WL-OU-03")
    extra = {station.station_id: ("330302001", station.township_code, "330302002")}
    configs = water_gauges([station], extra)
    assert configs[station.station_id].township_codes == (station.township_code, "330302001", "330302002")
    water, state = WaterLevelProcessor(configs, metrics=Metrics()), DictState()
    assert station.water is not None
    obs = reading(station.station_id, station.township_code, 0, station.water.warning_level_m + 0.2)
    found = assessments(water.process(record(topics.OBS_WATER, obs), state))
    assert [a.township_code for a in found] == [station.township_code, "330302001", "330302002"]
    assert {(a.source_id, a.level, a.evidence) for a in found} == {(found[0].source_id, "yellow", found[0].evidence)}


def test_late_reading_is_counted(gauges: dict[str, object]) -> None:
    metrics = Metrics()
    water, state = WaterLevelProcessor(gauges, metrics=metrics), DictState()  # type: ignore[arg-type]
    water.process(record(topics.OBS_WATER, reading("WL-OU-01", "330302105", 60, 25.0)), state)
    assert water.process(record(topics.OBS_WATER, reading("WL-OU-01", "330302105", 30, 25.0)), state) == []
    assert metric(metrics, "earlywarn_late_records_total", processor="rules-water") == 1


IMPLAUSIBLE = reading("WL-OU-01", "330302105", 0, 1.0).model_dump_json().replace('"level_m":1.0', '"level_m":-99')


@pytest.mark.parametrize(
    ("payload", "reason", "field"),
    [
        pytest.param(b"\xff\xfe", "malformed_json", None, id="malformed"),
        pytest.param(IMPLAUSIBLE, "implausible_value", "level_m", id="implausible"),
        pytest.param(reading("WL-NOPE-01", "330302105", 0, 1.0), "unknown_station", "station_id", id="no-record"),
        pytest.param(reading("WL-OU-01", None, 0, 1.0), "unknown_station", "township_code", id="not-enriched"),
    ],
)  # fmt: skip
def test_bad_input_is_rejected_with_the_reason(
    gauges: dict[str, object], payload: str | bytes | WaterLevelObservation, reason: str, field: str | None
) -> None:
    metrics = Metrics()
    water, state = WaterLevelProcessor(gauges, metrics=metrics), DictState()  # type: ignore[arg-type]
    raw = payload.encode() if isinstance(payload, str) else payload
    (rejected,) = rejections(water.process(record(topics.OBS_WATER, raw, 4, key="WL-OU-01"), state))
    assert (rejected.reason, rejected.field) == (reason, field)
    assert metric(metrics, "earlywarn_observations_rejected_total", reason=reason) == 1
