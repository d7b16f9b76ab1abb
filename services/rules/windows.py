"""Rolling accumulation windows keyed by event time, idempotent under redelivery.

State is a JSON-compatible dict ``{epoch_second_str: mm}`` holding each report once;
a redelivered report overwrites itself, so sums never double count. Sums are taken over
``(end - window, end]`` where ``end`` is the newest report's time; reports older than the
longest window plus the allowed lateness are evicted, so state is bounded by window
length, not by how long the service has run.

    time ─────────────────────────────────────────────▶ end
           │◀──────────── 12 h ───────────────▶│
                        │◀────── 6 h ─────────▶│
                                  │◀─ 3 h ────▶│
"""

from __future__ import annotations

from collections.abc import Iterable


def add_report(series: dict[str, float], epoch_s: int, amount_mm: float) -> None:
    series[str(epoch_s)] = amount_mm


def evict_before(series: dict[str, float], oldest_kept_epoch_s: int) -> None:
    for stamp in [s for s in series if int(s) < oldest_kept_epoch_s]:
        del series[stamp]


def window_sums(series: dict[str, float], end_epoch_s: int, windows_s: Iterable[int]) -> dict[int, float]:
    """Sum of reports with ``end - window < t <= end`` for each window length."""
    points = [(int(s), mm) for s, mm in series.items()]
    return {
        window: round(sum(mm for t, mm in points if end_epoch_s - window < t <= end_epoch_s), 3) for window in windows_s
    }
