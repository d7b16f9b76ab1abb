"""Typhoon signal from storm advisories (``schemas.advisory``): tables of timestamped cases.

A station at (120.65 E, 28.0 N); the storm sits 1000 km away until it "arrives" at hour H,
then stays 30 km from the station (the radius of maximum wind, so V = vmax there)::

    advisory issued T0            report at T0 (+ minutes)
    track   ──far──────────far─╮
                               ╰─ near (30 km) from T0+H ─────────────► T0+48h
    steps   T0 ┊ ┊ ┊ … every 30 min from the report's bucket (T0)

CMA criteria (config ``TyphoonConfig.criteria``; gust = 1.4 V):

    level    within   mean ≥ F / m/s     gust ≥ F / m/s     → V needed at the station
    red       6 h     F12 32.7           F14 41.5           ≥ 29.6
    orange   12 h     F10 24.5           F12 32.7           ≥ 23.4
    yellow   24 h     F8  17.2           F10 24.5           ≥ 17.2
    blue     24 h     F6  10.8           F8  17.2           ≥ 12.3

    case                  vmax   H       level    onset
    red-in-5h             35     5       red      T0+5h
    red-edge-6h           35     6       red      T0+6h
    orange-past-6h        35     6.5     orange   T0+6.5h
    orange-in-10h         35     10      orange   T0+10h
    yellow-in-20h         35     20      yellow   T0+20h
    beyond-24h            35     30      none     —
    yellow-by-mean        20     3       yellow   T0+3h
    blue-by-mean          13     3       blue     T0+3h
    below-blue            10     3       none     —   (mean F5, gust 14 m/s = F7)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from schemas.advisory import AdvisoryPoint, StormAdvisory
from schemas.assessment import HazardAssessment
from schemas.observations import RainObservation
from services.rules.detectors.common import Table
from services.rules.detectors.wind import (
    AdvisoryBook,
    Track,
    TyphoonConfig,
    assess_typhoon,
    assess_wind,
    new_wind_state,
)

T0 = datetime(2019, 8, 9, 0, 0, tzinfo=UTC)
TOWN = "330327100"
STATION = "RAIN-A0001"
LON, LAT = 120.65, 28.0
NEAR_LAT = LAT + 30.0 / 111.195  # 30 km north: haversine with R = 6371 km
FAR_LON = LON + 10.0  # ~980 km east


def hours(h: float) -> datetime:
    return T0 + timedelta(hours=h)


def arriving(vmax_ms: float, arrive_h: float, issued_h: float = 0.0, storm: str = "1909-LEKIMA") -> StormAdvisory:
    far = [hours(issued_h)] if arrive_h - 0.5 > issued_h else []
    points = [
        *(AdvisoryPoint(at=at, lon=FAR_LON, lat=LAT, vmax_ms=vmax_ms) for at in (*far, hours(arrive_h - 0.5))),
        AdvisoryPoint(at=hours(arrive_h), lon=LON, lat=NEAR_LAT, vmax_ms=vmax_ms),
        AdvisoryPoint(at=hours(issued_h + 48), lon=LON, lat=NEAR_LAT, vmax_ms=vmax_ms),
    ]
    return StormAdvisory(storm_id=storm, name=storm, issued_at=hours(issued_h), points=tuple(points))


def aws(minute: float, mean: float | None = 3.0, gust: float | None = 5.0) -> RainObservation:
    return RainObservation(
        station_id=STATION,
        township_code=TOWN,
        observed_at=T0 + timedelta(minutes=minute),
        rain_mm=0.0,
        wind_mean_ms=mean,
        wind_gust_ms=gust,
    )


def typhoon(obs: RainObservation, book: AdvisoryBook, state: Table | None = None) -> HazardAssessment | None:
    at = int(obs.observed_at.timestamp())
    return assess_typhoon(obs, state or new_wind_state(), TOWN, LON, LAT, book.current(at))


def book_of(*advisories: StormAdvisory) -> AdvisoryBook:
    book = AdvisoryBook()
    for advisory in advisories:
        book.add(advisory)
    return book


@pytest.mark.parametrize(
    ("vmax", "arrive_h", "level", "onset_h"),
    [
        pytest.param(35.0, 5.0, "red", 5.0, id="red-in-5h"),
        pytest.param(35.0, 6.0, "red", 6.0, id="red-edge-6h"),
        pytest.param(35.0, 6.5, "orange", 6.5, id="orange-past-6h"),
        pytest.param(35.0, 10.0, "orange", 10.0, id="orange-in-10h"),
        pytest.param(35.0, 20.0, "yellow", 20.0, id="yellow-in-20h"),
        pytest.param(35.0, 30.0, "none", None, id="beyond-24h"),
        pytest.param(20.0, 3.0, "yellow", 3.0, id="yellow-by-mean"),
        pytest.param(13.0, 3.0, "blue", 3.0, id="blue-by-mean"),
        pytest.param(10.0, 3.0, "none", None, id="below-blue"),
    ],
)
def test_forecast_windows_give_the_cma_levels(vmax: float, arrive_h: float, level: str, onset_h: float | None) -> None:
    result = typhoon(aws(0), book_of(arriving(vmax, arrive_h)))
    assert result is not None
    assert result.level == level
    assert result.onset_at == (None if onset_h is None else hours(onset_h))
    assert result.certainty == ("Observed" if onset_h is None else "Likely")
    if onset_h is not None:
        (forecast,) = result.evidence
        assert forecast.basis == "forecast"
        assert forecast.window_s == onset_h * 3600
        assert forecast.metric == "forecast_wind_mean_ms"


@pytest.mark.parametrize(
    ("advisories", "report_min", "level"),
    [
        pytest.param((), 0, "none", id="no-advisory"),
        pytest.param((arriving(35.0, 5.0, issued_h=1.0),), 30, "none", id="issued-after-the-report"),
        pytest.param((arriving(35.0, 5.0, issued_h=1.0),), 60, "red", id="issued-at-the-report"),
        pytest.param(
            (arriving(35.0, 5.0, issued_h=0.0), arriving(35.0, 30.0, issued_h=0.5)), 60, "none", id="newest-wins-calm"
        ),
        pytest.param(
            (arriving(35.0, 30.0, issued_h=0.0), arriving(35.0, 5.0, issued_h=0.5)), 60, "red", id="newest-wins-red"
        ),
        pytest.param(
            (arriving(35.0, 30.0, issued_h=0.0), arriving(35.0, 5.0, issued_h=0.5)), 20, "none", id="older-until-newer"
        ),
        pytest.param(
            (arriving(35.0, 30.0), arriving(13.0, 3.0, storm="1910-OTHER")), 0, "blue", id="two-storms-highest"
        ),
    ],
)
def test_the_newest_advisory_issued_by_the_report_is_used(
    advisories: tuple[StormAdvisory, ...], report_min: int, level: str
) -> None:
    for order in (advisories, tuple(reversed(advisories))):  # arrival order does not matter
        result = typhoon(aws(report_min), book_of(*order))
        assert result is not None
        assert result.level == level


def test_an_advisory_issued_after_the_report_is_ignored_even_if_passed_in() -> None:
    later = arriving(35.0, 5.0, issued_h=2.0)
    result = assess_typhoon(aws(0), new_wind_state(), TOWN, LON, LAT, later)
    assert result is not None
    assert result.level == "none"


def test_onset_already_reached_is_the_report_time_and_windows_count_from_the_bucket() -> None:
    """Report at T0+20 min, bucket T0: the storm is already over the station."""
    result = typhoon(aws(20), book_of(arriving(35.0, 0.5)))
    assert result is not None
    assert (result.level, result.onset_at) == ("red", hours(0.5))
    here = typhoon(aws(40), book_of(arriving(35.0, 0.5)))  # bucket T0+30 min: step 0 is near
    assert here is not None
    assert (here.level, here.onset_at, here.evidence[-1].window_s) == ("red", hours(40 / 60), 0)
    # red window from the bucket: T0+6h30 is 6 h 10 min after a T0+20 min report, but 6.5 h from T0
    late = typhoon(aws(20), book_of(arriving(35.0, 6.5)))
    assert late is not None
    assert late.level == "orange"


@pytest.mark.parametrize(
    ("winds", "advisory", "level", "certainty"),
    [
        pytest.param([(25.0, 30.0), (25.0, 30.0)], arriving(35.0, 30.0), "orange", "Observed", id="observed-orange"),
        pytest.param([(25.0, 30.0)], arriving(35.0, 30.0), "none", "Observed", id="one-report-not-persisting"),
        pytest.param([(25.0, 30.0), (25.0, 30.0)], None, "none", "Observed", id="strong-wind-no-advisory"),
        pytest.param([(25.0, 30.0), (25.0, 30.0)], arriving(35.0, 5.0), "red", "Likely", id="forecast-above-observed"),
        pytest.param([(34.0, 45.0), (34.0, 45.0)], arriving(35.0, 10.0), "red", "Observed", id="observed-above-fcst"),
    ],
)
def test_observed_typhoon_winds_while_an_advisory_is_current(
    winds: list[tuple[float, float]], advisory: StormAdvisory | None, level: str, certainty: str
) -> None:
    book = book_of(*(() if advisory is None else (advisory,)))
    state = new_wind_state()
    result = None
    for minute, (mean, gust) in enumerate(winds):
        result = typhoon(aws(minute, mean, gust), book, state)
    assert result is not None
    assert (result.level, result.certainty) == (level, certainty)


@pytest.mark.parametrize(
    ("wind", "advisory", "gale", "gale_rule", "typhoon_level"),
    [
        pytest.param((17.5, 20.0), None, "yellow", "cma-gale-observed", "none", id="no-advisory-gale-stands"),
        pytest.param((9.0, 15.0), arriving(35.0, 30.0), "blue", "cma-gale-observed", "none", id="below-typhoon-gale"),
        pytest.param(
            (17.5, 20.0), arriving(35.0, 30.0), "none", "cma-gale-observed-typhoon", "yellow", id="observed-typhoon"
        ),
        pytest.param(
            (9.0, 15.0), arriving(35.0, 10.0), "none", "cma-gale-observed-typhoon", "orange", id="forecast-typhoon"
        ),
    ],
)
def test_gale_is_suppressed_while_typhoon_is_active(
    wind: tuple[float, float], advisory: StormAdvisory | None, gale: str, gale_rule: str, typhoon_level: str
) -> None:
    """Gale by gust F7 (15 m/s) with mean F5 meets no typhoon criterion (gust F8 needed)."""
    state = new_wind_state()
    out: list[HazardAssessment] = []
    for minute in (0, 1):
        out = assess_wind(aws(minute, *wind), state, TOWN, LON, LAT, advisory)
    found = {a.hazard: a for a in out}
    assert (found["gale"].level, found["gale"].rule_id) == (gale, gale_rule)
    assert found["typhoon"].level == typhoon_level
    if gale == "none":
        assert found["gale"].evidence == ()


def test_a_report_without_wind_is_not_assessed() -> None:
    assert typhoon(aws(0, None, None), book_of(arriving(35.0, 5.0))) is None


def test_book_replaces_a_redelivery_and_prunes_what_no_report_can_use() -> None:
    config = TyphoonConfig(advisory_keep_s=6 * 3600)
    book = AdvisoryBook(config)
    first, second = arriving(35.0, 10.0, issued_h=0.0), arriving(35.0, 10.0, issued_h=6.0)
    assert book.add(first)
    assert not book.add(first)  # redelivered: nothing changes
    assert book.add(second)
    corrected = arriving(20.0, 10.0, issued_h=6.0)
    assert book.add(corrected)  # same storm and issue time: replaces
    assert len(book) == 2
    assert book.current(int(hours(7).timestamp())) == [Track.of(corrected)]
    book.prune(int(hours(11).timestamp()))  # superseded at 6 h: still needed until 6 h + keep
    assert len(book) == 2
    book.prune(int(hours(12.5).timestamp()))
    assert len(book) == 1
    book.prune(int(hours(6 + 48 + 6.5).timestamp()))  # the newest track ended > keep ago
    assert len(book) == 0
    assert book.current(int(hours(60).timestamp())) == []
