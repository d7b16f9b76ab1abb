"""A shipped scenario's world on a real broker: the Kafka rules worker (registry-configured,
every detector) gives the warnings of the memory runtime's lockstep replay, and every
admitted observation is accounted for from the broker's own topics."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas import topics
from schemas.rejected import RejectedRecord
from schemas.warning import WarningMessage
from services.common.bus.kafka import KafkaBus
from services.common.clock import VirtualClock
from services.common.geo.registry import default_registry
from services.common.metrics import Metrics
from services.ingest.feeds.registry_lookup import registry_lookup
from services.ingest.simulate.scenario import find_scenario, load_scenario
from services.ingest.simulate.truth import GroundTruth
from services.pipeline import IngestCounts
from services.replay import replay_ticks, world_batches
from services.scenario_run import ScenarioRun, scenario_processors, trim
from tests.helpers import read_until_idle, warning_signature
from tests.kafka.workers import rules_worker

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


async def test_world_on_kafka_matches_the_memory_replay(kafka_bootstrap: str, namespace: str, tmp_path: Path) -> None:
    registry = default_registry()
    sc = trim(load_scenario(find_scenario("convective-afternoon", None)), 3.5)
    sc = sc.model_copy(update={"stations": sc.stations.model_copy(update={"sample_fraction": 0.3})})
    memory = await ScenarioRun(sc, registry, scenario_processors(registry, Metrics())).run()
    assert memory.messages, "the scenario must produce warnings to compare"

    worker = rules_worker(kafka_bootstrap, namespace, tmp_path, "rules-w", 600, network="registry")
    bus = KafkaBus(kafka_bootstrap, namespace=namespace)
    await bus.start()
    try:
        await bus.ensure_topics(topics.ALL_TOPICS, 4)
        counts = IngestCounts()
        ticks = world_batches(sc, registry, GroundTruth())
        # paced at 600x: event-time skew between partitions stays far inside the 600-s lateness
        await replay_ticks(
            bus, ticks, registry_lookup(registry), VirtualClock(sc.start, speed=600.0), counts, source="simulator"
        )
        assert counts.received == memory.counts.received
        assert counts.accepted == memory.counts.accepted
        assert counts.by_reason == memory.counts.by_reason

        want = {m.message_id for m in memory.messages}
        records = await read_until_idle(
            bus,
            [topics.WARNINGS],
            "collector",
            # `done` ends it as soon as every expected warning is in; the idle bound only
            # decides a failure, and a starved worker can be quiet for a while
            idle_s=90.0,
            max_wait_s=420,
            done=lambda rs: want <= {WarningMessage.model_validate_json(r.value).message_id for r in rs},
        )
        got: dict[str, WarningMessage] = {}
        for record in records:
            msg = WarningMessage.model_validate_json(record.value)
            assert got.setdefault(msg.message_id, msg) == msg, f"{msg.message_id} carried two contents"
        assert warning_signature(list(got.values())) == warning_signature(memory.messages), worker.log_tail()

        # accounting from the broker: every admitted observation is on its topic, every refusal kept
        observed = await read_until_idle(
            bus, list(topics.OBS_TOPIC_BY_KIND.values()), "audit-obs", idle_s=3.0, max_wait_s=120,
            expect=counts.accepted,
        )  # fmt: skip
        rejected = await read_until_idle(bus, [topics.OBS_REJECTED], "audit-rej", idle_s=3.0, max_wait_s=60)
        gate_rejections = [
            r for r in (RejectedRecord.model_validate_json(x.value) for x in rejected) if r.source == "simulator"
        ]
        assert len(observed) == counts.accepted
        assert len(gate_rejections) == counts.rejected
    finally:
        worker.stop()
        await bus.stop()
