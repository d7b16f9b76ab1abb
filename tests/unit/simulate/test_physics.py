"""Physics sanity: track, wind, radar through Z–R, gauges, tide, rivers, surge, slopes, a quiet day."""

from __future__ import annotations

import itertools
import json
import math
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.observations import GeoHazardObservation, RadarScan, RainObservation, WaterLevelObservation
from services.common.geo.registry import GeoRegistry
from services.ingest.simulate.scenario import (
    TICK_S,
    GridConfig,
    HydrologyConfig,
    Scenario,
    SurgeConfig,
    TideConfig,
    TyphoonConfig,
)
from services.ingest.simulate.truth import BEAUFORT_MS, CONVECTION_DBZ, SHR_THRESHOLDS_MM, GroundTruth
from services.ingest.simulate.world import World
from services.ingest.simulate.world.fields import PointWind
from services.ingest.simulate.world.geohazard import DAY_S, tangent_angle_deg
from services.ingest.simulate.world.grid import build_grid
from services.ingest.simulate.world.hydrology import M2_PERIOD_S, RiverGaugeSpec, Rivers, Surge, Tide
from services.ingest.simulate.world.radar import dbz_to_rate_mm_h, rate_to_dbz
from services.ingest.simulate.world.testing import MiniRegistry
from services.ingest.simulate.world.typhoon import StormState, Track, pressure_hpa, wind_uv
from tests.unit.simulate.support import NO_FAULTS, NO_NOISE, START, TYPHOONS, Run, run, shipped, world

# --------------------------------------------------------------------------- typhoon


@pytest.mark.parametrize("name", TYPHOONS)
def test_the_track_passes_through_every_best_track_point(name: str) -> None:
    typhoon = shipped(name).typhoon
    assert typhoon is not None
    track = Track(typhoon.track, typhoon.radius_max_wind_km)
    for point in typhoon.track:
        state = track.state(point.time.timestamp())
        assert state is not None
        assert (state.lat, state.lon, state.vmax_ms, state.mslp_hpa) == pytest.approx(
            (point.lat, point.lon, point.vmax_ms, point.mslp_hpa), abs=1e-9
        )
        assert state.rmw_km == pytest.approx(point.rmw_km or typhoon.radius_max_wind_km)
    first, last = typhoon.track[0].time.timestamp(), typhoon.track[-1].time.timestamp()
    assert track.state(first - 1.0) is None
    assert track.state(last + 1.0) is None


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(TYPHOONS),
    segment=st.integers(min_value=0, max_value=20),
    w=st.floats(0.0, 1.0, exclude_max=True),
)
def test_between_points_the_track_is_linear_in_time(name: str, segment: int, w: float) -> None:
    typhoon = shipped(name).typhoon
    assert typhoon is not None
    points = typhoon.track
    a, b = points[segment % (len(points) - 1)], points[segment % (len(points) - 1) + 1]
    t = a.time.timestamp() + w * (b.time.timestamp() - a.time.timestamp())
    state = Track(points, typhoon.radius_max_wind_km).state(t)
    assert state is not None
    assert state.lat == pytest.approx(a.lat + w * (b.lat - a.lat), abs=1e-9)
    assert state.lon == pytest.approx(a.lon + w * (b.lon - a.lon), abs=1e-9)
    assert state.vmax_ms == pytest.approx(a.vmax_ms + w * (b.vmax_ms - a.vmax_ms), abs=1e-9)
    # the storm moves along the segment
    assert math.copysign(1.0, state.v_move_ms) == math.copysign(1.0, b.lat - a.lat) or b.lat == a.lat
    assert math.copysign(1.0, state.u_move_ms) == math.copysign(1.0, b.lon - a.lon) or b.lon == a.lon


def _still_storm(vmax: float = 40.0, mslp: float = 960.0, rmw: float = 30.0) -> StormState:
    return StormState(lon=122.0, lat=27.0, vmax_ms=vmax, mslp_hpa=mslp, rmw_km=rmw, u_move_ms=0.0, v_move_ms=0.0)


