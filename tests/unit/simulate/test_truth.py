"""Ground truth: episodes from the true fields, nested levels, and what each shipped scenario contains."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from schemas.common import LEVEL_RANK
from services.common.geo.registry import GeoRegistry
from services.ingest.simulate.truth import TRUTH_FORMAT, GaugeSpec, GroundTruth, TruthEvent
from tests.unit.simulate.support import START, TYPHOONS, revise, run, shipped, window

# --------------------------------------------------------------------------- episodes, synthetically


def _truth(
    towns: int = 1, merge_gap_s: int = 600, wind_hazard: str = "gale", gust_factor: float | None = None
) -> GroundTruth:
    truth = GroundTruth()
    truth.begin(
        scenario="unit",
        seed=1,
        start=START,
        end=START + timedelta(hours=6),
        townships=[f"33030200{i}" for i in range(towns)],
        wind_hazard=wind_hazard,
        merge_gap_s=merge_gap_s,
        gust_factor=gust_factor,
    )
    return truth


def _feed(truth: GroundTruth, rates_mm_h: list[float], *, dbz: float = 0.0, wind: float = 0.0) -> None:
    for minute, rate in enumerate(rates_mm_h, start=1):
        truth.observe_townships(
            START + timedelta(minutes=minute), np.array([rate / 60.0]), np.array([dbz]), np.array([wind])
        )


def _at(minute: int) -> datetime:
    return START + timedelta(minutes=minute)


def test_short_heavy_rain_starts_when_the_rolling_hour_reaches_the_threshold() -> None:
    truth = _truth()
    _feed(truth, [30.0] * 120 + [0.0] * 120)  # 30 mm/h for two hours
    truth.finish()
    shr = {e.level: e for e in truth.events_for("short_heavy_rain")}
    assert set(shr) == {"blue", "yellow"}
    assert shr["blue"].start == _at(40)  # 20 mm after 40 minutes
    assert shr["yellow"].start == _at(60)  # 30 mm after one hour
    assert shr["yellow"].end == _at(120)
    assert shr["blue"].end == _at(140)  # the rolling hour still holds 20 mm
    assert shr["yellow"].peak == pytest.approx(30.0)
    rainstorm = {e.level: e for e in truth.events_for("rainstorm")}
    assert set(rainstorm) == {"blue", "yellow", "orange"}  # 60 mm in 2 h: ≥ 50 mm in 12, 6 and 3 h, not 100
    assert {e.start for e in rainstorm.values()} == {_at(100)}  # 50 mm after 100 minutes


def test_dips_shorter_than_the_merge_gap_do_not_split_an_episode() -> None:
    for gap_min, episodes in ((9, 1), (11, 2)):  # merge_gap_s = 600
        dbz_series = [0.0] * 10 + [52.0] * 10 + [0.0] * gap_min + [52.0] * 10 + [0.0] * 30
        truth = _truth()
        for minute, dbz in enumerate(dbz_series, start=1):
            truth.observe_townships(_at(minute), np.zeros(1), np.array([dbz]), np.zeros(1))
        truth.finish()
        orange = truth.events_for("convection", "orange")
        assert len(orange) == episodes, gap_min
        assert orange[0].start == _at(11)
        assert orange[-1].end == _at(20 + gap_min + 10)


def test_levels_are_nested_and_scoring_folds_them() -> None:
    truth = _truth()
    for minute, wind in enumerate([5.0] * 10 + [12.0] * 20 + [26.0] * 20 + [12.0] * 20 + [5.0] * 30, start=1):
        truth.observe_townships(_at(minute), np.zeros(1), np.full(1, np.nan), np.array([wind]))
    truth.finish()
    gale = {e.level: e for e in truth.events_for("gale")}
    assert set(gale) == {"blue", "yellow", "orange"}
    assert gale["blue"].start < gale["yellow"].start == gale["orange"].start
    assert gale["orange"].end == gale["yellow"].end < gale["blue"].end
    (episode,) = truth.scoring_episodes()
    assert (episode.hazard, episode.level) == ("gale", "orange")
    assert (episode.onset, episode.end) == (gale["blue"].start, gale["blue"].end)


@pytest.mark.parametrize(
    ("hazard", "gust_factor", "mean_ms", "expected"),
    [
        ("gale", None, 10.7, set()),  # the mean alone: below force 6
        ("gale", 1.5, 9.2, set()),  # gust 13.8 m/s: force 6
        ("gale", 1.5, 9.3, {"blue"}),  # gust 13.95 m/s: force 7 (§1.4 blue: mean ≥ F6 or gust ≥ F7)
        ("gale", 1.5, 13.9, {"blue", "yellow"}),  # gust 20.85: force 9
        ("typhoon", 1.5, 10.7, set()),  # gust 16.05: force 7, below typhoon blue's force 8
        ("typhoon", 1.5, 10.8, {"blue"}),  # the mean: force 6
        ("typhoon", 1.5, 16.4, {"blue", "yellow"}),  # gust 24.6: force 10 (§1.3 yellow)
    ],
)
def test_strong_wind_is_reached_by_the_mean_or_by_its_gust(
    hazard: str, gust_factor: float | None, mean_ms: float, expected: set[str]
) -> None:
    truth = _truth(wind_hazard=hazard, gust_factor=gust_factor)
    for minute in range(1, 31):
        truth.observe_townships(_at(minute), np.zeros(1), np.full(1, np.nan), np.array([mean_ms]))
    truth.finish()
    assert {e.level for e in truth.events_for(hazard)} == expected


def test_gauges_have_their_own_levels() -> None:
    truth = _truth()
    truth.add_gauges(
        [GaugeSpec("WL-1", "330302006", "flood", 3.0, 4.0, 5.0), GaugeSpec("T-1", None, "tide", 4.0, 4.6, 5.3)]
    )
    for minute, (river, tide) in enumerate([(2.0, 3.0), (3.5, 4.1), (4.2, 4.7), (5.5, 3.0), (2.0, 3.0)], start=1):
        truth.observe_gauges(_at(minute * 20), np.array([river, tide]))
    truth.finish()
    assert [e.level for e in truth.events_for("flood")] == ["yellow", "orange", "red"]
    assert [e.level for e in truth.events_for("tide")] == ["yellow", "orange"]
    assert all(e.station_id == "T-1" and e.township_code is None for e in truth.events_for("tide"))
    assert truth.gauges["WL-1"].level_max_m == 5.5
    assert truth.gauges["T-1"].level_min_m == 3.0


def test_truth_json_round_trips(tmp_path: Path) -> None:
    truth = _truth()
    _feed(truth, [60.0] * 90, dbz=47.0, wind=20.0)
    truth.record_failure("GEO-1", "330302000", _at(30))
    truth.count_fault("late", 3)
    truth.finish()
    path = truth.to_json(tmp_path / "truth.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["format"] == TRUTH_FORMAT
    assert set(data) == {
        "format", "scenario", "seed", "start", "end", "events", "townships", "gauges",
        "geohazard_failures", "fault_counts", "station_faults",
    }  # fmt: skip
    assert GroundTruth.load_events(path) == truth.events
    assert data["fault_counts"] == {"late": 3}
    assert data["geohazard_failures"] == {"GEO-1": "2023-07-20T00:30:00Z"}
    (tmp_path / "other.json").write_text('{"format": "something-else"}', encoding="utf-8")
    with pytest.raises(ValueError, match="not an earlywarn-truth/1 file"):
        GroundTruth.load_events(tmp_path / "other.json")


# --------------------------------------------------------------------------- the shipped scenarios


def _check_events(events: list[TruthEvent]) -> None:
    """Onset ≤ end; every level above the lowest sits inside an episode of each lower level."""
    assert events == sorted(events, key=TruthEvent.sort_key)
    spans: dict[tuple[str, str | None, str | None, int], list[TruthEvent]] = {}
    for event in events:
        assert event.start <= event.end
        spans.setdefault((event.hazard, event.township_code, event.station_id, LEVEL_RANK[event.level]), []).append(
            event
        )
    for (hazard, town, station, rank), episodes in spans.items():
        lower_ranks = sorted(r for (h, t, s, r) in spans if (h, t, s) == (hazard, town, station) and r < rank)
        expected_lower = {"flood": [2], "tide": [2], "convection": [2]}.get(hazard, [1, 2, 3])
        for lower in [r for r in expected_lower if r < rank]:
            assert lower in lower_ranks, (hazard, town, station, rank)
            for event in episodes:
                assert any(
                    outer.start <= event.start and outer.end >= event.end
                    for outer in spans[(hazard, town, station, lower)]
                ), (event, lower)


@pytest.fixture(scope="module")
def typhoon_truths(registry: GeoRegistry) -> dict[str, GroundTruth]:
    """Each typhoon's whole span over every township (no stations; a 3-km grid to stay fast)."""
    out = {}
    for name in TYPHOONS:
        sc = revise(shipped(name), stations={"include_kinds": []}, grid={"cell_deg": 0.03})
        out[name] = run(sc, registry).truth
    return out


