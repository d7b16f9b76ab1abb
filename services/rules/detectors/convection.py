"""Radar convective nowcast: identify cells, track them, extrapolate swaths over townships.

A TITAN/SCIT-style centroid tracker (domain standards §4.3) on the 2-D composite, sized for
one radar cycle: a full Wenzhou grid (≈ 170 × 165 cells, 186 townships) takes ≈ 10–20 ms
per scan (1–40 cells, 2-core machine). Numbers: 35 dBZ cell threshold [K] and 45 dBZ cores
[D] (§4.1); Z = 300 R^1.4 (WSR-88D convective), which §4.2 prefers over Marshall–Palmer for Wenzhou's
warm-rain/typhoon convection, with reflectivity capped at 55 dBZ against hail (§4.2 [K]).
Levels from forecast reflectivity [A], anchored on the §4.1 ladder::

    forecast dBZ at township   ≥ 40     ≥ 45       ≥ 50              ≥ 55
    level                      blue     yellow     orange            red
    §4.1 meaning               moderate strong     heavy rain,       hail cap (§4.2),
                               rain     convection hail likely       severe

Per scan::

     scan (dBZ grid)          state {"scan_s", "tracks": [...]}         townships
          │                            │                                    │
     1 identify_cells ──cells──▶ 2 track_cells ──tracks──▶ 3 nowcast_swaths ◀┘
                                                                   │
                                               4 assess: convection + SHR per township

1. ``identify_cells``: threshold at 35 dBZ, ``scipy.ndimage.label`` (8-connected), drop
   components under ``min_area_km2``; per cell the mask centroid (lon, lat), area (km², per
   row latitude), max dBZ, area of ≥ 45 dBZ core, and the bounding box of its mask.
2. ``track_cells``: predict each live track to the scan time with its velocity, then solve
   the assignment of tracks to cells (``scipy.optimize.linear_sum_assignment``) on the
   distance from the prediction, allowing only pairs whose implied speed from the track's
   last position is ≤ ``max_speed_kmh`` (120 km/h; §4.6 gives 30–60 km/h as typical).
   Velocity is a least-squares fit of the centroid over the last ``history_scans`` scans;
   the intensity trend is the least-squares slope of max dBZ, in dBZ per 10 min, capped.
   A new cell (one position) moves with the *steering* velocity: the mean of established
   tracks, else it stays put. Unmatched cells start tracks; tracks unmatched for more than
   ``max_missed_scans`` are pruned. Splits and merges are not modelled: a split fragment
   starts a new track with the steering velocity. Track ids are ``scan_epoch_s * 1000 +
   index``: deterministic, and exact as a float in ``Evidence.value``.
3. ``nowcast_swaths``: for steps ``0, step_s, …, horizon_s`` move every track seen in this
   scan along its velocity; its max dBZ follows the trend, limited to ``+max_growth_dbz`` /
   ``-max_decay_dbz`` in total. Reflectivity around a cell is modelled as a paraboloid,
   ``dBZ(d) = max − (max − 35)·(d / r_e)²`` with ``r_e = √(area/π)``, so it is the cell max
   at the centroid and the threshold at the cell's equivalent radius. A township is a point
   with radius ``township_radius_km``: it sees the profile at ``max(0, d − radius)``.
   Per township and step the highest dBZ over all cells is kept; rain rate follows by Z–R.
4. ``assess_convection``: per township in the radar's coverage (inside the grid),
   forecast max dBZ → level; ``onset_at`` is the first step at which the township's dBZ
   reaches that level's threshold. The forecast 60-min rain is the highest rolling 60-min
   sum of the step rain (trapezoid; forecast rain only, past rain is what gauges measure);
   SHR thresholds (``short_heavy_rain``) turn it into a ``short_heavy_rain`` assessment with
   ``onset_at`` = the end of the first rolling hour that reaches the level. Both hazards are
   emitted for *every* covered township each scan (``none`` included, certainty ``Likely``)
   so the lifecycle's per-source history can de-escalate and advance on event time.

Time: a scan older than the newest one in state is late and returns ``[]`` (its nowcast is
superseded; the adapter counts it). The same scan again (same ``observed_at``) re-uses the
tracks in state and returns identical assessments, so redelivery is harmless.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from typing import Any, Literal, overload

import numpy as np
import numpy.typing as npt
from pydantic import Field, model_validator
from scipy import ndimage  # type: ignore[import-untyped]  # scipy ships no type information
from scipy.optimize import linear_sum_assignment  # type: ignore[import-untyped]  # as above

from schemas.assessment import Evidence, HazardAssessment
from schemas.common import Hazard, LevelOrNone
from schemas.observations import RadarScan
from services.rules.detectors.common import (
    KM_PER_DEG_LAT,
    KM_PER_DEG_LON_EQUATOR,
    FrozenConfig,
    epoch_s,
    from_epoch_s,
)
from services.rules.detectors.field import FieldCheckConfig, GaugeSites, field_evidence, field_votes, new_field_state
from services.rules.detectors.rainstorm_nowcast import RULE_ID as RAINSTORM_RULE_ID
from services.rules.detectors.rainstorm_nowcast import (
    RainstormNowcast,
    RainstormNowcastConfig,
    cumulative_rain_mm,
    fold_qpe,
    new_qpe_state,
    point_sampling,
    rainstorm_nowcast,
    sample_rates,
)
from services.rules.detectors.short_heavy_rain import ShortHeavyRainConfig, assess_short_heavy_rain_forecast

FloatArray = npt.NDArray[np.float64]
RULE_ID = "radar-convection-nowcast"
SHR_RULE_ID = "radar-shr-nowcast"

_INFEASIBLE = 1.0e9
_TWO_LN2 = 2.0 * math.log(2.0)


# ── configuration ─────────────────────────────────────────────────────────────────────────


class CellIdentification(FrozenConfig):
    cell_threshold_dbz: float = Field(default=35.0, description="§4.1 [K] TITAN-style cell threshold")
    core_threshold_dbz: float = Field(default=45.0, description="§4.1 [D] strong-convection core")
    min_area_km2: float = Field(default=10.0, ge=0.0, description="[A] smaller echoes are speckle or clutter")
    max_cell_area_km2: float | None = Field(
        default=1000.0,
        gt=0.0,
        description="[A] a larger echo area (≈ 36 km across) is organised or stratiform rain, not one cell: "
        "only its cores on the ``core_ladder_dbz`` are tracked. None: never split",
    )
    core_ladder_dbz: tuple[float, ...] = Field(
        default=(45.0, 50.0, 55.0), description="§4.1/§4.3 SCIT ladder above the cell threshold, ascending"
    )
    max_cells: int = Field(default=400, ge=1, le=999, description="largest kept; bounds state and track ids")
    peak_window_px: int = Field(
        default=3,
        ge=1,
        description="[A] a cell's max dBZ is the highest mean over this many pixels square: the single "
        "highest pixel of a noisy scan overstates the peak by a few dB",
    )

    @model_validator(mode="after")
    def _ladder_ascends(self) -> CellIdentification:
        rungs = (self.cell_threshold_dbz, *self.core_ladder_dbz)
        if any(b <= a for a, b in pairwise(rungs)):
            msg = "core_ladder_dbz must ascend from above cell_threshold_dbz"
            raise ValueError(msg)
        return self


class TrackingConfig(FrozenConfig):
    max_speed_kmh: float = Field(default=120.0, gt=0.0, description="[A] implausible above (§4.6: 30–60 typical)")
    history_scans: int = Field(default=6, ge=2, description="positions kept per track for the velocity fit")
    history_s: int = Field(
        default=1800,
        ge=0,
        description="…and at least this far back (up to ``max_history_scans``), so a 1-min X-band track "
        "fits its velocity over as long a baseline as a 6-min S-band one",
    )
    max_history_scans: int = Field(default=31, ge=2, description="bounds the state of fast-scanning radars")
    max_missed_scans: int = Field(default=2, ge=0, description="a track unmatched for more scans is pruned")
    max_trend_dbz_per_10min: float = Field(default=5.0, ge=0.0, description="[A] cap on the intensity trend")
    max_tracks: int = Field(default=400, ge=1)
    centroid_sigma_km: float = Field(
        default=0.5, ge=0.0, description="[A] floor on the centroid scatter: half a 1-km pixel (quantisation, noise)"
    )
    motion_error_kmh: float = Field(
        default=5.0, ge=0.0, description="[A] velocity error a clean fit still has: storms turn and propagate"
    )
    steering_error_kmh: float = Field(
        default=10.0, ge=0.0, description="[A] a new cell may not move with the mean flow of its neighbours"
    )
    unknown_motion_kmh: float = Field(
        default=20.0, ge=0.0, description="[A] no track and no steering flow: §4.6 storms move 30–60 km/h"
    )


class ZRCoefficients(FrozenConfig):
    """``Z = a · R^b`` (§4.2); defaults are the WSR-88D convective relation."""

    a: float = Field(default=300.0, gt=0.0)
    b: float = Field(default=1.4, gt=0.0)
    max_dbz: float = Field(default=55.0, description="§4.2 [K] hail cap before conversion")


class ConvectionLevels(FrozenConfig):
    """Forecast reflectivity per level [A], on the §4.1 ladder."""

    blue_dbz: float | None = Field(
        default=None, description="40 dBZ is moderate rain, not convection (§4.1); None: no blue level"
    )
    yellow_dbz: float = 45.0
    orange_dbz: float = 50.0
    red_dbz: float = 55.0

    def highest_first(self) -> tuple[tuple[LevelOrNone, float], ...]:
        ladder: tuple[tuple[LevelOrNone, float | None], ...] = (
            ("red", self.red_dbz),
            ("orange", self.orange_dbz),
            ("yellow", self.yellow_dbz),
            ("blue", self.blue_dbz),
        )
        return tuple((level, dbz) for level, dbz in ladder if dbz is not None)

    def level_for(self, dbz: float) -> tuple[LevelOrNone, float | None]:
        for level, threshold in self.highest_first():
            if dbz >= threshold:
                return level, threshold
        return "none", None


class NowcastConfig(FrozenConfig):
    horizon_s: int = Field(default=5400, gt=0, description="90 min: 60-min lead (§4.5) plus slack")
    step_s: int = Field(default=300, gt=0)
    township_radius_km: float = Field(
        default=0.0,
        ge=0.0,
        description="a township is its reference point, where its events are defined (truth, verification); "
        "position uncertainty is modelled explicitly (``TrackingConfig``), not by a fixed margin",
    )
    max_growth_dbz: float = Field(default=5.0, ge=0.0, description="[A] total extrapolated growth cap")
    max_decay_dbz: float = Field(default=15.0, ge=0.0, description="[A] total extrapolated decay cap")


class ConvectionConfig(FrozenConfig):
    cells: CellIdentification = CellIdentification()
    tracking: TrackingConfig = TrackingConfig()
    nowcast: NowcastConfig = NowcastConfig()
    levels: ConvectionLevels = ConvectionLevels()
    zr: ZRCoefficients = ZRCoefficients()
    shr: ShortHeavyRainConfig = ShortHeavyRainConfig()
    field: FieldCheckConfig = FieldCheckConfig()
    rainstorm: RainstormNowcastConfig = RainstormNowcastConfig()


DEFAULT_CONVECTION_CONFIG = ConvectionConfig()
DEFAULT_CELLS = DEFAULT_CONVECTION_CONFIG.cells
DEFAULT_TRACKING = DEFAULT_CONVECTION_CONFIG.tracking
DEFAULT_ZR = DEFAULT_CONVECTION_CONFIG.zr


# ── value objects ─────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class Cell:
    """One convective cell in one scan. ``bbox`` = (row_min, row_stop, col_min, col_stop)."""

    lon: float
    lat: float
    area_km2: float
    max_dbz: float
    core_area_km2: float
    bbox: tuple[int, int, int, int]
    threshold_dbz: float = 35.0
    """The rung it was identified at: the cell threshold, or a core rung for a split area."""


@dataclass(frozen=True, slots=True)
class Track:
    """A tracked cell as of its last scan; velocity components in km/h (east, north)."""

    track_id: int
    scan_s: int
    lon: float
    lat: float
    area_km2: float
    max_dbz: float
    core_area_km2: float
    u_kmh: float
    v_kmh: float
    trend_dbz_per_10min: float
    scans: int
    motion: Literal["track", "steering", "none"]
    threshold_dbz: float = 35.0
    velocity_sigma_kmh: float = 0.0
    """Standard deviation of each velocity component: fit error and ``motion_error_kmh``."""

    @property
    def speed_kmh(self) -> float:
        return math.hypot(self.u_kmh, self.v_kmh)

    @property
    def heading_deg(self) -> float:
        """Direction of motion (towards), degrees clockwise from north: east = 90."""
        return math.degrees(math.atan2(self.u_kmh, self.v_kmh)) % 360.0


@dataclass(frozen=True, slots=True)
class SwathHit:
    """One cell's forecast at one township."""

    track_id: int
    township_code: str
    onset_s: int
    max_dbz: float
    rain_1h_mm: float


