"""Streaming: the world is generated tick by tick and its memory does not grow with the span."""

from __future__ import annotations

import gc
import itertools
import tracemalloc
from datetime import timedelta

import pytest
from pydantic import BaseModel

from schemas.observations import RainObservation
from services.ingest.simulate.scenario import TICK_S
from services.ingest.simulate.truth import GroundTruth
from services.ingest.simulate.world import faults, iter_world
from services.ingest.simulate.world.testing import MiniRegistry
from tests.unit.simulate.support import START, world
from tests.unit.simulate.test_faults import ALL_FAULTS

MAX_LATE_S = 900  # ALL_FAULTS' late_delay.max_s, longer than every report interval of the world


class RecordingQueue(faults.DeliveryQueue):
    """The engine's delivery queue, watched: how full it gets and how long payloads wait."""

    instances: list[RecordingQueue] = []  # noqa: RUF012  # filled per test

    def __init__(self, max_hold_s: int | None = None) -> None:
        super().__init__(max_hold_s)
        self.max_hold = max_hold_s
        self.longest = 0
        self.puts = 0
        RecordingQueue.instances.append(self)

    def put(self, at_s: int, station_id: str, delivery: faults.Delivery) -> None:
        super().put(at_s, station_id, delivery)
        self.puts += 1
        self.longest = max(self.longest, len(self))


def _consume(hours: float, mini: MiniRegistry) -> tuple[int, int]:
    """Run a faulty world for ``hours``, keep nothing; (observations seen, traced peak bytes)."""
    sc = world(
        faults=ALL_FAULTS,
        grid={"cell_deg": 0.05},
        background={"ramp_min": 0.0},
        end=START + timedelta(minutes=round(hours * 60)),
    )
    gc.collect()
    tracemalloc.start()
    try:
        seen = 0
        for tick in iter_world(sc, mini, GroundTruth()):
            seen += len(tick.observations) + len(tick.raw)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return seen, peak


def test_memory_does_not_grow_with_the_span(mini: MiniRegistry) -> None:
    short_seen, short_peak = _consume(1.0, mini)
    long_seen, long_peak = _consume(6.0, mini)
    assert long_seen > 5 * short_seen
    # six times the observations, the same peak: nothing per observation is kept
    assert long_peak < 1.15 * short_peak + 256 * 1024, (short_peak, long_peak)


def test_the_delivery_queue_holds_no_more_than_the_late_delay_bound(
    mini: MiniRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    RecordingQueue.instances = []
    monkeypatch.setattr(faults, "DeliveryQueue", RecordingQueue)
    faults_off_skew = {**ALL_FAULTS, "clock_skew_fraction": 0.0}
    sc = world(faults=faults_off_skew, grid={"cell_deg": 0.05}, end=START + timedelta(hours=6))
    truth = GroundTruth()
    worst_lag = 0.0
    per_minute = 0
    for tick in iter_world(sc, mini, truth):
        per_minute = max(per_minute, len(tick.observations) + len(tick.raw))
        for obs in tick.observations:
            worst_lag = max(worst_lag, (tick.at - obs.observed_at).total_seconds())
    (queue,) = RecordingQueue.instances
    assert queue.max_hold == MAX_LATE_S
    assert len(queue) == 0, "drained at the end"
    # nothing waits longer than the bound (plus the tick it is rounded up to) ...
    assert 0 < worst_lag <= MAX_LATE_S + TICK_S
    # ... so the queue never holds more than that many minutes of reports
    reports_per_minute = 16 + 2 + 2 + 4 + 4  # every station reporting at once, the worst case
    assert queue.longest <= 2 * reports_per_minute * (MAX_LATE_S // TICK_S + 1)
    assert queue.longest < queue.puts / 10


def _rain(station: str, minute: int) -> faults.Delivery:
    at = START + timedelta(minutes=minute)
    return faults.Delivery(RainObservation(station_id=station, observed_at=at, rain_mm=0.0))


def _epoch(minute: int) -> int:
    return int((START + timedelta(minutes=minute)).timestamp())


def test_a_held_report_of_a_station_that_falls_silent_is_delivered_after_the_bound() -> None:
    queue = faults.DeliveryQueue(max_hold_s=600)
    held = _rain("GEO-1", 0)
    held.hold_for_next = True
    queue.put(_epoch(0), "GEO-1", held)  # e.g. the last report of a slope that failed
    for minute in range(1, 10):
        assert queue.pop_ready(_epoch(minute)) == ([], [])
    observations, _ = queue.pop_ready(_epoch(10))
    assert observations == [held.payload]
    assert len(queue) == 0


def test_a_held_report_follows_the_stations_next_one() -> None:
    queue = faults.DeliveryQueue(max_hold_s=600)
    first, second, other = _rain("A", 0), _rain("A", 1), _rain("B", 1)
    first.hold_for_next = True
    queue.put(_epoch(0), "A", first)
    assert queue.pop_ready(_epoch(0)) == ([], [])
    queue.put(_epoch(1), "B", other)
    queue.put(_epoch(1), "A", second)
    observations, _ = queue.pop_ready(_epoch(1))
    assert observations == [other.payload, second.payload, first.payload]


def test_late_payloads_come_before_the_ticks_own_and_duplicates_stay_together() -> None:
    queue = faults.DeliveryQueue()
    late, now = _rain("A", 0), _rain("B", 2)
    late.delay_s = 90  # two ticks
    now.duplicate = True
    queue.put(_epoch(0), "A", late)
    assert queue.pop_ready(_epoch(1)) == ([], [])
    queue.put(_epoch(2), "B", now)
    observations, _ = queue.pop_ready(_epoch(2))
    assert observations == [late.payload, now.payload, now.payload]


def test_iter_world_is_lazy(mini: MiniRegistry) -> None:
    truth = GroundTruth()
    ticks = iter_world(world(end=START + timedelta(days=14)), mini, truth)  # two weeks: never run here
    assert truth.start is None, "nothing happens before the first tick is asked for"
    first = next(ticks)
    assert first.at == START + timedelta(seconds=TICK_S)
    assert truth.start == START
    second = next(ticks)
    assert second.at - first.at == timedelta(seconds=TICK_S)


def test_ticks_are_consecutive_minutes_and_cover_the_span(mini: MiniRegistry) -> None:
    sc = world(grid={"cell_deg": 0.05})
    at = [tick.at for tick in iter_world(sc, mini, GroundTruth())]
    assert at[0] == sc.start + timedelta(seconds=TICK_S)
    assert at[-1] == sc.end  # no faults: nothing left to drain
    assert all(b - a == timedelta(seconds=TICK_S) for a, b in itertools.pairwise(at))


def test_observations_are_contract_models(mini: MiniRegistry) -> None:
    sc = world(grid={"cell_deg": 0.05}, end=START + timedelta(minutes=20))
    kinds = set()
    for tick in iter_world(sc, mini, GroundTruth()):
        for obs in tick.observations:
            assert isinstance(obs, BaseModel)
            assert type(obs).model_validate_json(obs.model_dump_json()) == obs
            kinds.add(obs.kind)
    assert kinds == {"rain", "radar", "geohazard", "water_level"}