def test_holland_wind_peaks_at_the_radius_of_maximum_wind_and_turns_anticlockwise() -> None:
    config = TyphoonConfig(name="T", track=shipped("lekima-2019").typhoon.track)  # type: ignore[union-attr]
    state = _still_storm()
    r = np.linspace(1.0, 400.0, 800)
    u, v = wind_uv(state, config, r, np.zeros_like(r))
    speed = np.hypot(u, v)
    assert r[int(np.argmax(speed))] == pytest.approx(30.0, abs=1.0)
    assert float(speed.max()) == pytest.approx(40.0, rel=0.01)
    assert speed[-1] < 0.35 * speed.max()
    # east of the centre, the wind blows north (anticlockwise) and a little inwards (inflow angle)
    east = int(np.searchsorted(r, 60.0))
    assert v[east] > 0.0
    assert u[east] < 0.0
    assert math.degrees(math.atan2(-u[east], v[east])) == pytest.approx(config.inflow_angle_deg, abs=0.01)
    p = pressure_hpa(state, config, np.array([0.0, 1000.0]), np.zeros(2))
    assert p[0] == pytest.approx(960.0, abs=0.5)
    assert p[1] == pytest.approx(config.ambient_pressure_hpa, abs=1.0)


# --------------------------------------------------------------------------- radar and Z–R


@pytest.mark.parametrize(
    ("dbz", "rate_300_14", "rate_200_16"),
    [(30.0, 2.4, 2.7), (40.0, 12.2, 11.5), (45.0, 27.9, 23.7), (50.0, 63.4, 48.6), (55.0, 144.3, 99.9)],
)
def test_z_r_matches_the_standards_table(dbz: float, rate_300_14: float, rate_200_16: float) -> None:
    # STANDARDS §4.2 [D]: R = (Z/a)^(1/b)
    assert float(dbz_to_rate_mm_h(dbz, 300.0, 1.4)) == pytest.approx(rate_300_14, abs=0.06)
    assert float(dbz_to_rate_mm_h(dbz, 200.0, 1.6)) == pytest.approx(rate_200_16, abs=0.06)
    assert float(rate_to_dbz(dbz_to_rate_mm_h(dbz, 300.0, 1.4), 300.0, 1.4, 5.0)[()]) == pytest.approx(dbz)


def test_rate_to_dbz_and_back_and_no_echo_below_the_minimum() -> None:
    rates = np.array([0.0, 0.01, 0.1, 1.0, 10.0, 100.0])
    dbz = rate_to_dbz(rates, 300.0, 1.4, 5.0)
    assert np.isnan(dbz[:2]).all()  # 0 and 0.01 mm/h are below 5 dBZ
    np.testing.assert_allclose(dbz_to_rate_mm_h(dbz[2:], 300.0, 1.4), rates[2:], rtol=1e-12)


def test_radar_scans_are_the_true_rain_through_z_r(mini: MiniRegistry) -> None:
    cell = {"start": START, "lon": 120.72, "lat": 28.02, "peak_dbz": 56.0, "radius_km": 8.0, "speed_kmh": 0.0}
    sc = world(
        cells=[cell],
        noise=NO_NOISE,
        faults=NO_FAULTS,
        stations={"include_prefixes": ["RADAR-X-01"]},
        end=START + timedelta(minutes=50),
    )
    model = World(sc, mini)
    (site,) = model.radars
    checked = 0
    for tick in model.run(GroundTruth()):
        for scan in tick.observations:
            assert isinstance(scan, RadarScan)
            rain = model.atmosphere.rain_grid(scan.observed_at.timestamp())
            window = rain[site.rows[0] : site.rows[1], site.cols[0] : site.cols[1]]
            truth = rate_to_dbz(window, 300.0, 1.4, 5.0)
            truth[site.outside] = np.nan
            seen = scan.dbz().astype(np.float64)
            assert (np.isnan(seen) == np.isnan(truth)).all()
            echo = ~np.isnan(truth)
            np.testing.assert_allclose(seen[echo], truth[echo], atol=0.25 + 1e-4)  # 0.5-dBZ packing
            # the scan inverted through Z–R gives the true rain back, to the packing's 4 %
            np.testing.assert_allclose(dbz_to_rate_mm_h(seen[echo], 300.0, 1.4), window[echo], rtol=0.043)
            checked += 1
    assert checked == 50
    # at maturity the cell shows the peak it was given
    mature = model.atmosphere.rain_grid((START + timedelta(minutes=35)).timestamp())
    assert float(np.nanmax(rate_to_dbz(mature, 300.0, 1.4, 5.0))) == pytest.approx(56.0, abs=0.5)


