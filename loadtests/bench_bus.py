"""Bus throughput: memory runtime, and our Kafka bus against raw aiokafka on the same broker.

Run: ``make bench`` (or ``python -m loadtests.bench_bus --records 100000``). The Kafka part
uses ``KAFKA_BOOTSTRAP_SERVERS``, or starts the local broker from ``deploy/kafka`` if none is
given (``--no-kafka`` skips it). Each Kafka measurement is produce-then-consume of the same
records with the same batch sizes; the figure to read is the ratio (ours / raw), since
absolute numbers on a shared 2-core machine are noisy. Runs alternate (raw, ours, raw, ours)
to spread drift over both.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import time
import uuid
from pathlib import Path
from statistics import median

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from loadtests.machine import banner
from services.common.bus.base import Emit
from services.common.bus.kafka import KafkaBus
from services.common.bus.memory import MemoryBus

PAYLOAD = (
    b'{"kind":"rain","station_id":"RAIN-A0001","observed_at":"2019-08-09T12:00:00Z",'
    b'"rain_mm":2.5,"interval_s":60,"township_code":"330302006"}'
)
REPO = Path(__file__).resolve().parents[1]


async def memory_throughput(records: int, batch: int) -> float:
    bus = MemoryBus(default_partitions=8, retention_records=records + 1)
    sub = await bus.subscribe(["bench"], group="g")
    start = time.perf_counter()
    consumed = 0
    for offset in range(0, records, batch):
        await bus.publish_many(
            [Emit("bench", f"RAIN-A{(offset + i) % 753:04d}", PAYLOAD) for i in range(min(batch, records - offset))]
        )
        consumed += len(await sub.getmany(timeout_s=0.0, max_records=records))
    while consumed < records:
        consumed += len(await sub.getmany(timeout_s=0.1, max_records=records))
    await sub.commit()
    return records / (time.perf_counter() - start)


async def ours_kafka(bootstrap: str, records: int, batch: int) -> float:
    namespace = f"bench{uuid.uuid4().hex[:8]}."
    bus = KafkaBus(bootstrap, namespace=namespace)
    await bus.start()
    await bus.ensure_topics(["bench"], 8)
    sub = await bus.subscribe(["bench"], group="g")
    start = time.perf_counter()
    for offset in range(0, records, batch):
        await bus.publish_many(
            [Emit("bench", f"RAIN-A{(offset + i) % 753:04d}", PAYLOAD) for i in range(min(batch, records - offset))]
        )
    consumed = 0
    while consumed < records:
        consumed += len(await sub.getmany(timeout_s=1.0, max_records=5000))
    await sub.commit()
    elapsed = time.perf_counter() - start
    await sub.close()
    await bus.stop()
    return records / elapsed


async def raw_kafka(bootstrap: str, records: int, batch: int) -> float:
    topic = f"benchraw{uuid.uuid4().hex[:8]}.bench"
    ours = KafkaBus(bootstrap)  # only to create the topic with the same partition count
    await ours.ensure_topics([topic], 8)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5, max_batch_size=256 * 1024
    )
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"g{uuid.uuid4().hex[:6]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=2000,
    )
    await producer.start()
    await consumer.start()
    start = time.perf_counter()
    for offset in range(0, records, batch):
        futures = [
            await producer.send(topic, PAYLOAD, key=f"RAIN-A{(offset + i) % 753:04d}".encode())
            for i in range(min(batch, records - offset))
        ]
        await asyncio.gather(*futures)
    consumed = 0
    while consumed < records:
        got = await consumer.getmany(timeout_ms=1000, max_records=5000)
        consumed += sum(len(v) for v in got.values())
    await consumer.commit()
    elapsed = time.perf_counter() - start
    await consumer.stop()
    await producer.stop()
    return records / elapsed


def ensure_broker() -> tuple[str, bool]:
    env = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if env:
        return env, False
    script = REPO / "deploy" / "kafka" / "kafka.sh"
    subprocess.run(["bash", str(script), "start"], check=True)
    out = subprocess.run(["bash", str(script), "bootstrap"], check=True, capture_output=True, text=True)
    return out.stdout.strip(), True


def fmt_runs(values: list[float]) -> str:
    return f"median {median(values):,.0f} rec/s  (runs: {', '.join(f'{v:,.0f}' for v in values)})"


async def main(records: int, batch: int, rounds: int, bootstrap: str | None) -> None:
    print(banner("bus throughput"))
    print(f"records per run: {records}, publish batch: {batch}, payload: {len(PAYLOAD)} bytes, rounds: {rounds}")
    mem = [await memory_throughput(records, batch) for _ in range(rounds)]
    print(f"memory bus produce+consume:           {fmt_runs(mem)}")
    if bootstrap is None:
        return
    raw: list[float] = []
    ours: list[float] = []
    await raw_kafka(bootstrap, min(records, 5000), batch)  # warm-up: connections, JIT in the broker
    for _ in range(rounds):
        raw.append(await raw_kafka(bootstrap, records, batch))
        ours.append(await ours_kafka(bootstrap, records, batch))
    print(f"kafka raw aiokafka produce->consume:  {fmt_runs(raw)}")
    print(f"kafka earlywarn bus produce->consume: {fmt_runs(ours)}")
    print(f"ratio ours/raw: {median(ours) / median(raw):.2f}  (broker {bootstrap})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-kafka", action="store_true")
    args = parser.parse_args()
    if args.no_kafka:
        asyncio.run(main(args.records, args.batch, args.rounds, None))
    else:
        broker, started = ensure_broker()
        try:
            asyncio.run(main(args.records, args.batch, args.rounds, broker))
        finally:
            if started:
                subprocess.run(["bash", str(REPO / "deploy" / "kafka" / "kafka.sh"), "stop"], check=False)