@pytest.mark.parametrize("name", TYPHOONS)
def test_typhoon_scenarios_have_typhoon_and_rainstorm_events(typhoon_truths: dict[str, GroundTruth], name: str) -> None:
    truth = typhoon_truths[name]
    events = truth.events
    _check_events(events)
    levels = Counter((e.hazard, e.level) for e in events)
    for hazard in ("typhoon", "rainstorm", "short_heavy_rain"):
        assert levels[(hazard, "blue")] > 10, (hazard, levels)
    assert levels[("typhoon", "orange")] > 0, "force 10 somewhere"
    assert levels[("rainstorm", "orange")] > 0, "50 mm in 3 h somewhere"
    assert not [e for e in events if e.hazard == "gale"], "strong wind is 'typhoon' under a typhoon"
    assert len(truth.scoring_episodes()) < len(events)


def test_saomai_drowns_cangnan_and_lekima_soaks_yongjia_and_yueqing(
    typhoon_truths: dict[str, GroundTruth], registry: GeoRegistry
) -> None:
    county_of = {t.code: t.county_code for t in registry.townships}

    def county_mean(name: str, county: str) -> float:
        totals = [s.rain_total_mm for code, s in typhoon_truths[name].townships.items() if county_of[code] == county]
        return float(np.mean(totals))

    # STANDARDS §6.1: Saomai > 300 mm county mean in Cangnan (the simulator gets the order, not the number)
    assert county_mean("saomai-2006", "330327") > county_mean("saomai-2006", "330324")
    # Lekima: the north (Yongjia 330324, Yueqing 330382) wetter than the south (Cangnan, Taishun)
    north = min(county_mean("lekima-2019", c) for c in ("330324", "330382"))
    assert north > max(county_mean("lekima-2019", c) for c in ("330327", "330329"))


