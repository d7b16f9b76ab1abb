"""Small pieces every detector shares: config base, event-time helpers, level arithmetic,
column tables keyed by epoch seconds, distances and a robust slope.

Column tables
-------------
A detector's per-station state is a JSON-compatible dict of equally long lists, one of
them ``"t"`` (epoch seconds, sorted ascending, unique)::

    {"t": [1565308800, 1565309100, …], "level_m": [2.91, 2.95, …]}

``upsert_row`` overwrites the row of an existing time, so a redelivered report is held
once (idempotence under at-least-once delivery, as ``services.rules.windows`` does for
rain). ``accepts`` is the single lateness rule all detectors use: a report is taken when
it is no older than ``newest - allowed_lateness_s``; anything older is *too late*, the
detector returns ``None`` and the adapter counts the drop (ARCHITECTURE §3).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict
from scipy.special import ndtri  # type: ignore[import-untyped]  # scipy ships no type information

from schemas.common import LEVEL_RANK, RANK_LEVEL, LevelOrNone

Table = dict[str, Any]
"""JSON-compatible column table: ``{"t": [int, …], <column>: [float | None, …], …}``."""

KM_PER_DEG_LAT = 110.574
KM_PER_DEG_LON_EQUATOR = 111.320


class FrozenConfig(BaseModel):
    """Base of every detector threshold model: immutable, unknown keys are errors."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def epoch_s(moment: datetime) -> int:
    return int(moment.timestamp())


def from_epoch_s(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def rank(level: str) -> int:
    return LEVEL_RANK[level]


def level_of_rank(value: int) -> LevelOrNone:
    level: LevelOrNone = RANK_LEVEL[max(0, min(4, value))]  # type: ignore[assignment]  # RANK_LEVEL is typed dict[int, str]
    return level


def max_level(levels: Iterable[str]) -> LevelOrNone:
    return level_of_rank(max((LEVEL_RANK[level] for level in levels), default=0))


def new_table(*columns: str) -> Table:
    table: Table = {"t": []}
    for column in columns:
        table[column] = []
    return table


def newest_t(table: Table) -> int | None:
    times: list[int] = table["t"]
    return times[-1] if times else None


def accepts(table: Table, epoch: int, allowed_lateness_s: int) -> bool:
    """True when a report at ``epoch`` is within the allowed lateness of the newest one."""
    newest = newest_t(table)
    return newest is None or epoch >= newest - allowed_lateness_s


def upsert_row(table: Table, epoch: int, values: dict[str, float | None]) -> None:
    """Insert the row at its time, or overwrite the row already held for that time."""
    times: list[int] = table["t"]
    index = bisect_left(times, epoch)
    if index < len(times) and times[index] == epoch:
        for column, value in values.items():
            table[column][index] = value
        return
    times.insert(index, epoch)
    for column, value in values.items():
        table[column].insert(index, value)


def evict_before(table: Table, oldest_kept: int) -> None:
    cut = bisect_left(table["t"], oldest_kept)
    if cut:
        for column in table.values():
            del column[:cut]


def rows_between(table: Table, start_exclusive: int, end_inclusive: int) -> slice:
    """The slice of rows with ``start < t <= end``."""
    times: list[int] = table["t"]
    lo = bisect_left(times, start_exclusive + 1)
    hi = bisect_left(times, end_inclusive + 1)
    return slice(lo, hi)


def km_between(lon_a: float, lat_a: float, lon_b: float, lat_b: float) -> float:
    """Great-circle distance (haversine, R = 6371 km); plenty for city-scale geometry."""
    phi_a, phi_b = math.radians(lat_a), math.radians(lat_b)
    d_phi = phi_b - phi_a
    d_lambda = math.radians(lon_b - lon_a)
    h = math.sin(d_phi / 2) ** 2 + math.cos(phi_a) * math.cos(phi_b) * math.sin(d_lambda / 2) ** 2
    return 2 * 6371.0 * math.asin(min(1.0, math.sqrt(h)))


def _pairwise_slopes(
    times: Sequence[float] | npt.NDArray[np.float64], values: Sequence[float] | npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(t, v, slopes of every pair with distinct times)."""
    t = np.asarray(times, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    i, j = np.triu_indices(t.size, k=1)
    dt = t[j] - t[i]
    keep = dt != 0
    return t, v, (v[j] - v[i])[keep] / dt[keep]


def theil_sen_slope(
    times: Sequence[float] | npt.NDArray[np.float64], values: Sequence[float] | npt.NDArray[np.float64]
) -> tuple[float, float]:
    """Median of pairwise slopes and the matching intercept (value at ``t = 0``).

    Robust to a single wild reading (breakdown point ≈ 29 %), which a least-squares fit is
    not: one spiked gauge reading must not turn into a rate-of-rise warning. O(n²) pairs;
    the callers' windows hold at most a few hundred readings.
    """
    t, v, slopes = _pairwise_slopes(times, values)
    if t.size < 2:
        return 0.0, float(v[0]) if v.size else 0.0
    if not slopes.size:
        return 0.0, float(np.median(v))
    slope = float(np.median(slopes))
    intercept = float(np.median(v - slope * t))
    return slope, intercept


@cache
def _one_sided_z(confidence: float) -> float:
    """The one-sided normal quantile (per report on the geo-hazard path: computed once per level)."""
    if not 0.5 <= confidence < 1.0:
        msg = f"confidence must be in [0.5, 1), got {confidence}"
        raise ValueError(msg)
    return float(ndtri(confidence))


def theil_sen_lower_bound(
    times: Sequence[float] | npt.NDArray[np.float64],
    values: Sequence[float] | npt.NDArray[np.float64],
    confidence: float = 0.95,
) -> tuple[float, float]:
    """The Theil–Sen slope and its one-sided lower confidence bound (Sen 1968).

    The bound is the order statistic of the sorted pairwise slopes at (0-based) rank
    ``round((N - z·√Var(S)) / 2) - 1``, ``Var(S) = n(n-1)(2n+5)/18`` (Kendall's S, no ties): the
    distribution-free interval ``scipy.stats.theilslopes`` gives, from the slopes already
    computed here (the detectors call this on every report). ``(0, 0)`` below 3 readings.
    """
    z = _one_sided_z(confidence)
    t, _, slopes = _pairwise_slopes(times, values)
    if t.size < 3 or not slopes.size:
        return 0.0, 0.0
    n = t.size
    spread = z * float(np.sqrt(n * (n - 1) * (2 * n + 5) / 18.0))
    rank = min(max(round((slopes.size - spread) / 2.0) - 1, 0), slopes.size - 1)
    ordered = np.partition(slopes, rank)
    return float(np.median(slopes)), float(ordered[rank])