def test_radar_noise_is_gaussian_in_dbz(mini: MiniRegistry) -> None:
    cell = {"start": START, "lon": 120.72, "lat": 28.02, "peak_dbz": 56.0, "radius_km": 15.0, "speed_kmh": 0.0}
    sc = world(
        cells=[cell],
        noise={"radar_dbz_sigma": 2.0},
        faults=NO_FAULTS,
        stations={"include_prefixes": ["RADAR-X-01"]},
        end=START + timedelta(minutes=40),
    )
    model = World(sc, mini)
    (site,) = model.radars
    errors: list[float] = []
    for tick in model.run(GroundTruth()):
        for scan in tick.observations:
            assert isinstance(scan, RadarScan)
            window = model.atmosphere.rain_grid(scan.observed_at.timestamp())[
                site.rows[0] : site.rows[1], site.cols[0] : site.cols[1]
            ]
            truth = rate_to_dbz(window, 300.0, 1.4, 5.0)
            seen = scan.dbz().astype(np.float64)
            strong = (truth > 30.0) & ~np.isnan(seen)
            errors += list((seen - truth)[strong])
    assert len(errors) > 1000
    assert float(np.mean(errors)) == pytest.approx(0.0, abs=0.1)
    assert float(np.std(errors)) == pytest.approx(2.0, rel=0.05)


# --------------------------------------------------------------------------- gauges


def _true_minutes(model: World, sc: Scenario) -> dict[str, list[float]]:
    """Rain in each minute at each automatic gauge, from the true field (trapezoid)."""
    atm, points = model.atmosphere, model.aws.points
    out: dict[str, list[float]] = defaultdict(list)
    t = sc.start.timestamp()
    before = points.sampler(atm.rain_grid(t))
    while t < sc.end.timestamp():
        t += TICK_S
        now = points.sampler(atm.rain_grid(t))
        for sid, mm in zip(points.ids, 0.5 * (before + now) * TICK_S / 3600.0, strict=True):
            out[sid].append(float(mm))
        before = now
    return out


def _aws_reports(result: Run) -> dict[str, list[RainObservation]]:
    out: dict[str, list[RainObservation]] = defaultdict(list)
    for obs in result.observations:
        if isinstance(obs, RainObservation) and obs.station_id.startswith("RAIN-A"):
            out[obs.station_id].append(obs)
    return out


GAUGE_WORLD: dict[str, Any] = {
    "faults": NO_FAULTS,
    "stations": {"include_kinds": ["rain"]},
    "background": {"rain_mm_h": 12.0, "start": START + timedelta(minutes=10), "ramp_min": 20.0},
}


def test_gauges_report_the_true_field_at_their_location(mini: MiniRegistry) -> None:
    sc = world(**GAUGE_WORLD, noise=NO_NOISE)
    model = World(sc, mini)
    result = Run(list(model.run(GroundTruth())), GroundTruth())
    expected = _true_minutes(model, sc)
    reports = _aws_reports(result)
    assert set(reports) == set(expected)
    for sid, series in reports.items():
        assert [r.rain_mm for r in series] == pytest.approx(expected[sid], abs=0.0005 + 1e-9)
        assert sum(expected[sid]) > 2.0, "it rained at every gauge"


