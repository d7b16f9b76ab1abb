"""Replay a scenario's observations onto a bus on a virtual clock."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import timedelta

from schemas.observations import ObservationBase
from services.common.bus.base import Bus
from services.common.clock import VirtualClock
from services.ingest.gate import IngestGate, StationLookup
from services.ingest.simulate.scenario import Scenario
from services.ingest.simulate.truth import GroundTruth
from services.ingest.simulate.world import iter_world
from services.ingest.simulate.world.network import RegistryLike
from services.pipeline import IngestCounts, publish_observations


async def replay_ticks(
    bus: Bus,
    ticks: Iterable[Sequence[ObservationBase | bytes]] | Iterable[Sequence[ObservationBase]],
    lookup: StationLookup,
    clock: VirtualClock,
    counts: IngestCounts,
    source: str = "replay",
    after_tick: Callable[[int], object] | None = None,
) -> None:
    """Publish tick by tick; the gate's 'now' is the virtual clock.

    With ``clock.speed`` set, each tick waits for its event time at that speed.
    """
    gate = IngestGate(lookup, clock.now)
    for index, batch in enumerate(ticks):
        times = [o.observed_at for o in batch if isinstance(o, ObservationBase)]
        if times:
            await clock.sleep_until(max(times))
        await publish_observations(bus, gate, batch, source, counts)
        if after_tick is not None:
            result = after_tick(index)
            if hasattr(result, "__await__"):
                await result


def world_batches(
    scenario: Scenario, registry: RegistryLike, truth: GroundTruth
) -> Iterator[list[ObservationBase | bytes]]:
    """The simulated world's ticks as gate input: observations, then the malformed payloads."""
    for tick in iter_world(scenario, registry, truth):
        yield [*tick.observations, *tick.raw]


def tick_span(ticks: list[list[ObservationBase]]) -> timedelta:
    if not ticks or not ticks[0]:
        return timedelta(0)
    return ticks[-1][0].observed_at - ticks[0][0].observed_at
