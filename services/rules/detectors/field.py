"""Gauge–radar consistency: does the radar see rain where a township's gauges claim it?

A rain gauge reading short-duration heavy rain (≥ 20 mm in an hour, §1.6) needs rain of
about 20 mm/h or more over it, which is ≥ 44 dBZ by Z = 300 R^1.4 (§4.2). A radar that for
that whole hour saw no echo of even ``wet_dbz`` (30 dBZ ≈ 2.9 mm/h) anywhere near the gauge
contradicts the gauge: a clogged funnel emptying at once, a wired-in test, a mis-keyed
station. The check runs where the radar is (per scan, here) and is *used* where the gauge's
claim meets the radar's vote: the lifecycle of ``short_heavy_rain:<township>``
(``services.rules.lifecycle``, decision 24), since no station processor sees both.

Per scan and township with rain gauges (``GaugeSites``)::

    sample   the (2k+1)² grid cells around each of the township's gauges,
             k = ⌈radius_km / cell size⌉ (2 km → 5 × 5 cells at 0.01°)
    unseen   some gauge's neighbourhood is off the scan grid: the radar does not vote
    wet      max dBZ over the samples ≥ wet_dbz (no echo counts as dry)
    vote     dry (1.0) when the radar has scanned without a gap > max_gap_s for at least
             window_s and no wet scan lies within the last window_s; else 0.0

The radar's ``short_heavy_rain`` ``none`` assessments carry the vote as evidence
``echo_free_near_gauges`` (value 1.0 dry / 0.0 not, threshold ``wet_dbz``, window
``window_s``). The value changes only when a township turns wet or has been dry a whole
window, so the radar's change-or-heartbeat publishing is not defeated.

State (in the radar's state, JSON-compatible, bounded by the townships)::

    {"since": start of gap-free scanning, "last": last scan, "wet": {code: last wet scan}}

Timeline, one township, X-band (1-min scans), window 60 min::

    scan      00:00 … 00:30  00:31 … 01:30  01:31 … 02:31 …
    max dBZ     12      33     10       8     11       9
    vote        0 (scanning < 1 h) ──▶ 0 (wet at 00:30) ──▶ 1 from 01:31
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import Field

from schemas.assessment import Evidence
from schemas.observations import RadarScan
from services.rules.detectors.common import KM_PER_DEG_LAT, FrozenConfig

FIELD_METRIC = "echo_free_near_gauges"
IntArray = npt.NDArray[np.intp]


class FieldCheckConfig(FrozenConfig):
    wet_dbz: float = Field(default=30.0, description="[A] ≈ 2.9 mm/h (Z = 300 R^1.4): far below SHR's ≈ 44 dBZ")
    window_s: int = Field(default=3600, gt=0, description="the SHR window (§1.6): dry for all of it")
    radius_km: float = Field(default=2.0, ge=0.0, description="[A] around each gauge: drift of rain aloft")
    max_gap_s: int = Field(default=720, gt=0, description="[A] two S-band cycles: a longer gap restarts the window")


DEFAULT_FIELD_CHECK = FieldCheckConfig()


@dataclass(frozen=True, slots=True, eq=False)
class GaugeSites:
    """Township code → its rain gauges' (lon, lat), in code order (built from the registry).

    Hashed by identity (``eq=False``), like ``TownshipPoints``: the sampling cache is looked
    up on every scan, and hashing ~750 coordinate pairs each time cost more than the lookup.
    """

    codes: tuple[str, ...]
    sites: tuple[tuple[tuple[float, float], ...], ...]

    @classmethod
    def from_rows(cls, rows: list[tuple[str, float, float]]) -> GaugeSites:
        """``rows``: (township code, lon, lat) per gauge."""
        grouped: dict[str, list[tuple[float, float]]] = {}
        for code, lon, lat in rows:
            grouped.setdefault(code, []).append((lon, lat))
        codes = tuple(sorted(grouped))
        return cls(codes, tuple(tuple(sorted(grouped[c])) for c in codes))


@dataclass(frozen=True, slots=True)
class _Sampling:
    """Which grid cells each seen township samples, as one flat index array cut in segments."""

    codes: tuple[str, ...]
    flat: IntArray
    starts: IntArray


@lru_cache(maxsize=32)
def _sampling(
    sites: GaugeSites, origin_lon: float, origin_lat: float, cell_deg: float, n_rows: int, n_cols: int, radius_km: float
) -> _Sampling:
    """Per radar geometry (a radar's grid does not move): computed once, then cached."""
    k = math.ceil(radius_km / (cell_deg * KM_PER_DEG_LAT)) if radius_km > 0 else 0
    offsets = np.arange(-k, k + 1)
    codes: list[str] = []
    pieces: list[IntArray] = []
    for code, gauges in zip(sites.codes, sites.sites, strict=True):
        rows = [math.floor((lat - origin_lat) / cell_deg) for _, lat in gauges]
        cols = [math.floor((lon - origin_lon) / cell_deg) for lon, _ in gauges]
        if any(r - k < 0 or r + k >= n_rows for r in rows) or any(c - k < 0 or c + k >= n_cols for c in cols):
            continue  # a neighbourhood off the grid: this radar cannot vouch for the township
        cells = {
            (r + dr) * n_cols + (c + dc) for r, c in zip(rows, cols, strict=True) for dr in offsets for dc in offsets
        }
        codes.append(code)
        pieces.append(np.array(sorted(cells), dtype=np.intp))
    if not pieces:
        return _Sampling((), np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp))
    starts = np.cumsum([0, *(len(p) for p in pieces[:-1])]).astype(np.intp)
    return _Sampling(tuple(codes), np.concatenate(pieces), starts)