def test_gauge_noise_is_bounded_and_mean_preserving(mini: MiniRegistry) -> None:
    sigma = 0.1
    sc = world(**GAUGE_WORLD, noise={**NO_NOISE, "rain_gauge_sigma": sigma})
    model = World(sc, mini)
    result = Run(list(model.run(GroundTruth())), GroundTruth())
    expected = _true_minutes(model, sc)
    ratios = []
    for sid, series in _aws_reports(result).items():
        for obs, true_mm in zip(series, expected[sid], strict=True):
            if true_mm > 0.05:
                ratios.append(obs.rain_mm / true_mm)
    logs = np.log(ratios) + 0.5 * sigma * sigma
    assert len(ratios) > 500
    assert float(np.abs(logs).max()) < 5.0 * sigma + 0.02  # multiplicative, bounded (0.001-mm rounding aside)
    assert float(np.mean(ratios)) == pytest.approx(1.0, abs=0.02)
    assert float(np.std(logs)) == pytest.approx(sigma, rel=0.15)


def test_tipping_bucket_reports_whole_tips_and_loses_nothing(mini: MiniRegistry) -> None:
    sc = world(**GAUGE_WORLD, noise={**NO_NOISE, "rain_resolution_mm": 0.2})
    model = World(sc, mini)
    result = Run(list(model.run(GroundTruth())), GroundTruth())
    expected = _true_minutes(model, sc)
    for sid, series in _aws_reports(result).items():
        tips = [r.rain_mm / 0.2 for r in series]
        assert tips == pytest.approx([round(t) for t in tips], abs=1e-6)
        assert 0.0 <= sum(expected[sid]) - sum(r.rain_mm for r in series) < 0.2 + 1e-6


def test_automatic_stations_report_the_true_wind(mini: MiniRegistry) -> None:
    windy = {**GAUGE_WORLD["background"], "wind_ms": 6.0, "wind_from_deg": 45.0}
    sc = world(**{**GAUGE_WORLD, "background": windy}, noise=NO_NOISE)
    model = World(sc, mini)
    result = Run(list(model.run(GroundTruth())), GroundTruth())
    for sid, series in _aws_reports(result).items():
        for obs in series:
            assert obs.wind_mean_ms == pytest.approx(6.0, abs=0.05), sid
            assert obs.wind_dir_deg == pytest.approx(45.0, abs=0.05)
            assert obs.wind_gust_ms is not None
            assert 1.4 * 6.0 - 0.1 <= obs.wind_gust_ms <= 1.6 * 6.0 + 0.1  # [typhoon] gust_factor default


def test_a_saturated_gauge_stays_inside_the_contract() -> None:
    from services.ingest.simulate.scenario import NoiseConfig
    from services.ingest.simulate.world.fields import Atmosphere
    from services.ingest.simulate.world.gauges import RainGauges

    sc = world()
    atm = Atmosphere(sc, build_grid(GridConfig(cell_deg=0.05)))
    gauges = RainGauges(
        atm.points(["RAIN-X"], [120.6], [28.0], [10.0]),
        [True],
        60,
        NoiseConfig(rain_gauge_sigma=0.0, rain_resolution_mm=0.0),
        (1.4, 1.6),
        seed=1,
    )
    gauges.accumulate(np.array([9.0]))  # 540 mm/h: beyond any gauge
    wind = PointWind(np.array([69.0]), np.array([90.0]), np.array([0.0]), np.array([0.0]))
    _, (fields,) = gauges.report(START, wind)
    obs = RainObservation(**fields)  # valid: the gauge saturates at the contract's limits
    assert obs.rain_mm <= 400.0 / 60.0
    assert obs.wind_gust_ms is not None
    assert obs.wind_gust_ms <= 110.0


# --------------------------------------------------------------------------- tide, surge, rivers


def test_the_tide_has_the_m2_period() -> None:
    assert pytest.approx(12.42, abs=0.005) == M2_PERIOD_S / 3600.0  # STANDARDS §3.5
    tide = Tide(TideConfig(m2_amplitude_m=2.0, mean_level_m=0.3, high_water_at=START))
    t = np.linspace(START.timestamp(), START.timestamp() + 3 * 86400, 500)
    for when in t:
        assert tide.level_m(when + M2_PERIOD_S) == pytest.approx(tide.level_m(when), abs=1e-9)
        assert 0.3 - 2.0 - 1e-9 <= tide.level_m(when) <= 0.3 + 2.0 + 1e-9
    assert tide.level_m(START.timestamp()) == pytest.approx(2.3)
    assert tide.level_m(START.timestamp() + M2_PERIOD_S / 2) == pytest.approx(-1.7)


