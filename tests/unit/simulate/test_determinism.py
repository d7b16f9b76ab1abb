"""Same scenario and seed, same world: observation stream and truth JSON, byte for byte."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from services.ingest.simulate.world import iter_world
from services.ingest.simulate.world.testing import MiniRegistry
from tests.unit.simulate.support import REPO, Run, run, world

FAULTS: dict[str, Any] = {
    "dropout_rate": 0.02,
    "stuck_rate": 0.01,
    "spike_rate": 0.02,
    "duplicate_rate": 0.02,
    "late_rate": 0.03,
    "out_of_order_rate": 0.02,
    "malformed_rate": 0.02,
    "clock_skew_fraction": 0.2,
    "clock_skew_s": 120.0,
    "late_delay": {"mean_s": 240.0, "min_s": 60.0, "max_s": 900.0},
}


def _world(seed: int) -> Any:
    return world(seed=seed, faults=FAULTS, geohazard={"failure_fraction": 0.5}, end=world().start.replace(hour=2))


def test_same_seed_same_stream_and_byte_identical_truth(mini: MiniRegistry, tmp_path: Path) -> None:
    first, second = run(_world(11), mini), run(_world(11), mini)
    assert first.stream() == second.stream()
    assert len(first.observations) > 1000
    assert first.raw, "faults are on: some payloads are broken bytes"
    first.truth.to_json(tmp_path / "a.json")
    second.truth.to_json(tmp_path / "b.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()


def test_a_different_seed_gives_a_different_world(mini: MiniRegistry) -> None:
    first, other = run(_world(11), mini), run(_world(12), mini)
    assert first.stream() != other.stream()
    a, b = first.truth.to_dict(), other.truth.to_dict()
    assert a["fault_counts"] != b["fault_counts"]
    # the weather does not depend on the seed: the true township rain is the same
    assert a["townships"] == b["townships"]


def test_a_station_numbers_do_not_depend_on_which_other_stations_exist(mini: MiniRegistry) -> None:
    def by_station(result: Run) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for obs in result.observations:
            out.setdefault(obs.station_id, []).append(obs.model_dump_json())
        return out

    everyone = by_station(run(world(), mini))
    fewer = by_station(run(world(stations={"exclude_prefixes": ["RAIN-A0001", "RADAR", "GEO"]}), mini))
    gone = {"RAIN-A0001", "RADAR-S-WENCHENG", "RADAR-X-01", "GEO-0001", "GEO-0002", "GEO-0003", "GEO-0004"}
    assert set(everyone) - set(fewer) == gone
    for sid, texts in fewer.items():
        assert everyone[sid] == texts, sid


def _digest() -> str:
    """sha256 of the stream and the truth JSON of a small world with every fault on."""
    from services.ingest.simulate.world.testing import mini_registry

    result = run(_world(11), mini_registry())
    digest = hashlib.sha256(json.dumps(result.stream(), default=bytes.hex).encode())
    digest.update(result.truth.to_json_text().encode())
    return digest.hexdigest()


def test_the_world_is_the_same_in_another_process_with_another_hash_seed() -> None:
    here = _digest()
    code = "from tests.unit.simulate.test_determinism import _digest; print(_digest())"
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True, timeout=60
        )
        assert out.stdout.strip() == here


def test_sample_fraction_is_a_deterministic_subset(mini: MiniRegistry) -> None:
    from services.ingest.simulate.world.network import select_network

    sc = world(stations={"sample_fraction": 0.5})
    first, second = select_network(sc, mini), select_network(sc, mini)
    assert first == second
    assert 0 < first.station_count < len(mini.stations)


@pytest.mark.parametrize("stop_after", [1, 30])
def test_a_consumer_may_stop_early_and_truth_shows_the_running_episodes(mini: MiniRegistry, stop_after: int) -> None:
    from services.ingest.simulate.truth import GroundTruth

    truth = GroundTruth()
    ticks = iter_world(world(background={"rain_mm_h": 45.0, "ramp_min": 0.0}), mini, truth)
    for i, tick in enumerate(ticks, start=1):
        if i == stop_after:
            assert tick.at == truth.last_time
            break
    events = truth.events
    assert all(e.end <= truth.last_time for e in events if truth.last_time is not None)
    assert truth.to_json_text() == truth.to_json_text()