def new_field_state() -> dict[str, Any]:
    return {"since": None, "last": None, "wet": {}}


def field_votes(
    scan: RadarScan,
    dbz: npt.NDArray[np.floating[Any]] | None,
    state: dict[str, Any],
    sites: GaugeSites,
    config: FieldCheckConfig = DEFAULT_FIELD_CHECK,
) -> dict[str, bool]:
    """Fold one scan into ``state``; the vote (True = dry) per township it sees.

    ``dbz``: the scan's grid if the caller has decoded it (else it is decoded when needed).
    A scan at the time of the last one (a redelivery) votes again without changing state;
    the caller drops late scans before this.
    """
    scan_s = int(scan.observed_at.timestamp())
    sampling = _sampling(
        sites, scan.origin_lon, scan.origin_lat, scan.cell_deg, scan.n_rows, scan.n_cols, config.radius_km
    )
    wet: dict[str, int] = state["wet"]
    if state["last"] != scan_s:
        if state["since"] is None or scan_s - state["last"] > config.max_gap_s:
            state["since"] = scan_s
        state["last"] = scan_s
        if sampling.codes:
            grid = scan.dbz() if dbz is None else dbz
            values = np.asarray(grid, dtype=np.float64).ravel()[sampling.flat]
            peaks = np.maximum.reduceat(np.nan_to_num(values, nan=-np.inf), sampling.starts)
            for i in np.flatnonzero(peaks >= config.wet_dbz).tolist():
                wet[sampling.codes[i]] = scan_s
        horizon = scan_s - config.window_s
        for code in [c for c, t in wet.items() if t <= horizon]:
            del wet[code]  # older than the window: it no longer makes the township wet
    covered = scan_s - state["since"] >= config.window_s
    return {code: covered and code not in wet for code in sampling.codes}


def field_evidence(radar: str, dry: bool, config: FieldCheckConfig = DEFAULT_FIELD_CHECK) -> Evidence:
    return Evidence(
        station_id=radar,
        metric=FIELD_METRIC,
        value=1.0 if dry else 0.0,
        threshold=config.wet_dbz,
        window_s=config.window_s,
    )
