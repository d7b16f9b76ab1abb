"""Dispatch on a real broker: SIGKILL the worker that is fanning a warning out.

Two dispatch worker processes share the ``dispatch.work`` partitions; the gateway
simulators and a stand-alone callback ingress (the load balancer in front of the workers'
callback endpoints) run in this process. A red warning over 30 townships (~3,000 targets on
three channels, gateways with latency) is published; once the owner of its partition has
handed part of it to the gateways it is SIGKILLed. The survivor restores the warning's
ledger from the compacted ledger topic and finishes. From the ``deliveries`` and
``receipts`` topics: every target got a job, every target ends delivered or failed, and
exactly one final outcome per target; duplicate sends reaching a gateway are counted and
must not exceed what the survivor reports as re-sent after its restore.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from schemas import topics
from schemas.delivery import DeliveryJob, DeliveryReceipt
from schemas.warning import WarningMessage
from services.common.bus.base import partition_for
from services.common.bus.kafka import KafkaBus
from services.dispatch.gateways import (
    BroadcastGatewayConfig,
    PushGatewayConfig,
    SmsGatewayConfig,
    create_broadcast_gateway,
    create_push_gateway,
    create_sms_gateway,
    run_gateway,
)
from services.dispatch.ledger import progress
from services.dispatch.orchestrator import ChannelPlan, DispatchSettings
from services.dispatch.service import callback_ingress_app, synthetic_towns
from services.dispatch.targeting import AudienceData, OfficialsShape, Targeting
from tests.unit.dispatch.factories import chain

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Worker:
    def __init__(self, name: str, args: list[str], workdir: Path, port: int) -> None:
        self.name = name
        self.port = port
        self.log_path = workdir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "services.dispatch.service", *args, "--callback-port", str(port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    async def status(self) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=2.0) as client:
            response = await client.get(f"http://127.0.0.1:{self.port}/status")
            body: dict[str, Any] = response.json()
            return body

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()

    def tail(self, n: int = 30) -> str:
        lines = self.log_path.read_text(errors="replace").splitlines()
        return f"--- {self.name}\n" + "\n".join(lines[-n:])


async def _wait_for(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if await predicate():
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


async def test_sigkill_during_fan_out_serves_every_target_exactly_once(
    kafka_bootstrap: str, namespace: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    towns = synthetic_towns()
    codes = tuple(sorted(towns)[:30])
    audience = AudienceData(
        app_subscribers=dict.fromkeys(codes, 60),
        people_per_terminal_min=800,
        people_per_terminal_max=2000,
        officials=OfficialsShape(
            city_officials=10,
            per_county=10,
            per_township=5,
            villages_per_township_min=2,
            villages_per_township_max=4,
            per_village=5,
        ),
    )
    gateways = {
        "sms": run_gateway(create_sms_gateway(SmsGatewayConfig(latency_ms=60, receipt_delay_ms=100, seed=1))),
        "push": run_gateway(create_push_gateway(PushGatewayConfig(latency_ms=250, receipt_delay_ms=100, seed=2))),
        "ebm": run_gateway(create_broadcast_gateway(BroadcastGatewayConfig(latency_ms=250, seed=3))),
    }
    settings = DispatchSettings(
        audience=audience,
        channels={
            "sms": ChannelPlan(
                providers=(
                    {"provider": "sms", "base_url": gateways["sms"][0], "tps": 150, "burst": 25, "batch_size": 25},
                ),
                batch_size=50,
                max_inflight=2,
            ),
            "app": ChannelPlan(
                providers=(
                    {"provider": "push", "base_url": gateways["push"][0], "tokens_per_request": 50, "concurrency": 1},
                ),
                batch_size=50,
                max_inflight=1,
            ),
            "broadcast": ChannelPlan(
                providers=(
                    {"provider": "ebm", "base_url": gateways["ebm"][0], "terminals_per_request": 20, "concurrency": 1},
                ),
                batch_size=20,
                max_inflight=1,
            ),
        },
        slice_targets=100,
        flush_interval_s=0.1,
    )
    ingress_url, stop_ingress = run_gateway(callback_ingress_app(kafka_bootstrap, namespace, settings, PARTITIONS))
    settings = settings.model_copy(
        update={"callback": settings.callback.model_copy(update={"public_url": ingress_url})}
    )
    (tmp_path / "dispatch.json").write_text(settings.model_dump_json())
    (tmp_path / "towns.json").write_text(json.dumps([_town(t) for t in towns.values()]))
    args = [
        "--broker",
        f"kafka://{kafka_bootstrap}",
        "--namespace",
        namespace,
        "--partitions",
        str(PARTITIONS),
        "--config",
        str(tmp_path / "dispatch.json"),
        "--towns",
        str(tmp_path / "towns.json"),
    ]
    workers = [Worker(f"dispatch-{i}", args, tmp_path, _free_port()) for i in range(2)]
    bus = KafkaBus(kafka_bootstrap, namespace=namespace)
    await bus.start()
    await bus.ensure_topics([topics.WARNINGS, topics.DELIVERIES, topics.RECEIPTS], PARTITIONS)
    try:

        async def both_assigned() -> bool:
            a, b = [set((await w.status())["assigned"]) for w in workers]
            return bool(a) and bool(b) and not a & b and a | b == set(range(PARTITIONS))

        await _wait_for(both_assigned, 60, "both workers to own partitions")

        now = datetime.now(UTC)
        msg = chain(1, towns=codes)[0]
        msg = msg.model_copy(update={"sent_at": now, "onset_at": now, "expires_at": now + timedelta(hours=6)})
        WarningMessage.model_validate(msg.model_dump())
        targeting = Targeting(towns, audience)
        expected = {
            (channel, target_id)
            for channel in ("sms", "app", "broadcast")
            for audience_name in targeting.routes[channel]
            for target_id, _, _ in targeting.audience_targets(audience_name, codes)
        }
        assert 2_500 < len(expected) < 5_000

        partition = partition_for(msg.warning_id, PARTITIONS)
        statuses = [await w.status() for w in workers]
        owner_index = next(i for i, s in enumerate(statuses) if partition in s["assigned"])
        owner, survivor = workers[owner_index], workers[1 - owner_index]
        await bus.publish(topics.WARNINGS, msg.key, msg.model_dump_json().encode())

        async def mid_fan_out() -> bool:
            stats = (await owner.status())["stats"]
            return bool(stats["handoffs"] >= len(expected) // 5)

        await _wait_for(mid_fan_out, 30, "the owner to be mid fan-out")
        before = (await owner.status())["stats"]
        owner.kill()
        assert before["handoffs"] < len(expected), "killed too late: the fan-out was already complete"

        jobs: dict[tuple[str, str], DeliveryJob] = {}
        receipts: list[DeliveryReceipt] = []

        async def collect(bus_topic: str, group: str) -> None:
            sub = await bus.subscribe([bus_topic], group=group)
            try:
                while True:
                    for record in await sub.getmany(timeout_s=0.5, max_records=5000):
                        if bus_topic == topics.DELIVERIES:
                            job = DeliveryJob.model_validate_json(record.value)
                            jobs[(job.channel, job.target_id)] = job
                        else:
                            receipts.append(DeliveryReceipt.model_validate_json(record.value))
            finally:
                await sub.close()

        collectors = [
            asyncio.create_task(collect(topics.DELIVERIES, "check-deliveries")),
            asyncio.create_task(collect(topics.RECEIPTS, "check-receipts")),
        ]

        def finals() -> dict[tuple[str, str], DeliveryReceipt]:
            best: dict[tuple[str, str], DeliveryReceipt] = {}
            for r in receipts:
                key = (r.channel, r.target_id)
                if key not in best or progress(r.state, r.attempt) > progress(best[key].state, best[key].attempt):
                    best[key] = r
            return best

        async def all_final() -> bool:
            done = finals()
            return len(done) >= len(expected) and all(r.state in ("delivered", "failed") for r in done.values())

        await _wait_for(all_final, 75 - (time.monotonic() - started), "every target to reach a final state")
        await asyncio.sleep(1.0)  # let late duplicates land too
        for task in collectors:
            task.cancel()
        await asyncio.gather(*collectors, return_exceptions=True)

        survivor_status = await survivor.status()
        final = finals()
        # none lost: every expected target has a job and a final outcome
        assert set(jobs) == expected
        assert set(final) == expected
        assert all(r.state in ("delivered", "failed") for r in final.values())
        # exactly once by the ledger's account: per target one final outcome, and no
        # target that is both delivered and (finally) failed
        outcomes: dict[tuple[str, str], set[tuple[str, int]]] = {}
        for r in receipts:
            if r.state == "delivered":
                outcomes.setdefault((r.channel, r.target_id), set()).add((r.state, 0))
        assert all(len(v) == 1 for v in outcomes.values())
        delivered = sum(1 for r in final.values() if r.state == "delivered")
        assert delivered == len(expected), "the gateways fail nobody in this scenario"
        # duplicates that reached a gateway: only targets that may have left before the crash
        gateway_stats = {}
        async with httpx.AsyncClient() as client:
            for name, (url, _) in gateways.items():
                gateway_stats[name] = (await client.get(f"{url}/stats")).json()
        sent = sum(s["received_targets"] for s in gateway_stats.values())
        gateway_duplicates = sent - len(expected)
        resent = survivor_status["stats"]["resent_after_restore"]
        assert survivor_status["stats"]["restored_warnings"] >= 1
        assert 0 <= gateway_duplicates <= resent, (gateway_duplicates, resent)
        duplicate_receipt_records = len(receipts) - len(
            {(r.channel, r.target_id, r.state, r.attempt) for r in receipts}
        )
        print(
            f"\ntargets={len(expected)} handed off before kill={before['handoffs']} "
            f"re-sent after restore={resent} duplicates at gateways={gateway_duplicates} "
            f"duplicate receipt records={duplicate_receipt_records} wall={time.monotonic() - started:.1f}s"
        )
    except BaseException:
        for w in workers:
            print(w.tail())
        raise
    finally:
        for w in workers:
            w.stop()
        await bus.stop()
        stop_ingress()
        for _, stop in gateways.values():
            stop()
    assert time.monotonic() - started < 90


def _town(t: Any) -> dict[str, Any]:
    return {
        "code": t.code,
        "name_zh": t.name_zh,
        "county_code": t.county_code,
        "county_name_zh": t.county_name_zh,
        "population": t.population,
    }
