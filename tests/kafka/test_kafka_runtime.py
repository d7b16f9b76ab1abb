"""The same scenarios on a real Kafka broker: parity, fail-over, rejects, bus basics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from schemas import topics
from schemas.assessment import HazardAssessment
from schemas.rejected import RejectedRecord
from schemas.warning import WarningMessage
from services.common.bus.base import Emit, partition_for
from services.common.bus.kafka import KafkaBus
from services.common.clock import VirtualClock
from services.ingest.gate import static_lookup
from services.ingest.simulate.rainband import RainbandScenario, observations, stations
from services.pipeline import IngestCounts
from services.replay import replay_ticks
from tests.helpers import PARITY_LATENESS_S, memory_run, read_until_idle, warning_signature
from tests.kafka.workers import ServiceProcess, rules_worker

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


async def _bus(bootstrap: str, namespace: str) -> KafkaBus:
    bus = KafkaBus(bootstrap, namespace=namespace)
    await bus.start()
    await bus.ensure_topics(topics.ALL_TOPICS, 4)
    return bus


def _dedup(records: list[bytes]) -> list[WarningMessage]:
    by_id: dict[str, WarningMessage] = {}
    for raw in records:
        msg = WarningMessage.model_validate_json(raw)
        previous = by_id.setdefault(msg.message_id, msg)
        assert previous == msg, f"message id {msg.message_id} carried two different contents"
    return list(by_id.values())


async def test_kafka_bus_roundtrip_keeps_key_partitioning(kafka_bootstrap: str, namespace: str) -> None:
    bus = await _bus(kafka_bootstrap, namespace)
    try:
        await bus.publish_many([Emit("obs.rain", f"RAIN-A{i:04d}", str(i).encode()) for i in range(200)])
        records = await read_until_idle(bus, ["obs.rain"], "rt", idle_s=1.0, max_wait_s=30, expect=200)
        assert len(records) == 200
        for r in records:
            assert r.topic == "obs.rain"
            assert r.partition == partition_for(r.key or "", 4)
    finally:
        await bus.stop()


@pytest.mark.parametrize("engine", ["native", "faust"])
async def test_parity_memory_and_kafka_give_identical_warnings(
    kafka_bootstrap: str, namespace: str, tmp_path: Path, engine: str
) -> None:
    scenario = RainbandScenario(seed=5, hours=20)
    expected, _ = await memory_run(scenario)
    assert expected, "the scenario must produce warnings to compare"
    worker = rules_worker(kafka_bootstrap, namespace, tmp_path, "rules-1", PARITY_LATENESS_S, engine)
    bus = await _bus(kafka_bootstrap, namespace)
    try:
        counts = IngestCounts()
        # Replayed at 3600x, as a load test would: at unbounded speed one partition's whole
        # 20 h can be processed before another's, an event-time skew beyond any lateness
        # bound, and then the lifecycle rightly decides without the late source.
        await replay_ticks(
            bus,
            observations(scenario),
            static_lookup(stations(scenario)),
            VirtualClock(scenario.start, speed=3600.0),
            counts,
        )
        want = {m.message_id for m in expected}
        records = await read_until_idle(
            bus,
            [topics.WARNINGS],
            "collector",
            idle_s=60.0,
            max_wait_s=240,
            done=lambda rs: want <= {WarningMessage.model_validate_json(r.value).message_id for r in rs},
        )
        got = _dedup([r.value for r in records])
        assert warning_signature(got) == warning_signature(expected), worker.log_tail()
    finally:
        worker.stop()
        await bus.stop()


async def test_killed_rules_worker_loses_and_duplicates_nothing(
    kafka_bootstrap: str, namespace: str, tmp_path: Path
) -> None:
    """Two workers in one group; SIGKILL one mid-stream; the survivor finishes the job."""
    scenario = RainbandScenario(seed=9, hours=20)
    expected, mem_counts = await memory_run(scenario)
    worker_a = rules_worker(kafka_bootstrap, namespace, tmp_path, "rules-a", PARITY_LATENESS_S)
    worker_b = rules_worker(kafka_bootstrap, namespace, tmp_path, "rules-b", PARITY_LATENESS_S)
    workers: list[ServiceProcess] = [worker_a, worker_b]
    bus = await _bus(kafka_bootstrap, namespace)
    try:
        counts = IngestCounts()
        ticks = list(observations(scenario))
        half = len(ticks) // 2
        lookup = static_lookup(stations(scenario))
        clock = VirtualClock(scenario.start)
        await replay_ticks(bus, ticks[:half], lookup, clock, counts)
        # let both workers join and get going, then crash one of them mid-stream
        first = await read_until_idle(bus, [topics.ASSESSMENTS], "probe", idle_s=3.0, max_wait_s=90)
        assert first, worker_a.log_tail() + worker_b.log_tail()
        worker_a.kill()
        # The rest at 600x real time: the fail-over (session timeout + rebalance + table
        # recovery, ~15-25 s wall) then spans ~3-4 h of event time, inside the lifecycle's
        # 6 h allowed lateness. A replay at unbounded speed would open an event-time gap
        # wider than any lateness bound while the partitions are orphaned.
        clock.speed = 600.0
        await replay_ticks(bus, ticks[half:], lookup, clock, counts)

        # the survivor needs a session timeout plus a rebalance plus table recovery
        want = {m.message_id for m in expected}
        records = await read_until_idle(
            bus,
            [topics.WARNINGS],
            "collector",
            idle_s=60.0,
            max_wait_s=240,
            done=lambda rs: want <= {WarningMessage.model_validate_json(r.value).message_id for r in rs},
        )
        got = _dedup([r.value for r in records])
        assert warning_signature(got) == warning_signature(expected), worker_b.log_tail()

        # no observation lost: every accepted observation was assessed at least once
        assessed = await read_until_idle(bus, [topics.ASSESSMENTS], "audit", idle_s=3.0, max_wait_s=60)
        keys = {(a.source_id, a.assessed_at) for a in (HazardAssessment.model_validate_json(r.value) for r in assessed)}
        assert counts.accepted == mem_counts.accepted == len(keys)
    finally:
        for w in workers:
            w.stop()
        await bus.stop()


async def test_malformed_observation_on_kafka_goes_to_rejected(
    kafka_bootstrap: str, namespace: str, tmp_path: Path
) -> None:
    worker = rules_worker(kafka_bootstrap, namespace, tmp_path, "rules-rej", 600)
    bus = await _bus(kafka_bootstrap, namespace)
    try:
        good = {
            "kind": "rain",
            "station_id": "RAIN-A0001",
            "township_code": "330302006",
            "observed_at": "2019-08-09T12:00:00Z",
            "rain_mm": 1.0,
            "interval_s": 300,
        }
        await bus.publish_many(
            [
                Emit(topics.OBS_RAIN, "RAIN-A0001", b"{broken"),
                Emit(topics.OBS_RAIN, "RAIN-A0001", json.dumps({**good, "rain_mm": -4}).encode()),
                Emit(topics.OBS_RAIN, "RAIN-A0001", json.dumps(good).encode()),
            ]
        )
        rejected = await read_until_idle(bus, [topics.OBS_REJECTED], "rej", idle_s=2.0, max_wait_s=120, expect=2)
        reasons = sorted(RejectedRecord.model_validate_json(r.value).reason for r in rejected)
        assert reasons == ["implausible_value", "malformed_json"], worker.log_tail()
        assessed = await read_until_idle(bus, [topics.ASSESSMENTS], "ok", idle_s=2.0, max_wait_s=60, expect=2)
        found = [HazardAssessment.model_validate_json(r.value) for r in assessed]
        assert {(a.source_id, a.hazard) for a in found} == {
            ("RAIN-A0001", "rainstorm"),
            ("RAIN-A0001", "short_heavy_rain"),
        }
    finally:
        worker.stop()
        await bus.stop()


async def test_ingest_accounting_on_kafka(kafka_bootstrap: str, namespace: str) -> None:
    """Accepted + rejected = received, counted from what is on the broker's topics."""
    from datetime import UTC, datetime

    from services.ingest.gate import IngestGate
    from services.pipeline import publish_observations

    bus = await _bus(kafka_bootstrap, namespace)
    try:
        gate = IngestGate(
            static_lookup({"G1": (("rain",), "330302006"), "W1": (("water_level",), "330302023")}),
            lambda: datetime(2019, 8, 9, 13, tzinfo=UTC),
        )
        good = [
            json.dumps(
                {"kind": "rain", "station_id": "G1", "observed_at": f"2019-08-09T12:{m:02d}:00Z", "rain_mm": 1.0}
            )
            for m in range(20)
        ] + [
            json.dumps(
                {"kind": "water_level", "station_id": "W1", "observed_at": "2019-08-09T12:00:00Z", "level_m": 3.2}
            )
        ]
        bad = [
            "{",
            json.dumps({"kind": "rain", "station_id": "G1", "observed_at": "2019-08-09T12:00:00Z", "rain_mm": 1.0}),
            json.dumps({"kind": "rain", "station_id": "G9", "observed_at": "2019-08-09T12:30:00Z", "rain_mm": 1.0}),
            json.dumps(
                {"kind": "water_level", "station_id": "W1", "observed_at": "2031-01-01T00:00:00Z", "level_m": 1}
            ),
        ]
        counts = IngestCounts()
        await publish_observations(bus, gate, [p.encode() for p in good + bad], "kafka-itest", counts)
        obs = await read_until_idle(
            bus, [topics.OBS_RAIN, topics.OBS_WATER], "acc", idle_s=2.0, max_wait_s=60, expect=len(good)
        )
        rejected = await read_until_idle(bus, [topics.OBS_REJECTED], "rej", idle_s=2.0, max_wait_s=60, expect=len(bad))
        assert counts.received == len(good) + len(bad) == len(obs) + len(rejected)
        assert counts.by_reason == {"malformed_json": 1, "duplicate": 1, "unknown_station": 1, "timestamp_future": 1}
    finally:
        await bus.stop()
