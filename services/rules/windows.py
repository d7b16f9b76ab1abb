"""Rolling accumulation windows keyed by event time, idempotent under redelivery.

State is JSON-compatible: ``{"t": [epoch_s, …], "mm": [amount, …]}``, sorted by time,
holding each report once; a redelivered report overwrites itself, so sums never double
count. Sums are taken over ``(end - window, end]``; with the times sorted, each window is a
``bisect`` and a slice sum (C speed), not a scan. Reports older than the longest window plus
the allowed lateness are evicted, so state is bounded by window length, not by how long the
service has run.

    time ─────────────────────────────────────────────▶ end
           │◀──────────── 12 h ───────────────▶│
                        │◀────── 6 h ─────────▶│
                                  │◀─ 3 h ────▶│
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from typing import Any

Series = dict[str, Any]


def new_series() -> Series:
    return {"t": [], "mm": []}


def add_report(series: Series, epoch_s: int, amount_mm: float) -> None:
    times: list[int] = series["t"]
    amounts: list[float] = series["mm"]
    if not times or epoch_s > times[-1]:
        times.append(epoch_s)
        amounts.append(amount_mm)
        return
    index = bisect_left(times, epoch_s)
    if index < len(times) and times[index] == epoch_s:
        amounts[index] = amount_mm
    else:
        times.insert(index, epoch_s)
        amounts.insert(index, amount_mm)


def evict_before(series: Series, oldest_kept_epoch_s: int) -> None:
    cut = bisect_left(series["t"], oldest_kept_epoch_s)
    if cut:
        del series["t"][:cut]
        del series["mm"][:cut]


def newest(series: Series) -> int | None:
    times: list[int] = series["t"]
    return times[-1] if times else None


def window_sums(series: Series, end_epoch_s: int, windows_s: Iterable[int]) -> dict[int, float]:
    """Sum of reports with ``end - window < t <= end`` for each window length."""
    times: list[int] = series["t"]
    amounts: list[float] = series["mm"]
    hi = bisect_right(times, end_epoch_s)
    return {window: round(sum(amounts[bisect_right(times, end_epoch_s - window) : hi]), 3) for window in windows_s}


def window_sum(series: Series, end_epoch_s: int, window_s: int, hi: int | None = None) -> float:
    """One entry of ``window_sums`` (``hi``: ``bisect_right(times, end)`` if already known)."""
    times: list[int] = series["t"]
    if hi is None:
        hi = bisect_right(times, end_epoch_s)
    amounts: list[float] = series["mm"]
    return round(sum(amounts[bisect_right(times, end_epoch_s - window_s) : hi]), 3)