@dataclass(frozen=True, slots=True, eq=False)
class SwathForecast:
    """Per township (rows) and step (columns): highest forecast dBZ (NaN: no echo)."""

    base_s: int
    offsets_s: npt.NDArray[np.int64]
    dbz: FloatArray
    rain_rate_mm_h: FloatArray
    dominant_track: npt.NDArray[np.int64]
    hits: tuple[SwathHit, ...]


@dataclass(frozen=True, slots=True, eq=False)
class TownshipPoints:
    """Township centroids, built once from the registry."""

    codes: tuple[str, ...]
    lon: FloatArray
    lat: FloatArray

    @classmethod
    def from_rows(cls, rows: list[tuple[str, float, float]]) -> TownshipPoints:
        return cls(
            codes=tuple(code for code, _, _ in rows),
            lon=np.array([lon for _, lon, _ in rows], dtype=np.float64),
            lat=np.array([lat for _, _, lat in rows], dtype=np.float64),
        )


# ── Z–R ───────────────────────────────────────────────────────────────────────────────────


@overload
def dbz_to_rain_rate_mm_h(dbz: float, zr: ZRCoefficients = ...) -> float: ...
@overload
def dbz_to_rain_rate_mm_h(dbz: FloatArray, zr: ZRCoefficients = ...) -> FloatArray: ...
def dbz_to_rain_rate_mm_h(dbz: float | FloatArray, zr: ZRCoefficients = DEFAULT_ZR) -> float | FloatArray:
    """``R = (Z / a)^(1/b)`` with ``Z = 10^(dBZ/10)``, dBZ capped at ``zr.max_dbz``; NaN → 0.

    With the defaults 45 dBZ → 27.9 mm/h and 50 dBZ → 63.4 mm/h (§4.2 table).
    """
    values = np.minimum(np.nan_to_num(np.asarray(dbz, dtype=np.float64), nan=-np.inf), zr.max_dbz)
    rate = np.power(np.power(10.0, values / 10.0) / zr.a, 1.0 / zr.b)
    if np.ndim(rate) == 0:
        return float(rate)
    result: FloatArray = rate
    return result


