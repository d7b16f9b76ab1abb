"""Rules throughput: observations evaluated per second, and the Kafka engine vs raw aiokafka.

Run: ``python -m loadtests.bench_rules [--records N]`` (uses ``KAFKA_BOOTSTRAP_SERVERS`` or
starts the local broker; ``--no-kafka`` skips the Kafka part, ``--kafka-only`` runs only it:
``--kafka-only --records 600000`` gives every gauge 13 h, so its 12-h window and changelog
entry are full size, the steady state). ``--all-detectors`` runs mode 4 instead
(``--scenario``, ``--hours``; no Kafka).

1. Pure processing: rain observations from 753 gauges through the rainstorm detector and the
   lifecycle processor, no bus (per core, single thread).
2. Memory runtime: the same through ``MemoryPipeline`` (bus, consumer groups, commits).
3. Kafka: the native engine running the rainstorm processor (consume obs.rain → state +
   changelog → produce assessments → commit) against a raw aiokafka consume→produce loop
   doing the same number of records with no processing, on the same broker. The figure is
   the ratio (target ≥ 0.5).
4. All detectors on simulator traffic: a shipped scenario (full registry) through the ingest
   gate, then every rules processor configured from the registry (rain, radar nowcast,
   geo-hazard points, water gauges, lifecycle). Pure processing per processor (1 core, no
   bus: observations per second of processor time, radar scan ms median / p95 / max) and
   the memory runtime end to end.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from loadtests.bench_bus import ensure_broker
from loadtests.machine import banner
from schemas import topics
from schemas.observations import RainObservation
from services.common.bus.base import Emit, Record
from services.common.bus.kafka import KafkaBus
from services.common.bus.kafka_processor import KafkaProcessorRunner
from services.common.bus.processor import DictState, Processor
from services.common.metrics import Metrics
from services.pipeline import IngestCounts, MemoryPipeline, publish_observations
from services.rules.processors import LifecycleProcessor, RainstormProcessor, rules_processors

GAUGES = 753
T0 = datetime(2019, 8, 9, 12, 0, tzinfo=UTC)


def payloads(count: int) -> list[tuple[str, bytes]]:
    out = []
    for i in range(count):
        gauge = i % GAUGES
        minute = i // GAUGES
        obs = RainObservation(
            station_id=f"RAIN-A{gauge:04d}",
            township_code=f"3303{gauge % 186:05d}",
            observed_at=T0 + timedelta(minutes=minute),
            rain_mm=round(0.2 + (gauge % 7) * 0.3, 1),
            interval_s=60,
        )
        out.append((obs.station_id, obs.model_dump_json().encode()))
    return out


def pure(records: list[tuple[str, bytes]]) -> float:
    metrics = Metrics()
    rain, life = RainstormProcessor(metrics=metrics), LifecycleProcessor(metrics=metrics)
    rain_state, life_state = DictState(), DictState()
    start = time.perf_counter()
    for offset, (key, value) in enumerate(records):
        for emit in rain.process(Record(topics.OBS_RAIN, 0, offset, key, value, 0), rain_state):
            life.process(Record(topics.ASSESSMENTS, 0, offset, emit.key, emit.value, 0), life_state)
    return len(records) / (time.perf_counter() - start)


async def memory(records: list[tuple[str, bytes]]) -> float:
    pipeline = MemoryPipeline(rules_processors(Metrics()))
    await pipeline.start(lambda _m: None)
    start = time.perf_counter()
    for i in range(0, len(records), 1000):
        await pipeline.bus.publish_many([Emit(topics.OBS_RAIN, k, v) for k, v in records[i : i + 1000]])
    await pipeline.drain()
    elapsed = time.perf_counter() - start
    await pipeline.close()
    return len(records) / elapsed


async def preload(bootstrap: str, namespace: str, records: list[tuple[str, bytes]]) -> None:
    bus = KafkaBus(bootstrap, namespace=namespace)
    await bus.start()
    await bus.ensure_topics([topics.OBS_RAIN, topics.ASSESSMENTS, topics.OBS_REJECTED], 4)
    for i in range(0, len(records), 1000):
        await bus.publish_many([Emit(topics.OBS_RAIN, k, v) for k, v in records[i : i + 1000]])
    await bus.stop()


async def native_engine(bootstrap: str, records: list[tuple[str, bytes]]) -> float:
    namespace = f"benchr{uuid.uuid4().hex[:6]}."
    await preload(bootstrap, namespace, records)
    runner = KafkaProcessorRunner(bootstrap, RainstormProcessor(metrics=Metrics()), 4, namespace)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    while runner.processed == 0:  # noqa: ASYNC110  # polling a counter the runner owns
        await asyncio.sleep(0.01)
    start = time.perf_counter()
    while runner.processed < len(records):  # noqa: ASYNC110  # polling a counter the runner owns
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - start
    stop.set()
    await task
    return (len(records) - 0) / elapsed


async def raw_consume_produce(bootstrap: str, records: list[tuple[str, bytes]]) -> float:
    namespace = f"benchraw{uuid.uuid4().hex[:6]}."
    await preload(bootstrap, namespace, records)
    consumer = AIOKafkaConsumer(
        f"{namespace}{topics.OBS_RAIN}",
        bootstrap_servers=bootstrap,
        group_id=f"{namespace}raw",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=1000,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=2)
    await consumer.start()
    await producer.start()
    done = 0
    start: float | None = None
    while done < len(records):
        batches = await consumer.getmany(timeout_ms=100, max_records=1000)
        if not batches:
            continue
        if start is None:
            start = time.perf_counter()
        futures = []
        for tp, messages in batches.items():
            for m in messages:
                futures.append(await producer.send(f"{namespace}{topics.ASSESSMENTS}", m.value, key=m.key))
            done += len(messages)
            del tp
        await asyncio.gather(*futures)
        await consumer.commit()
    assert start is not None
    elapsed = time.perf_counter() - start
    await consumer.stop()
    await producer.stop()
    return len(records) / elapsed


async def main(count: int, bootstrap: str | None, kafka_only: bool = False) -> None:
    print(banner("rules throughput"))
    records = payloads(count)
    print(f"observations: {count} from {GAUGES} gauges (1-min reports)")
    if not kafka_only:
        print(f"pure rainstorm+lifecycle processing: {pure(records):,.0f} obs/s (1 core)")
        print(f"memory runtime pipeline:             {await memory(records):,.0f} obs/s")
    if bootstrap is None:
        return
    raw = await raw_consume_produce(bootstrap, records)
    ours = await native_engine(bootstrap, records)
    print(f"kafka raw aiokafka consume->produce: {raw:,.0f} rec/s")
    print(f"kafka native engine (rainstorm):     {ours:,.0f} obs/s")
    print(f"ratio engine/raw: {ours / raw:.2f} (target >= 0.5)")


# ── 4. all detectors on simulator traffic ─────────────────────────────────────────────────


async def simulator_records(scenario_name: str, hours: float) -> list[Record]:
    """The scenario's observations as ingest publishes them (accepted ones, in order)."""
    from services.common.bus.memory import MemoryBus
    from services.common.geo.registry import default_registry
    from services.ingest.feeds.registry_lookup import registry_lookup
    from services.ingest.gate import IngestGate
    from services.ingest.simulate.scenario import find_scenario, load_scenario
    from services.ingest.simulate.truth import GroundTruth
    from services.ingest.simulate.world import iter_world

    registry = default_registry()
    scenario = load_scenario(find_scenario(scenario_name))
    scenario = scenario.model_copy(update={"end": min(scenario.end, scenario.start + timedelta(hours=hours))})
    now = [scenario.start]
    gate = IngestGate(registry_lookup(registry), lambda: now[0])
    bus = MemoryBus(default_partitions=1)
    obs_topics = [topics.OBS_RAIN, topics.OBS_RADAR, topics.OBS_GEOHAZARD, topics.OBS_WATER]
    await bus.ensure_topics([*obs_topics, topics.OBS_REJECTED], 1)
    counts = IngestCounts()
    for tick in iter_world(scenario, registry, GroundTruth()):
        now[0] = tick.at
        await publish_observations(bus, gate, [*tick.observations, *tick.raw], "sim", counts)
    subscription = await bus.subscribe(obs_topics, group="bench")
    records: list[Record] = []
    while batch := await subscription.getmany(timeout_s=0.01, max_records=100_000):
        records.extend(batch)
    await subscription.close()
    await bus.stop()
    return sorted(records, key=lambda r: r.timestamp_ms)


