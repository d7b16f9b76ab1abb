"""The rain processor's fast path gives what the model-based detectors give, byte for byte.

``RainstormProcessor.process`` calls the detectors' cores (``rainstorm_level``,
``short_heavy_rain_level``, ``gale_level``, ``typhoon_level``, ``health.judge``) and writes
the assessment JSON itself (``services.rules.encode``). The reference here is the
composition it replaced: ``assess_health`` → ``assess_rainstorm`` /
``assess_short_heavy_rain`` / ``assess_wind`` (gale + typhoon, with the advisories current
at the report: ``AdvisoryBook.current``) → ``downgrade`` → ``model_dump_json``. Typhoon
streams with advisories: ``test_typhoon_fast_path.py``. Streams are generated: several gauges, late and
out-of-order reports, redeliveries with other values, spikes, stuck values, wind.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import topics
from schemas.advisory import StormAdvisory
from schemas.assessment import Evidence, HazardAssessment
from schemas.observations import RainObservation
from services.common.bus.base import Emit
from services.common.bus.processor import DictState
from services.common.metrics import Metrics
from services.rules.detectors.health import RAIN_HEALTH, assess_health, downgrade, health_value, new_health_state
from services.rules.detectors.rainstorm import (
    DEFAULT_RAINSTORM_RULES,
    RainstormRule,
    assess_rainstorm,
    rainstorm_level,
)
from services.rules.detectors.short_heavy_rain import ShortHeavyRainConfig, assess_short_heavy_rain, new_gauge_state
from services.rules.detectors.wind import AdvisoryBook, assess_wind, new_wind_state
from services.rules.encode import assessment_json, evidence, time_json
from services.rules.processors import RainstormProcessor
from services.rules.windows import Series, add_report, evict_before, new_series, newest, window_sums
from tests.unit.rules_processors.helpers import metric, record

T0 = datetime(2019, 8, 9, 12, 0, tzinfo=UTC)
TOWN = "330324100"


def reference_emits(
    observations: list[RainObservation],
    lateness: int = 600,
    advisories: Sequence[StormAdvisory] = (),
    positions: Mapping[str, tuple[float, float]] | None = None,
) -> tuple[list[list[Emit]], int]:
    """What ``RainstormProcessor`` emitted before its fast path, and how many drops it counted."""
    shr_config = ShortHeavyRainConfig(allowed_lateness_s=lateness)
    book = AdvisoryBook()
    for advisory in advisories:
        book.add(advisory)
    stations: dict[str, dict[str, Any]] = {}
    out: list[list[Emit]] = []
    late = 0
    for obs in observations:
        station = stations.setdefault(
            obs.station_id,
            {
                "rainstorm": new_series(),
                "shr": new_gauge_state(),
                "wind": new_wind_state(),
                "health": new_health_state(),
            },
        )
        health = assess_health(obs.station_id, obs.observed_at, health_value(obs), station["health"], RAIN_HEALTH)
        found = [
            assess_rainstorm(obs, station["rainstorm"], TOWN, DEFAULT_RAINSTORM_RULES, lateness),
            assess_short_heavy_rain(obs, station["shr"], TOWN, shr_config),
        ]
        if obs.wind_mean_ms is not None or obs.wind_gust_ms is not None:
            lon, lat = (positions or {}).get(obs.station_id, (0.0, 0.0))
            at = int(obs.observed_at.timestamp())
            wind = assess_wind(obs, station["wind"], TOWN, lon, lat, book.current(at))
            found.extend(wind or [None, None])  # gale and typhoon, or both too late
        emits: list[Emit] = []
        for raw in found:
            if raw is None:
                late += 1
                continue
            assessment = raw if health is None else downgrade(raw, health)
            emits.append(Emit(topics.ASSESSMENTS, assessment.key, assessment.model_dump_json().encode()))
        out.append(emits)
    return out, late


# one report: gauge, minute (may go backwards: late / out of order / redelivery), rain, interval, wind
report = st.tuples(
    st.sampled_from(["RAIN-A0001", "RAIN-A0002", "RAIN-M0003"]),
    st.integers(min_value=0, max_value=900),
    st.one_of(
        st.floats(min_value=0.0, max_value=5.0, allow_nan=False),
        st.sampled_from([0.0, 0.1, 0.2, 0.5, 2.0, 10.0]),  # stuck values make flat lines
    ),
    st.sampled_from([60, 300, 3600]),
    st.one_of(st.none(), st.tuples(st.floats(0.0, 40.0), st.floats(0.0, 20.0))),
)


def observations_from(reports: list[tuple[str, int, float, int, tuple[float, float] | None]]) -> list[RainObservation]:
    out = []
    for station, minute, rain, interval, wind in reports:
        mean, extra = wind if wind is not None else (None, 0.0)
        out.append(
            RainObservation(
                station_id=station,
                township_code=TOWN,
                observed_at=T0 + timedelta(minutes=minute),
                rain_mm=min(rain * interval / 60.0, 300.0, 400.0 * interval / 3600.0),
                interval_s=interval,
                wind_mean_ms=mean,
                wind_gust_ms=None if mean is None else mean + extra,
            )
        )
    return out


@settings(max_examples=150, deadline=None)
@given(reports=st.lists(report, min_size=1, max_size=120), lateness=st.sampled_from([0, 600, 3600]))
def test_fast_path_emits_what_the_detectors_give(
    reports: list[tuple[str, int, float, int, tuple[float, float] | None]], lateness: int
) -> None:
    observations = observations_from(reports)
    expected, expected_late = reference_emits(observations, lateness)
    metrics = Metrics()
    processor = RainstormProcessor(allowed_lateness_s=lateness, metrics=metrics)
    state = DictState()
    got = [processor.process(record(topics.OBS_RAIN, obs, offset), state) for offset, obs in enumerate(observations)]
    assert got == expected
    assert metric(metrics, "earlywarn_late_records_total", processor="rules-rainstorm") == expected_late


def test_a_long_storm_with_a_stuck_gauge_matches_too() -> None:
    """Twelve hours of one-minute reports (full windows), a flat line and a spike."""
    observations = []
    for minute in range(14 * 60):
        rain = 0.0 if minute < 60 else 0.9 + 0.4 * ((minute * 7) % 5)
        if 300 <= minute < 330:
            rain = 1.5  # stuck
        if minute == 400:
            rain = 6.0  # spike
        observations.append(
            RainObservation(
                station_id="RAIN-A0001",
                township_code=TOWN,
                observed_at=T0 + timedelta(minutes=minute),
                rain_mm=rain,
                interval_s=60,
            )
        )
    expected, _ = reference_emits(observations)
    processor, state = RainstormProcessor(metrics=Metrics()), DictState()
    got = [processor.process(record(topics.OBS_RAIN, obs, i), state) for i, obs in enumerate(observations)]
    assert got == expected
    levels = {HazardAssessment.model_validate_json(e.value).level for emits in got for e in emits}
    assert {"none", "red"} <= levels  # the run covers dry, warned and suppressed reports


# ── rainstorm_level: running totals decide only what they can prove ───────────────────────


def reference_level(series: Series, end: int, mm: float, lateness: int) -> tuple[RainstormRule | None, float]:
    """The rule as ``assess_rainstorm`` computed it before: every window summed."""
    rules = DEFAULT_RAINSTORM_RULES
    add_report(series, end, mm)
    evict_before(series, (newest(series) or end) - max(r.window_s for r in rules) - lateness)
    sums = window_sums(series, end, {r.window_s for r in rules})
    for rule in rules:
        if sums[rule.window_s] >= rule.threshold_mm:
            return rule, sums[rule.window_s]
    return None, 0.0


@settings(max_examples=200, deadline=None)
@given(
    reports=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=30 * 60),  # minutes: past the 12-h window and back
            st.one_of(st.floats(0.0, 30.0), st.sampled_from([0.1, 0.3, 16.7, 50.0])),
        ),
        min_size=1,
        max_size=150,
    ),
    lateness=st.sampled_from([0, 600, 24 * 3600]),
)
def test_rainstorm_level_equals_summing_every_window(reports: list[tuple[int, float]], lateness: int) -> None:
    fast, slow = new_series(), new_series()
    for minute, mm in reports:
        end = int(T0.timestamp()) + 60 * minute
        assert rainstorm_level(fast, end, mm, allowed_lateness_s=lateness) == reference_level(slow, end, mm, lateness)
        assert fast == slow  # the reports, and nothing else: the changelog entry is the window


def test_state_written_with_running_totals_is_read_and_cleaned() -> None:
    """Earlier versions kept running totals ("cum") beside the reports; such a state is read
    as its reports and written back without them."""
    fast, slow = new_series(), new_series()
    start = int(T0.timestamp())
    for i in range(900):
        mm = 1.7 if (i // 90) % 2 else 0.0
        assert rainstorm_level(fast, start + 60 * i, mm) == reference_level(slow, start + 60 * i, mm, 600)
    legacy: Series = {"t": list(slow["t"]), "mm": list(slow["mm"]), "cum": [0.0] * len(slow["t"])}
    end = start + 60 * 900
    assert rainstorm_level(legacy, end, 1.0) == reference_level(slow, end, 1.0, 600)
    assert legacy == slow


# ── the encoder writes the model's JSON ───────────────────────────────────────────────────

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=200, deadline=None)
@given(
    at=st.datetimes(
        min_value=datetime(2000, 1, 1),  # hypothesis wants naive bounds
        max_value=datetime(2100, 1, 1),
        timezones=st.just(UTC),
    ),
    level=st.sampled_from(["none", "blue", "yellow", "orange", "red"]),
    certainty=st.sampled_from(["Observed", "Likely", "Possible", "Unlikely"]),
    items=st.lists(
        st.tuples(
            finite,
            st.one_of(st.none(), finite),
            st.one_of(st.none(), st.integers(0, 10**6)),
            st.sampled_from(["observed", "forecast"]),
        ),
        max_size=4,
    ),
)
def test_assessment_json_is_the_models_json(
    at: datetime, level: str, certainty: str, items: list[tuple[float, float | None, int | None, str]]
) -> None:
    found = [evidence("RAIN-A0001", f"m{i}", v, thr, w, basis) for i, (v, thr, w, basis) in enumerate(items)]
    model = HazardAssessment(
        hazard="short_heavy_rain",
        township_code=TOWN,
        source_id="RAIN-A0001",
        assessed_at=at,
        level=level,
        rule_id="shr-observed-1h",
        certainty=certainty,
        evidence=tuple(Evidence.model_validate(e) for e in found),
    )
    fast = assessment_json(
        "short_heavy_rain", TOWN, "RAIN-A0001", time_json(at), level, "shr-observed-1h", found, certainty
    )
    assert fast == model.model_dump_json().encode()
