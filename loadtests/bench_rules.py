"""Rules throughput: observations evaluated per second, and the Kafka engine vs raw aiokafka.

Run: ``python -m loadtests.bench_rules [--records N]`` (uses ``KAFKA_BOOTSTRAP_SERVERS`` or
starts the local broker; ``--no-kafka`` skips the Kafka part).

1. Pure processing: rain observations from 753 gauges through the rainstorm detector and the
   lifecycle processor, no bus (per core, single thread).
2. Memory runtime: the same through ``MemoryPipeline`` (bus, consumer groups, commits).
3. Kafka: the native engine running the rainstorm processor (consume obs.rain → state +
   changelog → produce assessments → commit) against a raw aiokafka consume→produce loop
   doing the same number of records with no processing, on the same broker. The figure is
   the ratio (target ≥ 0.5).
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from loadtests.bench_bus import ensure_broker
from loadtests.machine import banner
from schemas import topics
from schemas.observations import RainObservation
from services.common.bus.base import Emit, Record
from services.common.bus.kafka import KafkaBus
from services.common.bus.kafka_processor import KafkaProcessorRunner
from services.common.bus.processor import DictState
from services.common.metrics import Metrics
from services.pipeline import MemoryPipeline
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


async def main(count: int, bootstrap: str | None) -> None:
    print(banner("rules throughput"))
    records = payloads(count)
    print(f"observations: {count} from {GAUGES} gauges (1-min reports)")
    print(f"pure rainstorm+lifecycle processing: {pure(records):,.0f} obs/s (1 core)")
    print(f"memory runtime pipeline:             {await memory(records):,.0f} obs/s")
    if bootstrap is None:
        return
    raw = await raw_consume_produce(bootstrap, records)
    ours = await native_engine(bootstrap, records)
    print(f"kafka raw aiokafka consume->produce: {raw:,.0f} rec/s")
    print(f"kafka native engine (rainstorm):     {ours:,.0f} obs/s")
    print(f"ratio engine/raw: {ours / raw:.2f} (target >= 0.5)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=60_000)
    parser.add_argument("--no-kafka", action="store_true")
    args = parser.parse_args()
    if args.no_kafka:
        asyncio.run(main(args.records, None))
    else:
        broker, started = ensure_broker()
        try:
            asyncio.run(main(args.records, broker))
        finally:
            if started:
                import subprocess

                from loadtests.bench_bus import REPO

                subprocess.run(["bash", str(REPO / "deploy" / "kafka" / "kafka.sh"), "stop"], check=False)
