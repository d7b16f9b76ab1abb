"""Typhoon on the rain processor's fast path: the same bytes as ``assess_wind`` + ``downgrade``.

The processor keeps the advisories it was given (``on_global``) and caches each track's
forecast per (advisory, station, 30-min bucket); the reference (``reference_emits``) asks
``AdvisoryBook.current`` and ``assess_typhoon`` afresh for every report. Streams::

    storm A: 3 advisories (T0-6h, T0, T0+4h), each displaced (forecast error), vmax 45 m/s,
             moving north-west over the stations; storm B (weak, far) from T0+2h
    minute   0 ───────── 240 ─────────── 600 ──► reports of 3 stations, late / out of order,
             redelivered, stuck values (health), wind from calm to force 14
"""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import topics
from schemas.advisory import AdvisoryPoint, StormAdvisory
from schemas.assessment import HazardAssessment
from schemas.observations import RainObservation
from services.common.bus.base import Emit
from services.common.bus.processor import DictState
from services.common.metrics import Metrics
from services.rules.processors import RainstormProcessor
from tests.unit.rules_processors.helpers import metric, record
from tests.unit.rules_processors.test_rain_fast_path import T0, TOWN, reference_emits
from tests.unit.rules_processors.test_rain_fast_path import observations_from as rain_observations_from

POSITIONS = {
    "RAIN-A0001": (120.65, 28.0),
    "RAIN-A0002": (120.95, 27.75),
    "RAIN-A0003": (120.2, 28.4),
}


def advisory(
    storm: str, issued_h: float, shift_deg: float, vmax_ms: float, start: tuple[float, float]
) -> StormAdvisory:
    """A track from ``start`` moving 0.1° W and 0.07° N an hour, 48 h from its issue time."""
    lon0, lat0 = start
    points = tuple(
        AdvisoryPoint(
            at=T0 + timedelta(hours=issued_h + h),
            lon=round(lon0 - 0.1 * (issued_h + h) + shift_deg, 4),
            lat=round(lat0 + 0.07 * (issued_h + h) - shift_deg / 2, 4),
            vmax_ms=vmax_ms,
        )
        for h in range(0, 49, 3)
    )
    return StormAdvisory(storm_id=storm, name=storm, issued_at=T0 + timedelta(hours=issued_h), points=points)


ADVISORIES = (
    advisory("1909-LEKIMA", -6.0, 0.3, 45.0, (122.5, 27.2)),
    advisory("1909-LEKIMA", 0.0, -0.15, 45.0, (122.5, 27.2)),
    advisory("1909-LEKIMA", 4.0, 0.05, 48.0, (122.5, 27.2)),
    advisory("1910-WEAK", 2.0, 0.0, 20.0, (125.0, 24.0)),
)

report = st.tuples(
    st.sampled_from(sorted(POSITIONS)),
    st.integers(min_value=0, max_value=600),
    st.sampled_from([0.0, 0.2, 1.0, 3.0]),
    st.one_of(st.none(), st.tuples(st.floats(0.0, 45.0), st.floats(0.0, 15.0))),
)


def observations_from(reports: list[tuple[str, int, float, tuple[float, float] | None]]) -> list[RainObservation]:
    """1-min reports (the rain fast path's helper at a 60-s interval; every rain drawn here fits it)."""
    return rain_observations_from([(station, minute, rain, 60, wind) for station, minute, rain, wind in reports])


def fast(
    observations: list[RainObservation], lateness: int, advisories: tuple[StormAdvisory, ...]
) -> tuple[list[list[Emit]], float]:
    metrics = Metrics()
    processor = RainstormProcessor(allowed_lateness_s=lateness, metrics=metrics, station_positions=POSITIONS)
    for offset, adv in enumerate(advisories):
        processor.on_global(record(topics.ADVISORIES, adv, offset, key=adv.storm_id))
    state = DictState()
    got = [processor.process(record(topics.OBS_RAIN, obs, offset), state) for offset, obs in enumerate(observations)]
    return got, metric(metrics, "earlywarn_late_records_total", processor="rules-rainstorm")


@settings(max_examples=120, deadline=None)
@given(
    reports=st.lists(report, min_size=1, max_size=100),
    lateness=st.sampled_from([0, 600, 3600]),
    order=st.permutations(range(len(ADVISORIES))),
)
def test_typhoon_fast_path_emits_what_the_detectors_give(
    reports: list[tuple[str, int, float, tuple[float, float] | None]], lateness: int, order: list[int]
) -> None:
    observations = observations_from(reports)
    expected, expected_late = reference_emits(observations, lateness, ADVISORIES, POSITIONS)
    # advisories arrive in any order, one of them twice (a redelivery)
    arrived = (*(ADVISORIES[i] for i in order), ADVISORIES[order[0]])
    got, late = fast(observations, lateness, arrived)
    assert got == expected
    assert late == expected_late


def test_a_storm_passing_over_matches() -> None:
    """Ten hours of one-minute reports at three stations as the storm comes in."""
    observations = []
    for minute in range(10 * 60):
        for i, station in enumerate(sorted(POSITIONS)):
            mean = min(44.0, 2.0 + minute * 0.07 + 3 * i)
            observations.append(
                RainObservation(
                    station_id=station,
                    township_code=TOWN,
                    observed_at=T0 + timedelta(minutes=minute),
                    rain_mm=1.5 if 200 <= minute < 240 else 0.3 + 0.1 * (minute % 3),  # a flat line, too
                    interval_s=60,
                    wind_mean_ms=mean,
                    wind_gust_ms=mean * 1.3,
                )
            )
    expected, _ = reference_emits(observations, 600, ADVISORIES, POSITIONS)
    got, _ = fast(observations, 600, ADVISORIES)
    assert got == expected
    typhoon = [
        a
        for emits in got
        for a in (HazardAssessment.model_validate_json(e.value) for e in emits)
        if a.hazard == "typhoon"
    ]
    assert {a.level for a in typhoon} >= {"none", "orange", "red"}
    assert {a.certainty for a in typhoon} >= {"Likely", "Observed"}
    gale = [
        a for emits in got for a in (HazardAssessment.model_validate_json(e.value) for e in emits) if a.hazard == "gale"
    ]
    assert {a.rule_id for a in gale} == {"cma-gale-observed-typhoon"}  # typhoon all along: gale excluded
