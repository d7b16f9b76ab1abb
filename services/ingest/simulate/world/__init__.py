"""The simulated Wenzhou world: weather, hydrology, slopes and sensors, streamed tick by tick.

Public API::

    from services.ingest.simulate.world import Tick, iter_world
    from services.ingest.simulate.scenario import load_scenario
    from services.ingest.simulate.truth import GroundTruth

    truth = GroundTruth()
    for tick in iter_world(load_scenario("loadtests/scenarios/lekima-2019.toml"), registry, truth):
        tick.at, tick.observations, tick.raw        # event time, valid observations, broken payloads
    truth.to_json("lekima-truth.json")

Modules, in the order a tick uses them: ``grid`` (lon/lat grid, terrain, coast),
``typhoon`` and ``convection`` (parametric weather), ``fields`` (the true atmosphere),
``radar`` (Z–R), ``gauges`` / ``geohazard`` / ``hydrology`` (sensors and their physics),
``rng`` (per-station random streams), ``faults`` (deliberate faults, delivery queue),
``network`` (what the registry must provide), ``engine`` (the loop). ``testing`` holds a
small registry stand-in for tests.
"""

from services.ingest.simulate.world.engine import Tick, World, iter_world, span_ticks
from services.ingest.simulate.world.network import RegistryLike, StationLike, TownshipLike

__all__ = ["RegistryLike", "StationLike", "Tick", "TownshipLike", "World", "iter_world", "span_ticks"]