def test_convective_afternoon_has_convection_but_no_rainstorm_red(registry: GeoRegistry) -> None:
    sc = revise(shipped("convective-afternoon"), stations={"include_kinds": []})
    truth = run(sc, registry).truth
    events = truth.events
    _check_events(events)
    levels = Counter((e.hazard, e.level) for e in events)
    assert levels[("convection", "yellow")] > 10
    assert levels[("convection", "orange")] > 0
    assert levels[("short_heavy_rain", "yellow")] > 0  # "1-h totals of 30-50+ mm"
    assert levels[("rainstorm", "red")] == 0  # "nothing reaches the rainstorm red level"
    assert not [e for e in events if e.hazard == "typhoon"]
    cell_start = min(c.start for c in sc.cells)
    assert min(e.start for e in events if e.hazard == "convection") > cell_start


def test_a_typhoon_window_with_gauges_has_tide_truth(registry: GeoRegistry) -> None:
    # Hagupit's landfall hours on Yueqing, high water at 19Z: tide and flood truth from the gauges
    sc = window(
        shipped("hagupit-2020"),
        10.0,
        offset_h=12.0,
        stations={"include_kinds": ["tide", "water_level"]},
        grid={"cell_deg": 0.03},
    )
    truth = run(sc, registry).truth
    _check_events(truth.events)
    assert truth.events_for("tide"), "surge on the high water reaches a warning tide"
    assert {g.hazard for g in truth.gauges.values()} == {"flood", "tide"}
    assert all(e.station_id is not None for e in truth.events_for("tide"))