# ── 1. identification ─────────────────────────────────────────────────────────────────────

_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def identify_cells(
    dbz_grid: npt.NDArray[np.floating[Any]],
    origin_lon: float,
    origin_lat: float,
    cell_deg: float,
    config: CellIdentification = DEFAULT_CELLS,
) -> list[Cell]:
    """Cells ≥ ``cell_threshold_dbz`` of at least ``min_area_km2`` (row 0 = south); an area
    over ``max_cell_area_km2`` is replaced by its cores, one rung up the ladder at a time."""
    grid = np.asarray(dbz_grid, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        mask = grid >= config.cell_threshold_dbz
    if not mask.any():
        return []
    row_lat = origin_lat + (np.arange(grid.shape[0]) + 0.5) * cell_deg
    row_area_km2 = (cell_deg * KM_PER_DEG_LAT) * (cell_deg * KM_PER_DEG_LON_EQUATOR * np.cos(np.radians(row_lat)))
    rungs = (config.cell_threshold_dbz, *config.core_ladder_dbz)
    peak_grid = grid
    if config.peak_window_px > 1:
        # no echo counts as the threshold, so the mean at a cell's rim is not dragged below it
        filled = np.where(mask, grid, config.cell_threshold_dbz)
        peak_grid = ndimage.uniform_filter(filled, size=config.peak_window_px, mode="nearest")
    found: list[tuple[_Blob, float]] = []
    _split(grid, peak_grid, mask, row_area_km2, (0, 0), rungs, 0, config, found)
    if len(found) > config.max_cells:
        keep = sorted(sorted(range(len(found)), key=lambda i: -found[i][0].area_km2)[: config.max_cells])
        found = [found[i] for i in keep]
    return [
        Cell(
            lon=float(origin_lon + (blob.col + 0.5) * cell_deg),
            lat=float(origin_lat + (blob.row + 0.5) * cell_deg),
            area_km2=blob.area_km2,
            max_dbz=blob.max_dbz,
            core_area_km2=blob.core_area_km2,
            bbox=blob.bbox,
            threshold_dbz=threshold,
        )
        for blob, threshold in found
    ]


@dataclass(frozen=True, slots=True)
class _Blob:
    """One connected echo area in grid coordinates (``row``/``col``: mean pixel index)."""

    row: float
    col: float
    area_km2: float
    max_dbz: float
    core_area_km2: float
    bbox: tuple[int, int, int, int]


def _split(
    grid: FloatArray,
    peak_grid: FloatArray,
    mask: npt.NDArray[np.bool_],
    row_area_km2: FloatArray,
    offset: tuple[int, int],
    rungs: tuple[float, ...],
    rung: int,
    config: CellIdentification,
    out: list[tuple[_Blob, float]],
) -> None:
    """Append the cells of ``mask`` (a window of the grid at ``offset``) identified at ``rungs[rung]``.

    A component over ``max_cell_area_km2`` is not a cell: its pixels ≥ the next rung are
    labelled again inside its bounding box (SCIT's nested thresholds, §4.3), so a typhoon
    rain shield becomes its embedded convective cores and the stratiform rest is left to
    the gauges. At the top rung an oversized core is kept as it is.
    """
    labels, count = ndimage.label(mask, structure=_EIGHT_CONNECTED)
    if count == 0:
        return
    blobs = _blob_stats(grid, peak_grid, mask, labels, count, row_area_km2, offset, config.core_threshold_dbz)
    boxes = ndimage.find_objects(labels)
    cap = config.max_cell_area_km2
    for label, blob in enumerate(blobs, start=1):
        if blob.area_km2 < config.min_area_km2:
            continue
        if cap is None or blob.area_km2 <= cap or rung + 1 >= len(rungs):
            out.append((blob, rungs[rung]))
            continue
        rows, cols = boxes[label - 1]
        window = grid[rows, cols]
        with np.errstate(invalid="ignore"):
            inner = (labels[rows, cols] == label) & (window >= rungs[rung + 1])
        origin = (offset[0] + rows.start, offset[1] + cols.start)
        _split(window, peak_grid[rows, cols], inner, row_area_km2[rows], origin, rungs, rung + 1, config, out)


def _blob_stats(
    grid: FloatArray,
    peak_grid: FloatArray,
    mask: npt.NDArray[np.bool_],
    labels: npt.NDArray[np.int32],
    count: int,
    row_area_km2: FloatArray,
    offset: tuple[int, int],
    core_dbz: float,
) -> list[_Blob]:
    """Per label (1…count): centroid, area, max, core area (≥ ``core_dbz``), bbox, in grid indices."""
    # per-label sums over the echo pixels only, in raster order (as a whole-grid bincount adds them)
    rows_idx, cols_idx = np.nonzero(mask)
    flat = labels[rows_idx, cols_idx]
    values = grid[rows_idx, cols_idx]
    pixel_area = row_area_km2[rows_idx]
    counts = np.bincount(flat, minlength=count + 1)
    area = np.bincount(flat, weights=pixel_area, minlength=count + 1)
    row_sum = np.bincount(flat, weights=rows_idx, minlength=count + 1)
    col_sum = np.bincount(flat, weights=cols_idx, minlength=count + 1)
    core_area = np.bincount(flat, weights=pixel_area * (values >= core_dbz), minlength=count + 1)
    label_max = np.full(count + 1, -np.inf)
    np.maximum.at(label_max, flat, peak_grid[rows_idx, cols_idx])
    boxes = ndimage.find_objects(labels)
    r0, c0 = offset
    out: list[_Blob] = []
    for label in range(1, count + 1):
        box = boxes[label - 1]
        out.append(
            _Blob(
                row=float(r0 + row_sum[label] / counts[label]),
                col=float(c0 + col_sum[label] / counts[label]),
                area_km2=float(area[label]),
                max_dbz=float(label_max[label]),
                core_area_km2=float(core_area[label]),
                bbox=(r0 + int(box[0].start), r0 + int(box[0].stop), c0 + int(box[1].start), c0 + int(box[1].stop)),
            )
        )
    return out


# ── 2. tracking ───────────────────────────────────────────────────────────────────────────


def new_radar_state() -> dict[str, Any]:
    """Per-radar state: last scan time and the live tracks (JSON-compatible)."""
    return {"scan_s": None, "tracks": []}


def _xy_km(lon: FloatArray, lat: FloatArray, lon0: float, lat0: float) -> tuple[FloatArray, FloatArray]:
    x = (lon - lon0) * KM_PER_DEG_LON_EQUATOR * math.cos(math.radians(lat0))
    y = (lat - lat0) * KM_PER_DEG_LAT
    return x, y


def _slope_per_s(t: FloatArray, values: FloatArray) -> float:
    dt = t - t.mean()
    denominator = float((dt * dt).sum())
    return 0.0 if denominator == 0.0 else float((dt * (values - values.mean())).sum() / denominator)


def _motion(record: dict[str, Any], config: TrackingConfig) -> tuple[float, float, float, float]:
    """Velocity (u, v km/h), trend (dBZ/10 min) and velocity σ (km/h) fitted over the history.

    σ per component is the standard error of the least-squares slope, from the fit's
    residual scatter (at least ``centroid_sigma_km``), combined with ``motion_error_kmh``.
    """
    t = np.asarray(record["t"], dtype=np.float64)
    if t.size < 2:
        return 0.0, 0.0, 0.0, math.inf
    x, y = _xy_km(np.asarray(record["lon"]), np.asarray(record["lat"]), record["lon"][-1], record["lat"][-1])
    u = _slope_per_s(t, x) * 3600.0
    v = _slope_per_s(t, y) * 3600.0
    trend = _slope_per_s(t, np.asarray(record["max_dbz"], dtype=np.float64)) * 600.0
    cap = config.max_trend_dbz_per_10min
    t_h = (t - t.mean()) / 3600.0
    spread_h2 = float((t_h * t_h).sum())
    scatter_km2 = config.centroid_sigma_km**2
    if t.size > 2:
        fit_x = x - x.mean() - u * t_h
        fit_y = y - y.mean() - v * t_h
        scatter_km2 = max(scatter_km2, float((fit_x * fit_x + fit_y * fit_y).sum()) / (2 * (t.size - 2)))
    sigma = math.sqrt(scatter_km2 / spread_h2 + config.motion_error_kmh**2)
    return u, v, max(-cap, min(cap, trend)), sigma


def _steering(records: list[dict[str, Any]], config: TrackingConfig) -> tuple[float, float, float] | None:
    """Mean velocity of the established tracks and its σ (their spread and ``steering_error_kmh``)."""
    established = [_motion(r, config)[:2] for r in records if len(r["t"]) >= 2]
    if not established:
        return None
    us = np.array([u for u, _ in established])
    vs = np.array([v for _, v in established])
    spread2 = float(us.var() + vs.var()) / 2.0
    return float(us.mean()), float(vs.mean()), math.sqrt(spread2 + config.steering_error_kmh**2)


def _as_track(record: dict[str, Any], steering: tuple[float, float, float] | None, config: TrackingConfig) -> Track:
    u, v, trend, sigma = _motion(record, config)
    motion: Literal["track", "steering", "none"] = "track"
    if len(record["t"]) < 2:
        if steering is not None:
            motion, (u, v, sigma) = "steering", steering
        else:
            motion, (u, v, sigma) = "none", (0.0, 0.0, config.unknown_motion_kmh)
    return Track(
        track_id=int(record["id"]),
        scan_s=int(record["t"][-1]),
        lon=float(record["lon"][-1]),
        lat=float(record["lat"][-1]),
        area_km2=float(record["area_km2"]),
        max_dbz=float(record["max_dbz"][-1]),
        core_area_km2=float(record["core_area_km2"]),
        u_kmh=u,
        v_kmh=v,
        trend_dbz_per_10min=trend,
        scans=int(record["scans"]),
        motion=motion,
        threshold_dbz=float(record.get("threshold_dbz", 35.0)),
        velocity_sigma_kmh=sigma,
    )


def _history_start(times: list[int], config: TrackingConfig) -> int:
    """Index of the oldest position kept: the last ``history_scans``, or all within ``history_s``."""
    newest = times[-1]
    by_time = next(i for i, t in enumerate(times) if newest - t <= config.history_s)
    start = min(max(0, len(times) - config.history_scans), by_time)
    return max(start, len(times) - config.max_history_scans)


def current_tracks(state: dict[str, Any], config: TrackingConfig = DEFAULT_TRACKING) -> list[Track]:
    """Tracks seen in the state's last scan, with their fitted motion."""
    records: list[dict[str, Any]] = state["tracks"]
    steering = _steering(records, config)
    return [_as_track(r, steering, config) for r in records if r["missed"] == 0]


def track_cells(
    state: dict[str, Any],
    cells: list[Cell],
    scan_s: int,
    config: TrackingConfig = DEFAULT_TRACKING,
) -> list[Track] | None:
    """Match ``cells`` (scan at ``scan_s``) to the tracks in ``state`` and update it.

    ``dt`` per track is ``scan_s`` minus the track's last scan, so missed scans widen the
    speed gate by the time elapsed. Returns the tracks seen in this scan; ``None`` (state
    untouched) for a scan older than the last one; the same scan again returns the tracks
    in state without matching twice.
    """
    last_scan: int | None = state["scan_s"]
    if last_scan is not None and scan_s < last_scan:
        return None
    if last_scan is not None and scan_s == last_scan:
        return current_tracks(state, config)
    records: list[dict[str, Any]] = state["tracks"]
    steering = _steering(records, config)
    matched_cell_for: dict[int, int] = {}
    if records and cells:
        cell_lon = np.array([c.lon for c in cells])
        cell_lat = np.array([c.lat for c in cells])
        cost = np.full((len(records), len(cells)), _INFEASIBLE)
        for i, record in enumerate(records):
            track = _as_track(record, steering, config)
            elapsed_h = (scan_s - track.scan_s) / 3600.0
            x_last, y_last = _xy_km(cell_lon, cell_lat, track.lon, track.lat)
            implied_speed = np.hypot(x_last, y_last) / elapsed_h
            miss = np.hypot(x_last - track.u_kmh * elapsed_h, y_last - track.v_kmh * elapsed_h)
            cost[i] = np.where(implied_speed <= config.max_speed_kmh, miss, _INFEASIBLE)
        track_idx, cell_idx = linear_sum_assignment(cost)
        for i, j in zip(track_idx.tolist(), cell_idx.tolist(), strict=True):
            if cost[i, j] < _INFEASIBLE:
                matched_cell_for[i] = j
    survivors: list[dict[str, Any]] = []
    for i, record in enumerate(records):
        j = matched_cell_for.get(i)
        if j is None:
            if record["missed"] < config.max_missed_scans:
                survivors.append({**record, "missed": record["missed"] + 1})
            continue
        cell = cells[j]
        times = [*record["t"], scan_s]
        keep = _history_start(times, config)
        survivors.append(
            {
                "id": record["id"],
                "t": times[keep:],
                "lon": [*record["lon"], cell.lon][keep:],
                "lat": [*record["lat"], cell.lat][keep:],
                "max_dbz": [*record["max_dbz"], cell.max_dbz][keep:],
                "area_km2": cell.area_km2,
                "core_area_km2": cell.core_area_km2,
                "threshold_dbz": cell.threshold_dbz,
                "bbox": list(cell.bbox),
                "scans": record["scans"] + 1,
                "missed": 0,
            }
        )
    taken = set(matched_cell_for.values())
    for j, cell in enumerate(cells):
        if j not in taken:
            survivors.append(
                {
                    "id": scan_s * 1000 + j,
                    "t": [scan_s],
                    "lon": [cell.lon],
                    "lat": [cell.lat],
                    "max_dbz": [cell.max_dbz],
                    "area_km2": cell.area_km2,
                    "core_area_km2": cell.core_area_km2,
                    "threshold_dbz": cell.threshold_dbz,
                    "bbox": list(cell.bbox),
                    "scans": 1,
                    "missed": 0,
                }
            )
    if len(survivors) > config.max_tracks:
        # seen-now first, then the largest; keeps the state bounded under clutter storms
        survivors = sorted(survivors, key=lambda r: (r["missed"], -r["area_km2"]))[: config.max_tracks]
    state["scan_s"] = scan_s
    state["tracks"] = survivors
    return current_tracks(state, config)


# ── 3. nowcast ────────────────────────────────────────────────────────────────────────────


def _rolling_rain_mm(rate_mm_h: FloatArray, step_s: int) -> FloatArray:
    """Rolling 60-min rain ending at each step 1..K (trapezoid between steps); (T, K)."""
    window = max(1, round(3600 / step_s))
    cumulative = cumulative_rain_mm(rate_mm_h, step_s)
    ends = np.arange(1, cumulative.shape[1])
    starts = np.maximum(0, ends - window)
    rolling: FloatArray = cumulative[:, ends] - cumulative[:, starts]
    return rolling


def nowcast_swaths(
    tracks: list[Track],
    townships_lon: FloatArray,
    townships_lat: FloatArray,
    township_codes: tuple[str, ...],
    horizon_s: int = 5400,
    step_s: int = 300,
    *,
    base_s: int | None = None,
    config: ConvectionConfig = DEFAULT_CONVECTION_CONFIG,
) -> SwathForecast:
    """Extrapolate ``tracks`` and sample their reflectivity at townships.

    Steps are offsets from ``base_s`` (default: the newest track's scan time); ``hits``
    lists, per (cell, township) that meet, the first step inside the cell's footprint,
    the highest forecast dBZ there and the highest rolling 60-min rain from that cell.
    """
    if step_s <= 0 or not 0 <= horizon_s <= 12 * 3600:
        msg = f"horizon_s must be 0…43200 and step_s positive, got {horizon_s} / {step_s}"
        raise ValueError(msg)
    if base_s is None:
        base_s = max((t.scan_s for t in tracks), default=0)
    offsets = np.arange(0, horizon_s + 1, step_s, dtype=np.int64)
    n_towns, n_steps = len(township_codes), offsets.size
    if not tracks or n_towns == 0:
        empty = np.full((n_towns, n_steps), np.nan)
        return SwathForecast(
            base_s, offsets, empty, np.zeros((n_towns, n_steps)), np.full(n_towns, -1, dtype=np.int64), ()
        )
    lon0 = np.array([t.lon for t in tracks])[:, None]
    lat0 = np.array([t.lat for t in tracks])[:, None]
    u = np.array([t.u_kmh for t in tracks])[:, None]
    v = np.array([t.v_kmh for t in tracks])[:, None]
    hours = offsets[None, :] / 3600.0 + (base_s - np.array([t.scan_s for t in tracks]))[:, None] / 3600.0
    cos_lat = np.cos(np.radians(lat0))
    lon_t = lon0 + u * hours / (KM_PER_DEG_LON_EQUATOR * cos_lat)  # (N, K)
    lat_t = lat0 + v * hours / KM_PER_DEG_LAT
    change = np.array([t.trend_dbz_per_10min for t in tracks])[:, None] * hours * 6.0
    change = np.clip(change, -config.nowcast.max_decay_dbz, config.nowcast.max_growth_dbz)
    peak = np.array([t.max_dbz for t in tracks])[:, None] + change  # (N, K)
    radius = np.sqrt(np.array([t.area_km2 for t in tracks]) / math.pi)[:, None, None]
    threshold = np.array([t.threshold_dbz for t in tracks])[:, None, None]
    # position σ (km, per axis) grows with lead; the median distance of the true centre
    # from a township at d is ≈ √(d² + 2 ln 2 · σ²) (exact at d = 0, → d for d ≫ σ)
    sigma_v = np.array([t.velocity_sigma_kmh for t in tracks])[:, None]
    sigma2 = config.tracking.centroid_sigma_km**2 + (np.minimum(sigma_v, 1.0e3) * hours) ** 2  # (N, K)
    dx = (townships_lon[None, None, :] - lon_t[:, :, None]) * KM_PER_DEG_LON_EQUATOR * cos_lat[:, :, None]
    dy = (townships_lat[None, None, :] - lat_t[:, :, None]) * KM_PER_DEG_LAT
    median_d = np.sqrt(dx * dx + dy * dy + _TWO_LN2 * sigma2[:, :, None])
    reach = np.maximum(0.0, median_d - config.nowcast.township_radius_km)  # (N, K, T)
    profile = peak[:, :, None] - (peak[:, :, None] - threshold) * (reach / radius) ** 2
    inside = (reach <= radius) & (peak[:, :, None] >= threshold)
    cell_dbz = np.where(inside, profile, -np.inf)  # (N, K, T)
    best = cell_dbz.max(axis=0)  # (K, T)
    dbz = np.where(np.isfinite(best), best, np.nan).T  # (T, K)
    rate = np.where(np.isfinite(dbz), dbz_to_rain_rate_mm_h(np.nan_to_num(dbz, nan=-np.inf), config.zr), 0.0)
    per_cell_peak = cell_dbz.max(axis=1)  # (N, T)
    dominant = np.where(np.isfinite(per_cell_peak.max(axis=0)), per_cell_peak.argmax(axis=0), -1)
    ids = np.array([t.track_id for t in tracks], dtype=np.int64)
    dominant_ids = np.where(dominant >= 0, ids[np.maximum(dominant, 0)], -1).astype(np.int64)
    hits: list[SwathHit] = []
    cell_index, town_index = np.nonzero(np.isfinite(per_cell_peak))
    if cell_index.size:
        pair_rate = dbz_to_rain_rate_mm_h(cell_dbz[cell_index, :, town_index], config.zr)  # (pairs, K)
        pair_rain = _rolling_rain_mm(pair_rate, step_s).max(axis=1) if n_steps > 1 else np.zeros(cell_index.size)
        pair_first = np.argmax(inside[cell_index, :, town_index], axis=1)
        for p, (n, k) in enumerate(zip(cell_index.tolist(), town_index.tolist(), strict=True)):
            hits.append(
                SwathHit(
                    track_id=int(ids[n]),
                    township_code=township_codes[k],
                    onset_s=base_s + int(offsets[pair_first[p]]),
                    max_dbz=round(float(per_cell_peak[n, k]), 1),
                    rain_1h_mm=round(float(pair_rain[p]), 2),
                )
            )
    return SwathForecast(base_s, offsets, dbz, rate, dominant_ids, tuple(hits))


# ── 4. assessments ────────────────────────────────────────────────────────────────────────


def _covered(scan: RadarScan, townships: TownshipPoints) -> npt.NDArray[np.bool_]:
    east = scan.origin_lon + scan.n_cols * scan.cell_deg
    north = scan.origin_lat + scan.n_rows * scan.cell_deg
    covered: npt.NDArray[np.bool_] = (
        (townships.lon >= scan.origin_lon)
        & (townships.lon <= east)
        & (townships.lat >= scan.origin_lat)
        & (townships.lat <= north)
    )
    return covered


def assess_convection(
    scan: RadarScan,
    state: dict[str, Any],
    townships: TownshipPoints,
    config: ConvectionConfig = DEFAULT_CONVECTION_CONFIG,
    gauges: GaugeSites | None = None,
) -> list[HazardAssessment]:
    """Convection and SHR nowcast assessments for every township the scan covers.

    ``state`` is the radar's (``new_radar_state()``). Returns ``[]`` for a late scan.
    With ``gauges`` (the rain gauges per township), each ``none`` SHR assessment of a
    township the radar sees around all its gauges carries the radar's vote on them
    (``detectors.field``: dry for the last hour or not).
    """
    scan_s = epoch_s(scan.observed_at)
    if state["scan_s"] is not None and scan_s < state["scan_s"]:
        return []
    grid = None
    if state["scan_s"] == scan_s:
        tracks = current_tracks(state, config.tracking)
    else:
        grid = scan.dbz()
        cells = identify_cells(grid, scan.origin_lon, scan.origin_lat, scan.cell_deg, config.cells)
        tracks = track_cells(state, cells, scan_s, config.tracking) or []
    votes: dict[str, bool] = {}
    if gauges is not None:
        field_state = state.setdefault("field", new_field_state())
        votes = field_votes(scan, grid, field_state, gauges, config.field)
    covered = np.nonzero(_covered(scan, townships))[0]
    codes = tuple(townships.codes[i] for i in covered)
    horizon_s, step_s = config.nowcast.horizon_s, config.nowcast.step_s
    forecast = nowcast_swaths(
        tracks, townships.lon[covered], townships.lat[covered], codes, horizon_s, step_s, base_s=scan_s, config=config
    )
    rainstorm = _rainstorm_nowcasts(scan, scan_s, grid, state, townships, covered, forecast.rain_rate_mm_h, config)
    by_id = {t.track_id: t for t in tracks}
    rolling = _rolling_rain_mm(forecast.rain_rate_mm_h, step_s) if forecast.offsets_s.size > 1 else None
    # Per township: the highest forecast dBZ and 60-min rain in one pass each; most
    # townships are below every level and get the bare ``none`` assessment.
    peak_dbz = np.where(np.isfinite(forecast.dbz), forecast.dbz, -np.inf).max(axis=1, initial=-np.inf)
    peak_rain = rolling.max(axis=1, initial=-np.inf) if rolling is not None else np.zeros(len(codes))
    lowest_dbz = min(threshold for _, threshold in config.levels.highest_first())
    lowest_rain = min((mm for _, mm in config.shr.thresholds.highest_first()), default=math.inf)
    convective = (peak_dbz >= lowest_dbz).tolist()
    rainy = (peak_rain >= lowest_rain).tolist()
    dominant = forecast.dominant_track.tolist()
    radar, at = scan.station_id, scan.observed_at
    cell_evidence: dict[int, tuple[Evidence, ...]] = {}  # shared by the townships of one cell
    vote_evidence = {dry: (field_evidence(radar, dry, config.field),) for dry in (False, True)} if votes else {}
    out: list[HazardAssessment] = []
    for k, code in enumerate(codes):
        rain = float(peak_rain[k]) if rolling is not None else 0.0
        track = by_id.get(dominant[k]) if convective[k] else None
        if track is None:
            out.append(_none("convection", code, radar, at, RULE_ID))
        else:
            if track.track_id not in cell_evidence:
                cell_evidence[track.track_id] = _cell_evidence(radar, track)
            evidence = cell_evidence[track.track_id]
            max_dbz = float(peak_dbz[k])
            out.append(
                _convection_assessment(scan, code, max_dbz, forecast.dbz[k], forecast.offsets_s, evidence, rain, config)
            )
        if rainy[k]:
            out.append(_shr_assessment(scan, code, rain, rolling, k, step_s, config))
        else:
            vote = votes.get(code)
            found = vote_evidence[vote] if vote is not None else ()
            out.append(_none("short_heavy_rain", code, radar, at, SHR_RULE_ID, found))
        if rainstorm is not None:
            nowcast = rainstorm[k]
            if nowcast is None:
                out.append(_none("rainstorm", code, radar, at, RAINSTORM_RULE_ID))
            else:
                out.append(_rainstorm_assessment(scan, code, nowcast))
    return out


def _rainstorm_nowcasts(
    scan: RadarScan,
    scan_s: int,
    grid: npt.NDArray[np.floating[Any]] | None,
    state: dict[str, Any],
    townships: TownshipPoints,
    covered: npt.NDArray[np.intp],
    forecast_rate_mm_h: FloatArray,
    config: ConvectionConfig,
) -> list[RainstormNowcast | None] | None:
    """Fold a new scan's QPE into ``state["qpe"]``, then nowcast the covered townships (``None``: off)."""
    settings = config.rainstorm
    if not settings.enabled:
        return None
    n = len(townships.codes)
    qpe = state.get("qpe")
    if qpe is None or qpe["n"] != n:  # first scan, or a registry with other townships: start afresh
        qpe = state["qpe"] = new_qpe_state(n)
    if grid is not None:  # a new scan (a redelivered one was folded the first time)
        sampling = point_sampling(
            townships, scan.origin_lon, scan.origin_lat, scan.cell_deg, scan.n_rows, scan.n_cols, settings.radius_km
        )
        rates = sample_rates(grid, sampling, lambda dbz: dbz_to_rain_rate_mm_h(dbz, config.zr))
        fold_qpe(qpe, scan_s, rates, settings)
    return rainstorm_nowcast(qpe, scan_s, covered, forecast_rate_mm_h, config.nowcast.step_s, settings)


def _rainstorm_assessment(scan: RadarScan, code: str, nowcast: RainstormNowcast) -> HazardAssessment:
    radar = scan.station_id
    hours = nowcast.window_s // 3600
    evidence = (
        Evidence(
            station_id=radar,
            metric=f"rain_{hours}h_nowcast_mm",
            value=nowcast.total_mm,
            threshold=nowcast.threshold_mm,
            window_s=nowcast.window_s,
            basis="forecast",
        ),
        Evidence(
            station_id=radar,
            metric="rain_radar_observed_mm",
            value=nowcast.observed_mm,
            window_s=nowcast.window_s - nowcast.lead_s,
        ),
        Evidence(
            station_id=radar,
            metric="rain_forecast_mm",
            value=nowcast.forecast_mm,
            window_s=nowcast.lead_s,
            basis="forecast",
        ),
    )
    return HazardAssessment(
        hazard="rainstorm",
        township_code=code,
        source_id=radar,
        assessed_at=scan.observed_at,
        level=nowcast.level,
        rule_id=RAINSTORM_RULE_ID,
        onset_at=from_epoch_s(nowcast.onset_s),
        certainty="Likely",
        evidence=evidence,
    )


def _none(
    hazard: Hazard, code: str, radar: str, at: datetime, rule_id: str, evidence: tuple[Evidence, ...] = ()
) -> HazardAssessment:
    """A covered township below every level (certainty ``Likely``: it is a forecast)."""
    return HazardAssessment(
        hazard=hazard,
        township_code=code,
        source_id=radar,
        assessed_at=at,
        level="none",
        rule_id=rule_id,
        certainty="Likely",
        evidence=evidence,
    )


def _cell_evidence(radar: str, track: Track) -> tuple[Evidence, ...]:
    return (
        Evidence(station_id=radar, metric="cell_id", value=float(track.track_id)),
        Evidence(station_id=radar, metric="cell_speed_kmh", value=round(track.speed_kmh, 1)),
        Evidence(station_id=radar, metric="cell_heading_deg", value=round(track.heading_deg, 1)),
        Evidence(station_id=radar, metric="cell_area_km2", value=round(track.area_km2, 1)),
        Evidence(
            station_id=radar, metric="cell_motion_sigma_kmh", value=round(min(track.velocity_sigma_kmh, 1.0e3), 1)
        ),
    )


def _convection_assessment(
    scan: RadarScan,
    code: str,
    max_dbz: float,
    series: FloatArray,
    offsets: npt.NDArray[np.int64],
    cell_evidence: tuple[Evidence, ...],
    rain: float,
    config: ConvectionConfig,
) -> HazardAssessment:
    """``max_dbz`` (the highest finite value of ``series``) reaches a level; the dominant cell is known."""
    radar = scan.station_id
    level, threshold = config.levels.level_for(max_dbz)
    if level == "none" or threshold is None:
        return _none("convection", code, radar, scan.observed_at, RULE_ID)
    first = int(np.argmax(series >= threshold))  # NaN (no echo) compares False
    onset: datetime = from_epoch_s(epoch_s(scan.observed_at) + int(offsets[first]))
    evidence = (
        Evidence(
            station_id=radar,
            metric="forecast_max_dbz",
            value=round(max_dbz, 1),
            threshold=threshold,
            window_s=config.nowcast.horizon_s,
            basis="forecast",
        ),
        *cell_evidence,
        Evidence(station_id=radar, metric="forecast_rain_1h_mm", value=round(rain, 1), window_s=3600, basis="forecast"),
    )
    return HazardAssessment(
        hazard="convection",
        township_code=code,
        source_id=radar,
        assessed_at=scan.observed_at,
        level=level,
        rule_id=RULE_ID,
        onset_at=onset,
        certainty="Likely",
        evidence=evidence,
    )


def _shr_assessment(
    scan: RadarScan, code: str, rain: float, rolling: FloatArray | None, k: int, step_s: int, config: ConvectionConfig
) -> HazardAssessment:
    """``rain`` is the township's highest rolling 60-min forecast rain (``rolling[k].max()``)."""
    _, threshold = config.shr.thresholds.level_for(rain)
    onset: datetime | None = None
    if rolling is not None and threshold is not None:
        first_end = int(np.argmax(rolling[k] >= threshold)) + 1  # rolling[j] ends at step j + 1
        onset = from_epoch_s(epoch_s(scan.observed_at) + first_end * step_s)
    return assess_short_heavy_rain_forecast(
        code, scan.station_id, scan.observed_at, rain, onset, config.shr, rule_id=SHR_RULE_ID
    )