def test_tide_stations_see_high_water_every_12_42_hours(mini: MiniRegistry) -> None:
    high = START + timedelta(hours=3)
    sc = world(
        stations={"include_kinds": ["tide"]},
        grid={"cell_deg": 0.05},
        background={"rain_mm_h": 0.0, "wind_ms": 0.0},
        tide={"m2_amplitude_m": 2.0, "mean_level_m": 0.3, "high_water_at": high},
        noise=NO_NOISE,
        faults=NO_FAULTS,
        end=START + timedelta(hours=28),
    )
    series = [(o.observed_at, o) for o in run(sc, mini).observations if isinstance(o, WaterLevelObservation)]
    levels = np.array([o.level_m for _, o in series])
    times = [at for at, _ in series]
    peaks = [times[i] for i in range(1, len(levels) - 1) if levels[i - 1] < levels[i] >= levels[i + 1]]
    assert len(peaks) == 3  # 03:00, 15:25, 03:50 the next day
    assert abs((peaks[0] - high).total_seconds()) <= 150.0  # 5-min reports
    for a, b in itertools.pairwise(peaks):
        assert (b - a).total_seconds() == pytest.approx(M2_PERIOD_S, abs=300.0)
    assert float(levels.max()) == pytest.approx(2.3, abs=0.01)
    assert float(levels.min()) == pytest.approx(-1.7, abs=0.01)


def test_surge_is_inverse_barometer_plus_onshore_setup_lagged() -> None:
    config = SurgeConfig(inverse_barometer_m_per_hpa=0.01, wind_setup_m_per_ms2=0.001, response_time_h=1.0)
    surge = Surge(config, 1)
    seaward = math.radians(config.coast_normal_deg)
    onshore = PointWind(  # 20 m/s blowing from the sea towards the coast
        np.array([20.0]), np.array([0.0]), np.array([-20.0 * math.sin(seaward)]), np.array([-20.0 * math.cos(seaward)])
    )
    forcing = surge.forcing(np.array([968.0]), 1008.0, onshore)
    assert float(forcing[0]) == pytest.approx(0.4 + 0.4)  # 40 hPa × 1 cm + 0.001 × 20²
    offshore = PointWind(onshore.speed_ms, onshore.from_deg, -onshore.u_sea_ms, -onshore.v_sea_ms)
    assert float(surge.forcing(np.array([1008.0]), 1008.0, offshore)[0]) == pytest.approx(-0.4 * 0.3)
    surge.step(60.0, np.zeros(1))
    level = 0.0
    for _ in range(60):  # one response time
        level = float(surge.step(60.0, forcing)[0])
    assert level == pytest.approx(0.8 * (1.0 - math.exp(-1.0)), rel=1e-6)


def test_a_river_reaches_its_warning_level_at_the_warning_runoff() -> None:
    grid = build_grid(GridConfig(cell_deg=0.05))
    hydrology = HydrologyConfig()
    ou = hydrology.river("Ou")
    gauge = RiverGaugeSpec("WL-OU-X", "Ou", 120.66, 28.03, warning_m=4.5, guaranteed_m=5.5, historical_max_m=6.5)
    rivers = Rivers(grid, [gauge], hydrology)
    assert float(rivers.levels_m(0.0, np.zeros(1))[0]) < 4.5 - 0.5 * ou.normal_below_warning_m
    rain = (ou.warning_runoff_mm_h - hydrology.baseflow_mm_h) / hydrology.runoff_coefficient
    grid_rain = np.full(grid.shape, rain)
    levels = []
    for _ in range(int(10 * ou.reservoir_k_h * 60)):  # ten reservoir constants of steady rain, minute steps
        rivers.step(60.0, grid_rain)
        levels.append(float(rivers.levels_m(0.0, np.zeros(1))[0]))
    assert all(b >= a for a, b in itertools.pairwise(levels)), "a river under steady rain only rises"
    assert levels[-1] == pytest.approx(4.5, abs=0.01)