@dataclass
class AllDetectors:
    wall_s: float
    busy_s: dict[str, float]
    handled: dict[str, int]
    scan_ms: list[float]
    scan_ms_by_band: dict[str, list[float]]


def _all_processors(radar_heartbeat_s: int | None) -> list[Processor]:
    """The registry-configured processors; ``radar_heartbeat_s`` overrides the radar's (0: every assessment)."""
    from services.common.geo.registry import default_registry
    from services.rules.hazard_processors import RadarProcessor

    processors = rules_processors(Metrics(), registry=default_registry())
    if radar_heartbeat_s is not None:
        for p in processors:
            if isinstance(p, RadarProcessor):
                p.heartbeat_s = radar_heartbeat_s
    return processors


def pure_all(records: list[Record], radar_heartbeat_s: int | None = None) -> AllDetectors:
    """Every processor on one core, no bus: assessments go straight to the lifecycle."""
    processors = _all_processors(radar_heartbeat_s)
    lifecycle = processors[-1]
    by_topic = {topic: p for p in processors[:-1] for topic in p.topics}
    states: dict[str, DictState] = {p.name: DictState() for p in processors}
    busy: dict[str, float] = defaultdict(float)
    handled: Counter[str] = Counter()
    scan_ms: list[float] = []
    by_band: dict[str, list[float]] = defaultdict(list)
    clock = time.perf_counter
    start = clock()
    for offset, record in enumerate(records):
        processor: Processor = by_topic[record.topic]
        began = clock()
        emits = processor.process(record, states[processor.name])
        took = clock() - began
        busy[processor.name] += took
        handled[processor.name] += 1
        if record.topic == topics.OBS_RADAR:
            scan_ms.append(took * 1000)
            by_band["S" if (record.key or "").startswith("RADAR-S-") else "X"].append(took * 1000)
        began = clock()
        for emit in emits:
            if emit.topic == topics.ASSESSMENTS:
                lifecycle.process(Record(emit.topic, 0, offset, emit.key, emit.value, 0), states[lifecycle.name])
                handled[lifecycle.name] += 1
        busy[lifecycle.name] += clock() - began
    wall = clock() - start
    return AllDetectors(wall, dict(busy), dict(handled), scan_ms, dict(by_band))


