"""Gale and typhoon signals at an automatic station: tables of timestamped cases.

Gale timelines: one report a minute, ``mean/gust`` in m/s; the level needs the last two
reports (within 20 min of each other) to meet it: the lower of the two counts.

    case                         reports (mean/gust)        forces          level
    one-gusty-minute             5/20                       3/8             none   (not persisting)
    blue-by-gust                 8/14  8/14                 5/7 ×2          blue
    blue-edge-mean               10.8/12  10.8/12           6/6 ×2          blue
    just-below-blue              10.7/13.8  10.7/13.8       5/6 ×2          none
    yellow-by-mean               17.2/19  17.2/19           8/8 ×2          yellow
    persistence-takes-lower      25/30  17.5/20             10/11, 8/8      yellow
    red                          33/38  33/38               12/13 ×2        red
    gap-resets                   25/30 … 30 min … 25/30     —               none
    anemometer-without-wind      rain only                  —               None (no assessment)

Typhoon timelines: a storm (Vmax 40 m/s) moves west at 20 km/h straight over the station,
arriving H hours after the report. Rankine profile (Rmax 30 km, x = 0.5, gust × 1.4):

    mean ≥ force 12 (32.7 m/s) within 44.9 km, gust ≥ force 14 within 54.6 km  → red if H ≤ 6 + 2.7
    mean ≥ force 10 within 80 km, gust ≥ force 12 within 88 km                → orange if H ≤ 12 + 4.4
    mean ≥ force 8 within 162 km                                              → yellow if H ≤ 24 + 8.1
    mean ≥ force 6 within 411 km                                              → blue if H ≤ 24 + 20.5

    H (h)   4      10       20       40     50
    level   red    orange   yellow   blue   none
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.advisory import AdvisoryPoint, StormAdvisory
from schemas.common import LEVEL_RANK
from schemas.observations import RainObservation
from services.rules.detectors.common import KM_PER_DEG_LON_EQUATOR
from services.rules.detectors.wind import (
    BEAUFORT,
    WindProfile,
    assess_gale,
    assess_typhoon,
    assess_wind,
    new_wind_state,
)

T0 = datetime(2006, 8, 10, 0, 0, tzinfo=UTC)
TOWN = "330327100"
STATION = "AWS-58752"
STATION_LON, STATION_LAT = 120.65, 28.0
KM_LON = KM_PER_DEG_LON_EQUATOR * 0.8829  # cos 28°


def aws(minute: float, mean: float | None, gust: float | None) -> RainObservation:
    return RainObservation(
        station_id=STATION,
        observed_at=T0 + timedelta(minutes=minute),
        rain_mm=0.0,
        interval_s=60,
        wind_mean_ms=mean,
        wind_gust_ms=gust,
    )


@pytest.mark.parametrize(
    ("speed_ms", "force"),
    [
        pytest.param(0.0, 0, id="calm"),
        pytest.param(10.7, 5, id="below-6"),
        pytest.param(10.8, 6, id="force-6-edge"),
        pytest.param(13.8, 6, id="top-of-6"),
        pytest.param(13.9, 7, id="force-7-edge"),
        pytest.param(17.2, 8, id="force-8-edge"),
        pytest.param(32.7, 12, id="force-12-edge"),
        pytest.param(41.5, 14, id="force-14-edge"),
        pytest.param(52.0, 16, id="news-16-at-52"),
        pytest.param(58.0, 17, id="news-17-at-58"),
        pytest.param(75.0, 17, id="beyond-the-table"),
    ],
)
def test_beaufort_force(speed_ms: float, force: int) -> None:
    assert BEAUFORT.force(speed_ms) == force


def feed_gale(reports: list[tuple[float, float | None, float | None]]) -> str | None:
    state = new_wind_state()
    result = None
    for minute, mean, gust in reports:
        result = assess_gale(aws(minute, mean, gust), state, TOWN)
    return None if result is None else result.level


@pytest.mark.parametrize(
    ("reports", "expected"),
    [
        pytest.param([(1, 5.0, 20.0)], "none", id="one-gusty-minute"),
        pytest.param([(1, 8.0, 14.0), (2, 8.0, 14.0)], "blue", id="blue-by-gust"),
        pytest.param([(1, 10.8, 12.0), (2, 10.8, 12.0)], "blue", id="blue-edge-mean"),
        pytest.param([(1, 10.7, 13.8), (2, 10.7, 13.8)], "none", id="just-below-blue"),
        pytest.param([(1, 17.2, 19.0), (2, 17.2, 19.0)], "yellow", id="yellow-by-mean"),
        pytest.param([(1, 25.0, 30.0), (2, 17.5, 20.0)], "yellow", id="persistence-takes-lower"),
        pytest.param([(1, 33.0, 38.0), (2, 33.0, 38.0)], "red", id="red"),
        pytest.param([(1, 25.0, 30.0), (31, 25.0, 30.0)], "none", id="gap-resets"),
        pytest.param([(1, 25.0, 30.0), (2, None, None)], None, id="anemometer-without-wind"),
    ],
)
def test_gale_levels(reports: list[tuple[float, float | None, float | None]], expected: str | None) -> None:
    assert feed_gale(reports) == expected


def test_gale_late_and_redelivered_reports() -> None:
    state = new_wind_state()
    alone = assess_gale(aws(20, 17.2, 19.0), state, TOWN)
    assert alone is not None
    assert alone.level == "none"  # one report is not "persisting"
    late = assess_gale(aws(19, 17.2, 19.0), state, TOWN)
    assert late is not None
    assert late.level == "none"  # assessed at its own time: nothing before 19 min
    snapshot = json.dumps(state)
    assert assess_gale(aws(5, 33.0, 38.0), state, TOWN) is None  # older than 10 min lateness
    assert json.dumps(state) == snapshot
    again = assess_gale(aws(20, 17.2, 19.0), state, TOWN)  # redelivered: now 19 and 20 persist
    assert json.dumps(state) == snapshot
    assert again is not None
    assert again.level == "yellow"


def test_gale_evidence_names_forces() -> None:
    state = new_wind_state()
    assess_gale(aws(1, 25.0, 30.0), state, TOWN)
    result = assess_gale(aws(2, 25.0, 30.0), state, TOWN)
    assert result is not None
    assert {e.metric: e.value for e in result.evidence} == {
        "wind_mean_ms": 25.0,
        "wind_mean_force": 10.0,
        "wind_gust_ms": 30.0,
        "wind_gust_force": 11.0,
    }


def storm_arriving(hours: float, vmax_ms: float = 40.0, speed_kmh: float = 20.0) -> StormAdvisory:
    points = []
    for t in range(-6, 73, 6):
        lon = STATION_LON + speed_kmh * (hours - t) / KM_LON
        points.append(AdvisoryPoint(at=T0 + timedelta(hours=t), lon=lon, lat=STATION_LAT, vmax_ms=vmax_ms))
    return StormAdvisory(storm_id="0608-SAOMAI", name="Saomai", issued_at=T0, points=tuple(points))


@pytest.mark.parametrize(
    ("arrival_h", "expected"),
    [
        pytest.param(4.0, "red", id="arrives-in-4h"),
        pytest.param(10.0, "orange", id="arrives-in-10h"),
        pytest.param(20.0, "yellow", id="arrives-in-20h"),
        pytest.param(40.0, "blue", id="arrives-in-40h"),
        pytest.param(50.0, "none", id="arrives-in-50h"),
    ],
)
def test_typhoon_forecast_levels(arrival_h: float, expected: str) -> None:
    result = assess_typhoon(
        aws(0, 3.0, 5.0), new_wind_state(), TOWN, STATION_LON, STATION_LAT, storm_arriving(arrival_h)
    )
    assert result is not None
    assert result.level == expected
    assert result.certainty == ("Observed" if expected == "none" else "Likely")


def test_typhoon_onset_is_first_step_meeting_the_criterion() -> None:
    result = assess_typhoon(aws(0, 3.0, 5.0), new_wind_state(), TOWN, STATION_LON, STATION_LAT, storm_arriving(4.0))
    assert result is not None
    # gust force 14 needs r ≤ 54.6 km: 80 km − 20 km/h · t ≤ 54.6 → t ≥ 1.27 h → step 1.5 h
    assert result.onset_at == T0 + timedelta(hours=1.5)
    (forecast,) = [e for e in result.evidence if e.basis == "forecast"]
    assert forecast.threshold == 32.7
    assert forecast.window_s == 5400


def test_typhoon_without_forecast_is_none() -> None:
    result = assess_typhoon(aws(0, 40.0, 50.0), new_wind_state(), TOWN, STATION_LON, STATION_LAT, None)
    assert result is not None
    assert result.level == "none"


def test_typhoon_already_affected_is_observed() -> None:
    state = new_wind_state()
    forecast = storm_arriving(40.0)  # forecast alone: blue
    assess_typhoon(aws(0, 25.0, 30.0), state, TOWN, STATION_LON, STATION_LAT, forecast)
    result = assess_typhoon(aws(1, 25.0, 30.0), state, TOWN, STATION_LON, STATION_LAT, forecast)
    assert result is not None
    assert (result.level, result.certainty, result.onset_at) == ("orange", "Observed", None)


def test_typhoon_track_in_the_past_gives_nothing_to_forecast() -> None:
    old = storm_arriving(4.0).model_copy(update={"points": storm_arriving(4.0).points[:2]})  # ends at T0 − 0 h
    result = assess_typhoon(aws(60, 3.0, 5.0), new_wind_state(), TOWN, STATION_LON, STATION_LAT, old)
    assert result is not None
    assert result.level == "none"


@pytest.mark.parametrize(
    ("forecast", "expected_gale", "expected_typhoon"),
    [
        pytest.param(None, "yellow", "none", id="no-storm-gale-stands"),
        pytest.param(storm_arriving(40.0), "none", "yellow", id="typhoon-supersedes-gale"),
    ],
)
def test_wind_gale_excludes_typhoon(forecast: StormAdvisory | None, expected_gale: str, expected_typhoon: str) -> None:
    state = new_wind_state()
    out = []
    for minute in (0, 1):
        out = assess_wind(aws(minute, 17.5, 20.0), state, TOWN, STATION_LON, STATION_LAT, forecast)
    levels = {a.hazard: a.level for a in out}
    assert levels == {"gale": expected_gale, "typhoon": expected_typhoon}


def test_forecast_points_must_be_chronological() -> None:
    points = storm_arriving(4.0).points
    with pytest.raises(ValueError, match="increasing time"):
        StormAdvisory(storm_id="x", name="x", issued_at=T0, points=(points[1], points[0]))


def test_rankine_profile_shape() -> None:
    profile = WindProfile()
    assert profile.mean_ms(40.0, 0.0) == 0.0
    assert profile.mean_ms(40.0, 30.0) == pytest.approx(40.0)
    assert profile.mean_ms(40.0, 120.0) == pytest.approx(20.0)


@settings(max_examples=80, deadline=None)
@given(st.floats(min_value=0.0, max_value=80.0), st.floats(min_value=0.0, max_value=20.0))
def test_property_beaufort_monotone_and_consistent(speed: float, more: float) -> None:
    assert BEAUFORT.force(speed + more) >= BEAUFORT.force(speed)
    assert BEAUFORT.lower_bound_ms(BEAUFORT.force(speed)) <= speed


@settings(max_examples=30, deadline=None)
@given(st.floats(min_value=1.0, max_value=60.0), st.floats(min_value=0.5, max_value=20.0))
def test_property_nearer_storm_never_lowers_typhoon_level(arrival_h: float, sooner_h: float) -> None:
    def level(hours: float) -> str:
        result = assess_typhoon(
            aws(0, 3.0, 5.0), new_wind_state(), TOWN, STATION_LON, STATION_LAT, storm_arriving(hours)
        )
        assert result is not None
        return result.level

    assert LEVEL_RANK[level(max(0.5, arrival_h - sooner_h))] >= LEVEL_RANK[level(arrival_h)]


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(min_value=0.0, max_value=40.0), st.floats(min_value=0.0, max_value=20.0)),
        min_size=1,
        max_size=30,
    )
)
def test_property_gale_idempotent_and_bounded(winds: list[tuple[float, float]]) -> None:
    once, twice = new_wind_state(), new_wind_state()
    for minute, (mean, extra) in enumerate(winds):
        obs = aws(minute, mean, mean + extra)
        first = assess_gale(obs, once, TOWN)
        assess_gale(obs, twice, TOWN)
        assert assess_gale(obs, twice, TOWN) == first
    assert once == twice
    assert len(once["t"]) <= (2 * 1200 + 600) // 60 + 1