# --------------------------------------------------------------------------- slopes


def _slope_world(rain_mm_h: float, **geohazard: Any) -> Scenario:
    return world(
        stations={"include_kinds": ["geohazard"]},
        grid={"cell_deg": 0.05},
        background={"rain_mm_h": rain_mm_h, "variation": 0.0, "ramp_min": 0.0, "wind_ms": 0.0},
        geohazard={"failure_fraction": 1.0, "lead_time_h": [1.0, 2.0], **geohazard},
        noise=NO_NOISE,
        faults=NO_FAULTS,
        end=START + timedelta(hours=12),
    )


def test_slopes_fail_only_after_effective_rain_reaches_their_threshold(mini: MiniRegistry) -> None:
    sc = _slope_world(25.0)
    model = World(sc, mini)
    slopes = model.slopes
    truth = GroundTruth()
    reached: dict[int, float] = {}
    reports: dict[str, list[GeoHazardObservation]] = defaultdict(list)
    for tick in model.run(truth):
        for above in np.flatnonzero(slopes.effective_mm >= slopes.threshold):
            reached.setdefault(int(above), tick.at.timestamp())
        for point, trigger in enumerate(slopes.trigger_s):
            if not np.isnan(trigger):
                assert point in reached, "triggered before the threshold was reached"
                assert trigger == reached[point]
        for obs in tick.observations:
            assert isinstance(obs, GeoHazardObservation)
            reports[obs.station_id].append(obs)
    assert len(truth.failures) == len(slopes.points) == 4
    for i, sid in enumerate(slopes.points.ids):
        failed_at = truth.failures[sid].timestamp()
        assert failed_at == slopes.trigger_s[i] + slopes.lead_s[i]
        assert 3600.0 <= failed_at - reached[i] <= 7200.0
        # 120 mm (orange, mini registry) at 25 mm/h (terrain-modulated) takes hours to build
        assert reached[i] - START.timestamp() >= 2 * 3600.0
        # the last report carries the slide, then the point falls silent
        last = reports[sid][-1]
        assert last.observed_at.timestamp() >= failed_at
        assert last.displacement_mm - reports[sid][-2].displacement_mm >= sc.geohazard.slide_mm
        assert last.observed_at.timestamp() - failed_at < sc.stations.geohazard_interval_s
    events = truth.events_for("geohazard")
    assert {e.station_id for e in events} == set(slopes.points.ids)
    assert all(e.level == "red" and e.start == e.end for e in events)


def test_no_rain_no_failure(mini: MiniRegistry) -> None:
    truth = run(_slope_world(0.0), mini).truth
    assert truth.failures == {}
    assert truth.events_for("geohazard") == []


def test_antecedent_rain_alone_can_prime_a_slope(mini: MiniRegistry) -> None:
    truth = run(_slope_world(0.0, antecedent_effective_rain_mm=200.0), mini).truth
    assert len(truth.failures) == 4
    assert all(
        START + timedelta(hours=1) <= when <= START + timedelta(hours=2, minutes=1) for when in truth.failures.values()
    )


def test_a_slope_accelerates_to_failure_as_the_tangent_angle_method_expects(mini: MiniRegistry) -> None:
    model = World(_slope_world(25.0), mini)
    for _ in model.run(GroundTruth()):
        pass
    slopes = model.slopes
    for i in range(len(slopes.points)):
        trigger, fail = float(slopes.trigger_s[i]), float(slopes.fail_s[i])

        def velocity(t: float, index: int = i, dt: float = 60.0) -> float:  # mm/day over the minute before t
            return float((slopes.displacement_mm(t)[index] - slopes.displacement_mm(t - dt)[index]) / dt * DAY_S)

        creep = float(slopes.creep[i])
        assert velocity(trigger + 60.0) == pytest.approx(creep, rel=0.1)  # still creeping when it starts
        assert tangent_angle_deg(velocity(trigger + 60.0), creep) == pytest.approx(45.0, abs=2.5)
        assert velocity(fail) == pytest.approx(500.0, rel=0.1)  # failure_velocity_mm_per_day (default)
        assert tangent_angle_deg(velocity(fail), creep) > 85.0  # STANDARDS §2.4: red
        assert all(velocity(t) < velocity(t + 600.0) for t in np.arange(trigger + 60.0, fail - 600.0, 600.0))