async def memory_all(records: list[Record], radar_heartbeat_s: int | None = None) -> float:
    pipeline = MemoryPipeline(_all_processors(radar_heartbeat_s))
    await pipeline.start(lambda _m: None)
    start = time.perf_counter()
    for i in range(0, len(records), 2000):
        await pipeline.bus.publish_many([Emit(r.topic, r.key, r.value) for r in records[i : i + 2000]])
        await pipeline.drain()
    elapsed = time.perf_counter() - start
    await pipeline.close()
    return len(records) / elapsed


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def all_detectors(scenario_name: str, hours: float, radar_heartbeat_s: int | None = None) -> None:
    print(banner("rules throughput, all detectors, simulator traffic"))
    if radar_heartbeat_s is not None:
        print(f"radar heartbeat: {radar_heartbeat_s} s (0: every assessment published)")
    began = time.perf_counter()
    records = await simulator_records(scenario_name, hours)
    kinds = Counter(r.topic for r in records)
    print(f"scenario {scenario_name}, first {hours:g} h: {len(records)} accepted observations {dict(kinds)}")
    print(f"(simulated and admitted in {time.perf_counter() - began:.1f} s)")
    result = pure_all(records, radar_heartbeat_s)
    busy, handled, scan_ms, wall = result.busy_s, result.handled, result.scan_ms, result.wall_s
    print(f"pure, all processors + lifecycle:    {len(records) / wall:,.0f} obs/s (1 core, {wall:.1f} s)")
    for name in sorted(busy):
        rate = handled[name] / busy[name] if busy[name] else float("inf")
        unit = "assessments" if name == "rules-lifecycle" else "obs"
        print(f"  {name:16s} {handled[name]:>9,} {unit:11s} {busy[name]:6.2f} s busy  {rate:>10,.0f} {unit}/s")
    for label, values in (("all", scan_ms), *sorted(result.scan_ms_by_band.items())):
        if values:
            print(
                f"radar scan processing ({label:3s}): median {statistics.median(values):.1f} ms, "
                f"p95 {_percentile(values, 0.95):.1f} ms, max {max(values):.1f} ms over {len(values)} scans"
            )
    print(f"memory runtime, all processors:      {await memory_all(records, radar_heartbeat_s):,.0f} obs/s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=60_000)
    parser.add_argument("--no-kafka", action="store_true")
    parser.add_argument(
        "--kafka-only", action="store_true", help="mode 3 only (e.g. --records 600000: 13 h per gauge, windows full)"
    )
    parser.add_argument("--all-detectors", action="store_true", help="mode 4: simulator traffic, all detectors")
    parser.add_argument("--scenario", default="lekima-2019")
    parser.add_argument("--hours", type=float, default=2.0)
    parser.add_argument(
        "--radar-heartbeat-s", type=int, default=None, help="mode 4: radar heartbeat (0: publish every assessment)"
    )
    args = parser.parse_args()
    if args.all_detectors:
        asyncio.run(all_detectors(args.scenario, args.hours, args.radar_heartbeat_s))
    elif args.no_kafka:
        asyncio.run(main(args.records, None))
    else:
        broker, started = ensure_broker()
        try:
            asyncio.run(main(args.records, broker, args.kafka_only))
        finally:
            if started:
                import subprocess

                from loadtests.bench_bus import REPO

                subprocess.run(["bash", str(REPO / "deploy" / "kafka" / "kafka.sh"), "stop"], check=False)
