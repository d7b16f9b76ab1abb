"""Storm advisories as a global input on the native Kafka engine (real broker).

    advisories  (2 partitions)  ──► every worker, all partitions, from the beginning
    obs.rain    (4 partitions)  ──► the group: each worker its share
                                     └─► hazard.assessments  typhoon:<township>

1. An advisory is produced before any worker runs; two workers share ``obs.rain``; a
   report on *every* input partition gets a forecast typhoon level: both workers read
   the advisory whatever partitions they own.
2. The workers stop; a new worker starts (a restart: nothing in memory) and the next
   reports are judged with the advisory again: it re-read the topic from the beginning.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from schemas import topics
from schemas.advisory import AdvisoryPoint, StormAdvisory
from schemas.assessment import HazardAssessment
from schemas.observations import RainObservation
from services.common.bus.base import Emit, partition_for
from services.common.bus.kafka import KafkaBus
from services.common.bus.kafka_processor import KafkaProcessorRunner
from services.common.metrics import Metrics
from services.rules.processors import RainstormProcessor
from tests.helpers import read_until_idle

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

T0 = datetime(2019, 8, 9, 12, 0, tzinfo=UTC)
PARTITIONS = 4
LON, LAT = 120.65, 28.0


def stations_on_every_partition() -> dict[str, str]:
    """Station id → township code, one station per partition of ``obs.rain``."""
    out: dict[int, str] = {}
    i = 0
    while len(out) < PARTITIONS:
        out.setdefault(partition_for(f"RAIN-A{i:04d}", PARTITIONS), f"RAIN-A{i:04d}")
        i += 1
    return {sid: f"3303{p:05d}" for p, sid in out.items()}


STATIONS = stations_on_every_partition()


def advisory() -> StormAdvisory:
    """Lekima 30 km from the stations from T0+3 h (vmax 40 m/s): red within 6 h."""
    near = LAT + 30.0 / 111.195
    points = (
        AdvisoryPoint(at=T0 - timedelta(hours=1), lon=LON + 8.0, lat=LAT, vmax_ms=40.0),
        AdvisoryPoint(at=T0 + timedelta(hours=2.5), lon=LON + 8.0, lat=LAT, vmax_ms=40.0),
        AdvisoryPoint(at=T0 + timedelta(hours=3), lon=LON, lat=near, vmax_ms=40.0),
        AdvisoryPoint(at=T0 + timedelta(hours=40), lon=LON, lat=near, vmax_ms=40.0),
    )
    return StormAdvisory(storm_id="1909-LEKIMA", name="Lekima", issued_at=T0 - timedelta(hours=1), points=points)


def reports(minute: int) -> list[Emit]:
    out = []
    for sid, town in STATIONS.items():
        obs = RainObservation(
            station_id=sid,
            township_code=town,
            observed_at=T0 + timedelta(minutes=minute),
            rain_mm=0.2,
            wind_mean_ms=5.0,
            wind_gust_ms=8.0,
        )
        out.append(Emit(topics.OBS_RAIN, sid, obs.model_dump_json().encode()))
    return out


def processor() -> RainstormProcessor:
    return RainstormProcessor(metrics=Metrics(), station_positions=dict.fromkeys(STATIONS, (LON, LAT)))


async def typhoon_assessments(bus: KafkaBus, group: str, expect: int) -> dict[str, HazardAssessment]:
    records = await read_until_idle(
        bus,
        [topics.ASSESSMENTS],
        group,
        idle_s=3.0,
        max_wait_s=60.0,
        done=lambda rs: sum(r.key is not None and r.key.startswith("typhoon:") for r in rs) >= expect,
    )
    found = [HazardAssessment.model_validate_json(r.value) for r in records if (r.key or "").startswith("typhoon:")]
    return {f"{a.source_id}@{a.assessed_at:%H%M}": a for a in found}


async def test_every_worker_reads_the_advisories_and_rereads_them_after_a_restart(
    kafka_bootstrap: str, namespace: str
) -> None:
    bus = KafkaBus(kafka_bootstrap, namespace=namespace)
    await bus.start()
    try:
        await bus.ensure_topics([topics.OBS_RAIN, topics.ASSESSMENTS, topics.OBS_REJECTED], PARTITIONS)
        await bus.ensure_topics([topics.ADVISORIES], 2)
        lekima = advisory()
        await bus.publish_many([Emit(topics.ADVISORIES, lekima.storm_id, lekima.model_dump_json().encode())])

        # 1. two workers share obs.rain; each must know the advisory
        stop = asyncio.Event()
        workers = [KafkaProcessorRunner(kafka_bootstrap, processor(), PARTITIONS, namespace) for _ in range(2)]
        tasks = [asyncio.create_task(w.run(stop)) for w in workers]
        await asyncio.sleep(8.0)  # both joined: the group has settled on two members
        await bus.publish_many(reports(0))
        first = await typhoon_assessments(bus, "check-1", len(STATIONS))
        stop.set()
        await asyncio.gather(*tasks)
        assert sorted(a.source_id for a in first.values()) == sorted(STATIONS)
        assert {a.level for a in first.values()} == {"red"}
        assert {a.certainty for a in first.values()} == {"Likely"}
        assert {a.onset_at for a in first.values()} == {T0 + timedelta(hours=3)}
        assert all(w.processed > 0 for w in workers), "each worker owned some partitions"
        assert all(len(w.processor.advisories) == 1 for w in workers if isinstance(w.processor, RainstormProcessor))

        # 2. a restarted worker: fresh memory, the advisory comes back from the topic
        stop = asyncio.Event()
        restarted = KafkaProcessorRunner(kafka_bootstrap, processor(), PARTITIONS, namespace)
        task = asyncio.create_task(restarted.run(stop))
        await bus.publish_many(reports(1))
        both = await typhoon_assessments(bus, "check-2", 2 * len(STATIONS))
        stop.set()
        await task
        second = {k: a for k, a in both.items() if a.assessed_at == T0 + timedelta(minutes=1)}
        assert sorted(a.source_id for a in second.values()) == sorted(STATIONS)
        assert {a.level for a in second.values()} == {"red"}
    finally:
        await bus.stop()
