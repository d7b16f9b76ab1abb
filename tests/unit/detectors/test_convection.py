"""Radar convective nowcast: identification, tracking, swaths, assessments.

The headline scenario (Wenzhou grid 119.6–121.3E, 27.0–28.65N at 0.01°, 186 townships):
a Gaussian reflectivity blob (peak 55 dBZ, σ = 8 km: a mature storm) moves east at 40 km/h;
one scan every 6 min. After the sixth scan the township 40 km downstream must be warned
≈ 60 min ahead, even with the position uncertainty that grows with lead.

    scan      0      1      2      3      4      5  (t = 30 min)            onset ≈ 60 min
    x (km)    0      4      8     12     16     20 ─────── 40 km ─────────▶ T (downstream)
              ●──────●──────●──────●──────●──────●  - - - - - - - - - - - ▶
    U (20 km upstream of the last position): behind the cell → none
    N (30 km north of the path): out of the swath → none

Tracking timelines (one column per 6-min scan; ``●`` cell seen, ``_`` no cell):

    steady-east-40        ●●●●●●       one track, 40 km/h, heading 90°
    implausible-jump      ●  ●(50 km)   500 km/h is not the same cell: a new track
    missed-one-scan       ●●●_●        same track (the gate widens with elapsed time)
    missed-too-many       ●●___●       pruned after 2 misses: a new track
    crossing-lanes        two cells, 15 km apart, opposite ways: identities kept
    new-cell-steering     ●●●● + a new cell: it moves with the mean of established tracks
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.common import LEVEL_RANK
from schemas.observations import RadarScan
from services.rules.detectors.convection import (
    Cell,
    CellIdentification,
    ConvectionConfig,
    ConvectionLevels,
    TownshipPoints,
    Track,
    TrackingConfig,
    ZRCoefficients,
    assess_convection,
    current_tracks,
    dbz_to_rain_rate_mm_h,
    identify_cells,
    new_radar_state,
    nowcast_swaths,
    track_cells,
)

LON0, LAT0, CELL_DEG = 119.6, 27.0, 0.01
N_ROWS, N_COLS = 165, 170
LAT = 27.8
KM_LON = 111.32 * math.cos(math.radians(LAT))
KM_LAT = 110.574
T0 = datetime(2019, 8, 9, 6, 0, tzinfo=UTC)
T0_S = int(T0.timestamp())
RADAR = "RADAR-WZ"
Grid = npt.NDArray[np.float64]


def blobs(centres: list[tuple[float, float, float, float]], n_rows: int = N_ROWS, n_cols: int = N_COLS) -> Grid:
    """dBZ grid with Gaussian blobs (lon, lat, peak dBZ, σ km) over a 20 dBZ floor; NaN below."""
    rows = LAT0 + (np.arange(n_rows) + 0.5) * CELL_DEG
    cols = LON0 + (np.arange(n_cols) + 0.5) * CELL_DEG
    grid = np.full((n_rows, n_cols), 20.0)
    for lon, lat, peak, sigma in centres:
        x = (cols[None, :] - lon) * 111.32 * math.cos(math.radians(lat))
        y = (rows[:, None] - lat) * KM_LAT
        grid = np.maximum(grid, 20.0 + (peak - 20.0) * np.exp(-(x * x + y * y) / (2 * sigma * sigma)))
    grid[grid < 20.5] = np.nan
    return grid


def radar_scan(minute: float, grid: Grid) -> RadarScan:
    return RadarScan(
        station_id=RADAR,
        observed_at=T0 + timedelta(minutes=minute),
        band="S",
        origin_lon=LON0,
        origin_lat=LAT0,
        cell_deg=CELL_DEG,
        n_rows=grid.shape[0],
        n_cols=grid.shape[1],
        dbz_b64=RadarScan.pack_dbz(grid),
    )


def east(lon: float, km: float) -> float:
    return lon + km / KM_LON


def north(lat: float, km: float) -> float:
    return lat + km / KM_LAT


# ── identification ────────────────────────────────────────────────────────────────────────


def _speckle() -> Grid:
    grid = np.full((N_ROWS, N_COLS), np.nan)
    rng = np.random.default_rng(7)
    grid[rng.random(grid.shape) < 0.004] = 62.0
    return grid


@pytest.mark.parametrize(
    ("grid", "expected_cells"),
    [
        pytest.param(np.full((N_ROWS, N_COLS), np.nan), 0, id="radar-outage-all-nan"),
        pytest.param(blobs([(120.2, LAT, 34.5, 6.0)]), 0, id="below-35-dbz"),
        pytest.param(_speckle(), 0, id="speckle-below-min-area"),
        pytest.param(blobs([(120.2, LAT, 55.0, 4.0)]), 1, id="one-cell"),
        pytest.param(blobs([(120.2, LAT, 55.0, 4.0), (120.8, 28.2, 50.0, 5.0)]), 2, id="two-cells"),
        pytest.param(blobs([(120.2, LAT, 55.0, 4.0), (east(120.2, 9.0), LAT, 55.0, 4.0)]), 1, id="touching-merge"),
    ],
)
def test_identify_cells_counts(grid: Grid, expected_cells: int) -> None:
    assert len(identify_cells(grid, LON0, LAT0, CELL_DEG)) == expected_cells


def test_identified_cell_geometry() -> None:
    cells = identify_cells(blobs([(120.2, LAT, 55.0, 4.0)]), LON0, LAT0, CELL_DEG)
    (cell,) = cells
    # 35 dBZ where exp(-d²/2σ²) = 15/35 → d = 4·√(2 ln(35/15)) = 5.21 km
    radius = 4.0 * math.sqrt(2 * math.log(35 / 15))
    assert cell.area_km2 == pytest.approx(math.pi * radius**2, rel=0.1)
    assert abs(cell.lon - 120.2) * KM_LON < 0.6
    assert abs(cell.lat - LAT) * KM_LAT < 0.6
    # the peak is the highest 3 × 3-pixel mean: this sharp blob (σ = 4 km) loses ≈ 2 dB to it
    assert 52.5 <= cell.max_dbz <= 55.0
    # ≥ 45 dBZ core: d = 4·√(2 ln(35/25)) = 3.28 km
    assert cell.core_area_km2 == pytest.approx(math.pi * (4.0 * math.sqrt(2 * math.log(35 / 25))) ** 2, rel=0.15)
    row0, row1, col0, col1 = cell.bbox
    assert row0 < (LAT - LAT0) / CELL_DEG < row1
    assert col0 < (120.2 - LON0) / CELL_DEG < col1


def test_diagonal_pixels_are_one_cell() -> None:
    grid = np.full((10, 10), np.nan)
    for i in range(5):
        grid[i, i] = 50.0
    cells = identify_cells(grid, LON0, LAT0, CELL_DEG, CellIdentification(min_area_km2=0.0))
    assert len(cells) == 1


# ── tracking ──────────────────────────────────────────────────────────────────────────────


def cell_at(lon: float, lat: float, max_dbz: float = 50.0, area_km2: float = 80.0) -> Cell:
    return Cell(lon=lon, lat=lat, area_km2=area_km2, max_dbz=max_dbz, core_area_km2=10.0, bbox=(0, 1, 0, 1))


def run_tracks(timeline: list[list[Cell]], config: TrackingConfig | None = None) -> tuple[list[Track], list[int]]:
    """Feed one list of cells per 6-min scan; return the last tracks and the ids seen per scan."""
    config = config or TrackingConfig()
    state = new_radar_state()
    tracks: list[Track] = []
    first_ids: list[int] = []
    for scan, cells in enumerate(timeline):
        result = track_cells(state, cells, T0_S + scan * 360, config)
        assert result is not None
        tracks = result
        first_ids.append(tracks[0].track_id if tracks else -1)
    return tracks, first_ids


def steady(scans: int, km_per_scan: float = 4.0, lat: float = LAT) -> list[list[Cell]]:
    return [[cell_at(east(120.0, km_per_scan * i), lat)] for i in range(scans)]


def test_steady_cell_speed_and_heading() -> None:
    tracks, ids = run_tracks(steady(6))
    (track,) = tracks
    assert len(set(ids)) == 1
    assert track.scans == 6
    assert track.speed_kmh == pytest.approx(40.0, rel=0.02)
    assert track.heading_deg == pytest.approx(90.0, abs=1.0)
    assert track.motion == "track"


@pytest.mark.parametrize(
    ("timeline", "same_track_at_end", "expected_scans"),
    [
        pytest.param([[cell_at(120.0, LAT)], [cell_at(east(120.0, 50), LAT)]], False, 1, id="implausible-jump"),
        pytest.param([*steady(3), [], [cell_at(east(120.0, 16), LAT)]], True, 4, id="missed-one-scan"),
        pytest.param([*steady(2), [], [], [], [cell_at(east(120.0, 20), LAT)]], False, 1, id="missed-too-many"),
        pytest.param([*steady(5)], True, 5, id="steady"),
    ],
)
def test_track_continuity(timeline: list[list[Cell]], same_track_at_end: bool, expected_scans: int) -> None:
    tracks, ids = run_tracks(timeline)
    (track,) = tracks
    assert (track.track_id == ids[0]) is same_track_at_end
    assert track.scans == expected_scans


def test_crossing_lanes_keep_identities() -> None:
    timeline = [[cell_at(east(120.0, 4 * i), LAT), cell_at(east(120.0, 30 - 4 * i), north(LAT, 15))] for i in range(5)]
    tracks, _ = run_tracks(timeline)
    headings = sorted(round(t.heading_deg) for t in tracks)
    assert headings == [90, 270]
    assert all(t.scans == 5 for t in tracks)


def test_new_cell_moves_with_steering_flow() -> None:
    timeline = steady(4)
    timeline[-1] = [*timeline[-1], cell_at(120.5, 28.3)]
    tracks, _ = run_tracks(timeline)
    new = next(t for t in tracks if t.scans == 1)
    assert new.motion == "steering"
    assert new.u_kmh == pytest.approx(40.0, rel=0.02)


@pytest.mark.parametrize(
    ("dbz_per_scan", "expected_trend"),
    [
        pytest.param(0.0, 0.0, id="steady-intensity"),
        pytest.param(2.0, 2.0 * 10 / 6, id="growing"),
        pytest.param(-2.0, -2.0 * 10 / 6, id="decaying"),
        pytest.param(6.0, 5.0, id="growth-capped"),
    ],
)
def test_intensity_trend_per_10_min(dbz_per_scan: float, expected_trend: float) -> None:
    timeline = [[cell_at(east(120.0, 4 * i), LAT, max_dbz=40.0 + dbz_per_scan * i)] for i in range(5)]
    (track,), _ = run_tracks(timeline)
    assert track.trend_dbz_per_10min == pytest.approx(expected_trend, abs=1e-6)


def test_late_and_repeated_scans_leave_state_alone() -> None:
    state = new_radar_state()
    track_cells(state, [cell_at(120.0, LAT)], T0_S + 360)
    before = json.dumps(state)
    assert track_cells(state, [cell_at(120.1, LAT)], T0_S) is None
    again = track_cells(state, [cell_at(120.0, LAT)], T0_S + 360)
    assert json.dumps(state) == before
    assert again is not None
    assert [t.scans for t in again] == [1]


# ── Z–R and levels ────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("dbz", "zr", "expected_mm_h"),
    [
        pytest.param(40.0, ZRCoefficients(), 12.2, id="40dbz-convective"),
        pytest.param(45.0, ZRCoefficients(), 27.9, id="45dbz-convective"),
        pytest.param(50.0, ZRCoefficients(), 63.4, id="50dbz-convective"),
        pytest.param(55.0, ZRCoefficients(), 144.3, id="55dbz-convective"),
        pytest.param(62.0, ZRCoefficients(), 144.3, id="hail-capped-at-55"),
        pytest.param(45.0, ZRCoefficients(a=200.0, b=1.6), 23.7, id="marshall-palmer"),
        pytest.param(50.0, ZRCoefficients(a=250.0, b=1.2, max_dbz=60.0), 147.4, id="tropical"),
        pytest.param(float("nan"), ZRCoefficients(), 0.0, id="no-echo"),
    ],
)
def test_z_r_matches_standards_table(dbz: float, zr: ZRCoefficients, expected_mm_h: float) -> None:
    assert dbz_to_rain_rate_mm_h(dbz, zr) == pytest.approx(expected_mm_h, abs=0.06)


@pytest.mark.parametrize(
    ("dbz", "levels", "expected"),
    [
        pytest.param(40.0, ConvectionLevels(), "none", id="40-dbz-is-moderate-rain-not-convection"),
        pytest.param(44.9, ConvectionLevels(), "none", id="below-yellow"),
        pytest.param(39.9, ConvectionLevels(blue_dbz=40.0), "none", id="below-configured-blue"),
        pytest.param(40.0, ConvectionLevels(blue_dbz=40.0), "blue", id="configured-blue-edge"),
        pytest.param(45.0, ConvectionLevels(), "yellow", id="yellow-edge"),
        pytest.param(50.0, ConvectionLevels(), "orange", id="orange-edge"),
        pytest.param(54.9, ConvectionLevels(), "orange", id="just-below-red"),
        pytest.param(55.0, ConvectionLevels(), "red", id="red-edge"),
    ],
)
def test_convection_levels(dbz: float, levels: ConvectionLevels, expected: str) -> None:
    assert levels.level_for(dbz)[0] == expected


# ── swaths ────────────────────────────────────────────────────────────────────────────────


def track(max_dbz: float = 50.0, trend: float = 0.0, u_kmh: float = 36.0) -> Track:
    return Track(
        track_id=1,
        scan_s=T0_S,
        lon=120.0,
        lat=LAT,
        area_km2=math.pi * 25.0,
        max_dbz=max_dbz,
        core_area_km2=10.0,
        u_kmh=u_kmh,
        v_kmh=0.0,
        trend_dbz_per_10min=trend,
        scans=5,
        motion="track",
    )


def swath_for(t: Track, km_downstream: float = 30.0) -> list[tuple[int, float, float]]:
    lon = np.array([east(120.0, km_downstream)])
    lat = np.array([LAT])
    forecast = nowcast_swaths([t], lon, lat, ("330302006",))
    return [(h.onset_s - T0_S, h.max_dbz, h.rain_1h_mm) for h in forecast.hits]


def test_swath_onset_peak_and_rain() -> None:
    ((onset_s, max_dbz, rain_mm),) = swath_for(track())
    # enters when √((30 km − 36 km/h · t)² + 2 ln 2 · σ²) ≤ r_e (5 km), σ = 0.5 km (a perfect
    # track keeps only the centroid scatter): t ≥ 41.7 min → step 45
    assert onset_s == 45 * 60
    # the centroid passes over at 50 min, a step; the median miss distance 0.6 km costs 0.2 dB
    assert max_dbz == pytest.approx(50.0, abs=0.3)
    # the footprint (r ≤ 5 km) takes 10 km / 36 km/h ≈ 17 min to pass; at most that long at 50 dBZ
    assert 0.0 < rain_mm < dbz_to_rain_rate_mm_h(50.0) * 17.5 / 60


@pytest.mark.parametrize(
    ("max_dbz", "trend", "expect_hit", "max_seen"),
    [
        pytest.param(45.0, -5.0, False, None, id="decaying-cell-dies-before-arrival"),
        pytest.param(45.0, 5.0, True, 50.0, id="growth-capped-at-plus-5"),
        pytest.param(45.0, 0.0, True, 45.0, id="steady"),
    ],
)
def test_swath_intensity_trend(max_dbz: float, trend: float, expect_hit: bool, max_seen: float | None) -> None:
    hits = swath_for(track(max_dbz=max_dbz, trend=trend))
    assert bool(hits) is expect_hit
    if max_seen is not None:
        assert hits[0][1] == pytest.approx(max_seen, abs=0.3)


def test_stationary_cell_does_not_reach_distant_township() -> None:
    assert swath_for(track(u_kmh=0.0)) == []


# ── full-domain assessment ────────────────────────────────────────────────────────────────

DOWNSTREAM, UPSTREAM, SIDE, OUTSIDE = "330399001", "330399002", "330399003", "330399004"


def domain_townships(last_lon: float) -> TownshipPoints:
    rng = np.random.default_rng(11)
    rows = [(f"3303{i:05d}", float(rng.uniform(119.65, 121.25)), float(rng.uniform(27.05, 28.6))) for i in range(182)]
    rows += [
        (DOWNSTREAM, east(last_lon, 40.0), LAT),
        (UPSTREAM, east(last_lon, -20.0), LAT),
        (SIDE, east(last_lon, 40.0), north(LAT, 30.0)),
        (OUTSIDE, 122.5, LAT),  # east of the radar grid
    ]
    return TownshipPoints.from_rows(rows)


def moving_blob_scans(scans: int = 6, speed_kmh: float = 40.0, sigma_km: float = 8.0) -> list[RadarScan]:
    """A mature storm (35 dBZ out to ≈ 10 km, 45 dBZ to ≈ 7 km) moving east, one scan per 6 min."""
    return [radar_scan(6 * i, blobs([(east(120.0, speed_kmh * 0.1 * i), LAT, 55.0, sigma_km)])) for i in range(scans)]


@pytest.fixture(scope="module")
def moving_blob_run() -> tuple[list[Any], dict[str, Any], list[RadarScan], TownshipPoints]:
    scans = moving_blob_scans()
    towns = domain_townships(east(120.0, 20.0))
    state = new_radar_state()
    outputs = [assess_convection(scan, state, towns) for scan in scans]
    return outputs, state, scans, towns


def by_key(assessments: list[Any]) -> dict[tuple[str, str], Any]:
    return {(a.hazard, a.township_code): a for a in assessments}


def test_moving_blob_tracker_recovers_motion(moving_blob_run: Any) -> None:
    _, state, _, _ = moving_blob_run
    tracks = [r for r in state["tracks"] if r["missed"] == 0]
    assert len(tracks) == 1
    out = by_key(moving_blob_run[0][-1])[("convection", DOWNSTREAM)]
    speed = next(e.value for e in out.evidence if e.metric == "cell_speed_kmh")
    heading = next(e.value for e in out.evidence if e.metric == "cell_heading_deg")
    assert speed == pytest.approx(40.0, rel=0.15)
    assert abs(heading - 90.0) <= 15.0


def test_moving_blob_downstream_township_gets_60_min_lead(moving_blob_run: Any) -> None:
    outputs, state, scans, towns = moving_blob_run
    last = by_key(outputs[-1])
    downstream = last[("convection", DOWNSTREAM)]
    assert LEVEL_RANK[downstream.level] >= LEVEL_RANK["yellow"]
    assert downstream.certainty == "Likely"
    assert downstream.onset_at is not None
    lead_min = (downstream.onset_at - scans[-1].observed_at).total_seconds() / 60
    assert 50.0 <= lead_min <= 70.0
    # onset is when the township's forecast dBZ reaches the level, after the 35 dBZ edge arrives
    k = towns.codes.index(DOWNSTREAM)
    swath = nowcast_swaths(current_tracks(state), towns.lon[k : k + 1], towns.lat[k : k + 1], (DOWNSTREAM,))
    assert swath.base_s == T0_S + 1800  # the last scan
    (hit,) = swath.hits
    assert hit.onset_s < downstream.onset_at.timestamp()
    assert {e.metric for e in downstream.evidence} >= {
        "forecast_max_dbz",
        "cell_id",
        "cell_speed_kmh",
        "forecast_rain_1h_mm",
    }


def test_moving_blob_shr_nowcast() -> None:
    # a slower storm (20 km/h) rains on a township 20 km ahead long enough for ≥ 20 mm in an
    # hour; at 40 km/h the same storm gives only ≈ 11 mm (fast storms are brief)
    scans = moving_blob_scans(speed_kmh=20.0)
    towns = domain_townships(east(120.0, 10.0 + 20.0 - 40.0))
    state = new_radar_state()
    for scan in scans:
        out = assess_convection(scan, state, towns)
    last = by_key(out)
    convection, shr = last[("convection", DOWNSTREAM)], last[("short_heavy_rain", DOWNSTREAM)]
    assert shr.level != "none"
    assert shr.certainty == "Likely"
    assert shr.evidence[0].basis == "forecast"
    assert shr.onset_at is not None
    assert convection.onset_at is not None
    assert shr.onset_at > convection.onset_at  # the hour's rain crosses after the echo arrives
    rain = next(e.value for e in convection.evidence if e.metric == "forecast_rain_1h_mm")
    assert rain == pytest.approx(shr.evidence[0].value, abs=0.1)


@pytest.mark.parametrize("town", [pytest.param(UPSTREAM, id="upstream"), pytest.param(SIDE, id="30km-off-path")])
def test_moving_blob_spares_townships_off_the_swath(moving_blob_run: Any, town: str) -> None:
    last = by_key(moving_blob_run[0][-1])
    assert last[("convection", town)].level == "none"
    assert last[("short_heavy_rain", town)].level == "none"


def test_one_assessment_per_covered_township_and_hazard(moving_blob_run: Any) -> None:
    outputs, _, _, towns = moving_blob_run
    covered = set(towns.codes) - {OUTSIDE}
    for out in outputs:
        keys = [(a.hazard, a.township_code) for a in out]
        assert len(keys) == len(set(keys)) == 3 * len(covered)  # convection, SHR and rainstorm nowcasts
        assert {code for _, code in keys} == covered
        assert all(a.source_id == RADAR and a.assessed_at == out[0].assessed_at for a in out)


def test_late_scan_is_dropped_and_redelivery_repeats_itself() -> None:
    scans = moving_blob_scans(3)
    towns = domain_townships(east(120.0, 8.0))
    state = new_radar_state()
    for scan in scans:
        last = assess_convection(scan, state, towns)
    snapshot = json.dumps(state)
    assert assess_convection(scans[0], state, towns) == []
    assert assess_convection(scans[-1], state, towns) == last
    assert json.dumps(state) == snapshot


def test_radar_outage_clears_every_township() -> None:
    towns = domain_townships(120.2)
    state = new_radar_state()
    for scan in moving_blob_scans(3):
        assess_convection(scan, state, towns)
    outage = assess_convection(radar_scan(60, np.full((N_ROWS, N_COLS), np.nan)), state, towns)
    assert outage
    assert all(a.level == "none" for a in outage)


# ── properties ────────────────────────────────────────────────────────────────────────────

small_blob = st.tuples(
    st.floats(min_value=119.65, max_value=119.95),
    st.floats(min_value=27.05, max_value=27.35),
    st.floats(min_value=30.0, max_value=65.0),
    st.floats(min_value=2.0, max_value=6.0),
)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.lists(small_blob, max_size=4), min_size=1, max_size=8))
def test_property_state_bounded_json_and_idempotent(scans: list[list[tuple[float, float, float, float]]]) -> None:
    config = ConvectionConfig(tracking=TrackingConfig(max_tracks=5, history_scans=3, history_s=0))
    towns = TownshipPoints.from_rows([("330302006", 119.8, 27.2), ("330302007", 119.9, 27.3)])
    state = new_radar_state()
    for i, centres in enumerate(scans):
        scan = radar_scan(6 * i, blobs(centres, n_rows=40, n_cols=40))
        first = assess_convection(scan, state, towns, config)
        assert assess_convection(scan, state, towns, config) == first
        assert len(first) == 6  # 2 townships x (convection, SHR, rainstorm)
        assert len(state["tracks"]) <= 5
        qpe = config.rainstorm
        assert len(state["qpe"]["t"]) <= qpe.max_window_s // qpe.bucket_s + 2
        assert all(len(r["t"]) <= 3 and r["missed"] <= 2 for r in state["tracks"])
        assert json.loads(json.dumps(state, allow_nan=False)) == state


@settings(max_examples=100, deadline=None)
@given(st.floats(min_value=-10.0, max_value=80.0), st.floats(min_value=0.0, max_value=20.0))
def test_property_rain_rate_and_level_monotone_in_dbz(dbz: float, more: float) -> None:
    assert dbz_to_rain_rate_mm_h(dbz + more) >= dbz_to_rain_rate_mm_h(dbz)
    levels = ConvectionLevels()
    assert LEVEL_RANK[levels.level_for(dbz + more)[0]] >= LEVEL_RANK[levels.level_for(dbz)[0]]


@pytest.mark.parametrize(
    ("horizon_s", "step_s"),
    [pytest.param(10**9, 300, id="epoch-passed-as-horizon"), pytest.param(5400, 0, id="zero-step")],
)
def test_nowcast_rejects_nonsense_horizons(horizon_s: int, step_s: int) -> None:
    with pytest.raises(ValueError, match="horizon_s"):
        nowcast_swaths([track()], np.array([120.3]), np.array([LAT]), ("330302006",), horizon_s, step_s)


# ── splitting oversized echo areas into cores (SCIT ladder) ───────────────────────────────
#
#   rain shield ≥ 35 dBZ, 3600 km² (> max_cell_area_km2 = 1000): not one cell
#   ┌──────────────────────────────────────┐
#   │ 38 dBZ stratiform                    │      → only the ≥ 45 dBZ cores are cells,
#   │      ◉ 56 dBZ core        ◉ 56 dBZ   │        identified at 45 dBZ, each ≈ 40 km²
#   │                                      │
#   └──────────────────────────────────────┘
#   oversized ≥ 45 area too (a 47 dBZ band > 1000 km²): one rung up, the ≥ 50 dBZ cores


def plateau(dbz: float, lon0: float, lat0: float, lon1: float, lat1: float, grid: Grid | None = None) -> Grid:
    """``grid`` (default: no echo) raised to ``dbz`` inside the box."""
    out = np.full((N_ROWS, N_COLS), np.nan) if grid is None else grid.copy()
    rows = LAT0 + (np.arange(N_ROWS) + 0.5) * CELL_DEG
    cols = LON0 + (np.arange(N_COLS) + 0.5) * CELL_DEG
    inside = ((rows >= lat0) & (rows <= lat1))[:, None] & ((cols >= lon0) & (cols <= lon1))[None, :]
    out[inside] = np.fmax(out[inside], dbz)
    return out


def with_blobs(grid: Grid, centres: list[tuple[float, float, float, float]]) -> Grid:
    return np.fmax(grid, blobs(centres))


SHIELD = plateau(38.0, 120.0, 27.5, 120.7, 28.05)  # ≈ 69 km × 61 km
TWO_CORES = [(120.15, 27.75, 56.0, 4.0), (120.55, 27.8, 56.0, 4.0)]
BAND_47 = plateau(47.0, 120.05, 27.6, 120.65, 27.9, SHIELD)  # ≈ 59 km × 33 km ≥ 45 dBZ


@pytest.mark.parametrize(
    ("grid", "config", "expected_thresholds", "max_area_km2"),
    [
        pytest.param(blobs([(120.2, LAT, 55.0, 8.0)]), CellIdentification(), [35.0], 1000.0, id="mature-storm-whole"),
        pytest.param(with_blobs(SHIELD, TWO_CORES), CellIdentification(), [45.0, 45.0], 100.0, id="shield-to-cores"),
        pytest.param(SHIELD, CellIdentification(), [], 0.0, id="stratiform-shield-no-cores"),
        pytest.param(
            with_blobs(SHIELD, TWO_CORES),
            CellIdentification(max_cell_area_km2=None),
            [35.0],
            5000.0,
            id="never-split",
        ),
        pytest.param(with_blobs(BAND_47, TWO_CORES), CellIdentification(), [50.0, 50.0], 30.0, id="band-climbs-ladder"),
        pytest.param(
            with_blobs(BAND_47, TWO_CORES),
            CellIdentification(core_ladder_dbz=(45.0,)),
            [45.0],
            2500.0,
            id="top-rung-kept-oversized",
        ),
    ],
)
def test_oversized_areas_split_into_cores(
    grid: Grid, config: CellIdentification, expected_thresholds: list[float], max_area_km2: float
) -> None:
    cells = identify_cells(grid, LON0, LAT0, CELL_DEG, config)
    assert [c.threshold_dbz for c in cells] == expected_thresholds
    assert all(c.area_km2 <= max_area_km2 for c in cells)


def test_split_cores_sit_on_the_embedded_cells() -> None:
    cells = identify_cells(with_blobs(SHIELD, TWO_CORES), LON0, LAT0, CELL_DEG)
    for cell, (lon, lat, _, _) in zip(cells, TWO_CORES, strict=True):
        assert abs(cell.lon - lon) * KM_LON < 1.0
        assert abs(cell.lat - lat) * KM_LAT < 1.0
        assert 53.0 <= cell.max_dbz <= 56.0  # the 3 × 3 mean of a sharp (σ = 4 km) peak
        row0, row1, col0, col1 = cell.bbox  # in whole-grid indices, not the shield's window
        assert row0 < (lat - LAT0) / CELL_DEG < row1
        assert col0 < (lon - LON0) / CELL_DEG < col1


def test_ladder_must_ascend() -> None:
    with pytest.raises(ValueError, match="ascend"):
        CellIdentification(core_ladder_dbz=(50.0, 45.0))


@pytest.mark.parametrize(
    ("peak_window_px", "max_overstatement_db"),
    [pytest.param(1, 6.0, id="single-pixel-peak"), pytest.param(3, 1.5, id="3x3-mean-peak")],
)
def test_noisy_scan_peak(peak_window_px: int, max_overstatement_db: float) -> None:
    """A flat 50 dBZ storm with 1.5 dB pixel noise: the highest pixel overstates the peak."""
    rng = np.random.default_rng(3)
    grid = plateau(50.0, 120.1, 27.7, 120.3, 27.9)
    grid = grid + rng.normal(0.0, 1.5, grid.shape)
    (cell,) = identify_cells(grid, LON0, LAT0, CELL_DEG, CellIdentification(peak_window_px=peak_window_px))
    assert 50.0 <= cell.max_dbz <= 50.0 + max_overstatement_db
    if peak_window_px == 1:
        assert cell.max_dbz > 53.0  # ≈ 3.5 σ over ≈ 450 pixels


# ── motion uncertainty: the "Likely" footprint ────────────────────────────────────────────
#
#   cell (r_e 10 km, 55 dBZ: ≥ 45 within 7.1 km) ──▶ 30 km/h ──── 30 km ────▶ ● township
#   position σ(τ) = √(0.5² + (σ_v · τ)²) per axis; the township's "Likely" dBZ is the profile
#   at the median miss distance √(d² + 2 ln 2 σ²): sure tracks warn far ahead, vague ones near.


def moving(sigma_kmh: float, area_km2: float = math.pi * 100.0, max_dbz: float = 55.0) -> Track:
    return Track(
        track_id=7,
        scan_s=T0_S,
        lon=120.0,
        lat=LAT,
        area_km2=area_km2,
        max_dbz=max_dbz,
        core_area_km2=10.0,
        u_kmh=30.0,
        v_kmh=0.0,
        trend_dbz_per_10min=0.0,
        scans=6,
        motion="track",
        velocity_sigma_kmh=sigma_kmh,
    )


def first_yellow_min(t: Track, km_east: float, km_north: float = 0.0) -> float | None:
    forecast = nowcast_swaths([t], np.array([east(120.0, km_east)]), np.array([north(LAT, km_north)]), ("330302006",))
    reached = np.nonzero(np.nan_to_num(forecast.dbz[0], nan=0.0) >= 45.0)[0]
    return None if reached.size == 0 else float(forecast.offsets_s[reached[0]]) / 60


@pytest.mark.parametrize(
    ("sigma_kmh", "km_east", "km_north", "expected_min"),
    [
        pytest.param(0.0, 30.0, 0.0, 50.0, id="exact-track-on-path"),
        pytest.param(10.0, 30.0, 0.0, None, id="vague-track-not-likely-an-hour-out"),
        pytest.param(15.0, 12.0, 0.0, 15.0, id="vague-track-still-warns-close-by"),
        pytest.param(0.0, 30.0, 6.0, 55.0, id="exact-track-6-km-off-path-later"),
        pytest.param(0.0, 30.0, 8.0, None, id="exact-track-8-km-off-path-outside-core"),
        pytest.param(5.0, 30.0, 6.0, None, id="clean-fit-6-km-off-path-not-likely"),
        pytest.param(0.0, -20.0, 0.0, None, id="upstream"),
    ],
)
def test_likely_footprint_narrows_with_motion_uncertainty(
    sigma_kmh: float, km_east: float, km_north: float, expected_min: float | None
) -> None:
    assert first_yellow_min(moving(sigma_kmh), km_east, km_north) == expected_min


@settings(max_examples=60, deadline=None)
@given(
    st.floats(min_value=0.0, max_value=30.0),
    st.floats(min_value=0.0, max_value=30.0),
    st.floats(min_value=-40.0, max_value=60.0),
    st.floats(min_value=-20.0, max_value=20.0),
)
def test_property_more_uncertainty_never_raises_the_forecast(
    sigma_a: float, extra: float, km_east: float, km_north: float
) -> None:
    lon, lat = np.array([east(120.0, km_east)]), np.array([north(LAT, km_north)])
    sure = nowcast_swaths([moving(sigma_a)], lon, lat, ("330302006",))
    vague = nowcast_swaths([moving(sigma_a + extra)], lon, lat, ("330302006",))
    assert np.all(np.nan_to_num(vague.dbz, nan=-1.0) <= np.nan_to_num(sure.dbz, nan=-1.0) + 1e-9)


@pytest.mark.parametrize(
    ("timeline", "expected_sigma"),
    [
        pytest.param(steady(6), (5.0, 5.3), id="clean-track-floor"),
        pytest.param(
            [[cell_at(east(120.0, 4 * i), north(LAT, 2.0 * (-1) ** i))] for i in range(6)],
            (6.0, 7.0),
            id="zigzag-centroid-scatter",
        ),
        pytest.param(steady(2), (5.0, 15.0), id="two-scans"),
        pytest.param([[cell_at(120.0, LAT)]], (20.0, 20.0), id="lone-new-cell-unknown-motion"),
    ],
)
def test_velocity_sigma(timeline: list[list[Cell]], expected_sigma: tuple[float, float]) -> None:
    (t,), _ = run_tracks(timeline)
    low, high = expected_sigma
    assert low <= t.velocity_sigma_kmh <= high


def test_new_cell_in_steering_flow_is_less_certain_than_its_neighbours() -> None:
    timeline = steady(4)
    timeline[-1] = [*timeline[-1], cell_at(120.5, 28.3)]
    tracks, _ = run_tracks(timeline)
    new = next(t for t in tracks if t.scans == 1)
    old = next(t for t in tracks if t.scans == 4)
    assert new.velocity_sigma_kmh == pytest.approx(10.0, abs=0.5)  # one neighbour: no spread
    assert old.velocity_sigma_kmh < new.velocity_sigma_kmh


def test_fast_radar_fits_velocity_over_thirty_minutes() -> None:
    """1-min X-band scans: the history reaches 30 min back, not just the last 6 scans."""
    state = new_radar_state()
    for minute in range(40):
        track_cells(state, [cell_at(east(120.0, 0.5 * minute), LAT)], T0_S + 60 * minute)
    (record,) = state["tracks"]
    assert record["t"][-1] - record["t"][0] == 1800
    assert len(record["t"]) == 31
