"""A small seeded rain world for the walking skeleton: gauges under a moving rain band.

A Gaussian rain band of peak intensity ``peak_mm_h`` and half-width ``width_km`` moves
east→west across a row of gauges at ``speed_kmh``; each gauge reports the rain of the
last ``interval_s`` with multiplicative noise. Deterministic for a seed. (The full
Wenzhou world with typhoons, radar and faults lives beside it.)
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from schemas.observations import RainObservation


@dataclass(frozen=True, slots=True)
class Gauge:
    station_id: str
    township_code: str
    x_km: float


@dataclass(frozen=True, slots=True)
class RainbandScenario:
    seed: int = 7
    start: datetime = datetime(2019, 8, 9, 12, 0, tzinfo=UTC)
    hours: float = 12.0
    interval_s: int = 300
    peak_mm_h: float = 45.0
    width_km: float = 25.0
    speed_kmh: float = 12.0
    gauges: tuple[Gauge, ...] = (
        Gauge("RAIN-A0001", "330302006", 0.0),
        Gauge("RAIN-A0002", "330302006", 4.0),
        Gauge("RAIN-A0003", "330302023", 20.0),
        Gauge("RAIN-A0004", "330303001", 45.0),
        Gauge("RAIN-A0005", "330328100", 80.0),
        Gauge("RAIN-A0006", "330328100", 85.0),
    )


def stations(scenario: RainbandScenario) -> dict[str, tuple[tuple[str, ...], str]]:
    return {g.station_id: (("rain",), g.township_code) for g in scenario.gauges}


def gauges_by_township(scenario: RainbandScenario) -> dict[str, frozenset[str]]:
    grouped: dict[str, set[str]] = {}
    for g in scenario.gauges:
        grouped.setdefault(g.township_code, set()).add(g.station_id)
    return {town: frozenset(ids) for town, ids in grouped.items()}


def observations(scenario: RainbandScenario) -> Iterator[list[RainObservation]]:
    """One list per reporting tick, in event-time order."""
    rng = random.Random(scenario.seed)
    ticks = int(scenario.hours * 3600 / scenario.interval_s)
    band_start_km = -3.0 * scenario.width_km
    for tick in range(1, ticks + 1):
        at = scenario.start + timedelta(seconds=tick * scenario.interval_s)
        hours_elapsed = tick * scenario.interval_s / 3600.0
        band_km = band_start_km + scenario.speed_kmh * hours_elapsed
        batch: list[RainObservation] = []
        for gauge in scenario.gauges:
            distance = (gauge.x_km - band_km) / scenario.width_km
            rate_mm_h = scenario.peak_mm_h * math.exp(-0.5 * distance * distance)
            noisy = max(0.0, rate_mm_h * rng.lognormvariate(0.0, 0.15))
            rain_mm = round(noisy * scenario.interval_s / 3600.0, 1)
            batch.append(
                RainObservation(
                    station_id=gauge.station_id,
                    observed_at=at,
                    rain_mm=rain_mm,
                    interval_s=scenario.interval_s,
                )
            )
        yield batch