# --------------------------------------------------------------------------- a quiet day


@pytest.fixture(scope="module")
def quiet(registry: GeoRegistry) -> tuple[Run, GeoRegistry]:
    """quiet-day, the whole day, every township, a few stations of every kind, no faults."""
    sc = shipped("quiet-day")
    prefixes = ["RAIN-A000", "RAIN-U000", "RAIN-M000", "GEO-000", "WL-", "TIDE-", "RADAR-X-01"]
    sc = Scenario.model_validate({**sc.model_dump(), "faults": {}, "stations": {"include_prefixes": prefixes}})
    return run(sc, registry), registry


def test_the_quiet_day_truth_has_no_events(quiet: tuple[Run, GeoRegistry]) -> None:
    result, registry = quiet
    truth = result.truth
    assert truth.events == []
    assert truth.failures == {}
    towns = truth.townships
    assert len(towns) == len(registry.townships) == 186
    assert max(s.rain_total_mm for s in towns.values()) > 0.5, "it drizzled"
    assert max(s.rain_max_1h_mm for s in towns.values()) < SHR_THRESHOLDS_MM[0][1]
    assert max(s.wind_max_ms for s in towns.values()) < BEAUFORT_MS[0][1]
    assert max((s.dbz_max or 0.0) for s in towns.values()) < CONVECTION_DBZ[0][1]
    assert all(g.level_max_m < g.warning_level_m for g in truth.gauges.values())


def _values(result: Run) -> list[dict[str, Any]]:
    """Every delivered value, as fields: valid observations and (contract-breaking) raw payloads."""
    out = [obs.model_dump() for obs in result.observations if not isinstance(obs, RadarScan)]
    out += [json.loads(raw) for raw in result.raw]
    return out


def test_the_quiet_day_produces_no_value_above_a_warning_threshold(quiet: tuple[Run, GeoRegistry]) -> None:
    result, registry = quiet
    hourly: dict[str, dict[datetime, float]] = defaultdict(lambda: defaultdict(float))
    levels = {s.station_id: s.water.warning_level_m for s in registry.stations if s.water is not None}
    first_last: dict[str, list[float]] = {}
    kinds = set()
    for fields in _values(result):
        sid = fields["station_id"]
        kinds.add(fields["kind"])
        if fields["kind"] == "rain":
            assert (fields.get("wind_mean_ms") or 0.0) < 10.8  # Beaufort 6: gale blue
            assert (fields.get("wind_gust_ms") or 0.0) < 13.9  # gust force 7
            hourly[sid][fields["observed_at"].replace(minute=0, second=0)] += fields["rain_mm"]
        elif fields["kind"] == "water_level":
            assert fields["level_m"] < levels[sid], sid
        elif fields["kind"] == "geohazard":
            first_last.setdefault(sid, []).append(fields["displacement_mm"])
    assert kinds == {"rain", "water_level", "geohazard"}
    # clock-hour totals bound every rolling hour to twice their maximum
    assert max(max(h.values()) for h in hourly.values()) < SHR_THRESHOLDS_MM[0][1] / 2
    for sid, series in first_last.items():
        assert series[-1] - series[0] < 2.0, sid  # creep, far below the 2 mm/day attention gate
    scans = [obs for obs in result.observations if isinstance(obs, RadarScan)]
    assert len(scans) == 24 * 60
    assert max(float(np.nanmax(np.nan_to_num(s.dbz(), nan=-99.0))) for s in scans) < CONVECTION_DBZ[0][1]
