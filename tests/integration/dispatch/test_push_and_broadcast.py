"""App push and emergency broadcast against their simulators on loopback."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import httpx

from schemas.delivery import DeliveryJob
from services.dispatch.channels.app.config import AppPushConfig
from services.dispatch.channels.app.testing import FakeAppPushChannel, push_simulator
from services.dispatch.channels.broadcast.channel import BroadcastChannel
from services.dispatch.channels.broadcast.config import BroadcastConfig
from services.dispatch.channels.broadcast.testing import broadcast_simulator
from services.dispatch.gateways import (
    BroadcastGatewayConfig,
    PushGatewayConfig,
    create_broadcast_gateway,
    run_gateway,
)
from services.dispatch.gateways.harness import Simulated
from services.dispatch.ledger import Ledger
from services.dispatch.render import render_message
from services.dispatch.targeting import AudienceData, Targeting
from tests.unit.dispatch.factories import T0, TOWNS, chain

MSG = chain(1, levels=["orange"], towns=("330304108", "330324110"))[0]


async def wait_receipts(sim: Simulated[Any], expected: int, timeout_s: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    stats = await sim.stats()
    while time.monotonic() < deadline and stats["receipts_sent"] < expected:
        await asyncio.sleep(0.02)
        stats = await sim.stats()
    return stats


async def test_push_requests_never_exceed_500_tokens() -> None:
    targeting = Targeting(TOWNS, AudienceData(app_subscribers={"330304108": 800, "330324110": 434}))
    batch = list(targeting.jobs(MSG, "app"))
    assert len(batch) == 1234
    gateway = PushGatewayConfig(error_rate=0.05, seed=2, receipt_delay_ms=10)
    async with push_simulator(gateway, AppPushConfig(tokens_per_request=500)) as sim:
        results = await sim.channel.send(batch, render_message(MSG, TOWNS))
        accepted = sum(r.state == "submitted" for r in results)
        stats = await wait_receipts(sim, accepted)
        receipts = sim.receipts()
        async with httpx.AsyncClient() as client:
            oversize = await client.post(f"{sim.url}/push", json={"tokens": ["x"] * 501, "ref": "r"})
        after = await sim.stats()
    assert stats["received_requests"] == 3
    assert stats["max_batch_seen"] == 500
    assert stats["oversize_requests"] == 0
    assert oversize.status_code == 413
    assert after["oversize_requests"] == 1
    assert stats["accepted"] == accepted
    invalid = [r for r in results if r.state == "failed"]
    assert 20 <= len(invalid) <= 110
    assert all(not r.retryable and r.reason == "unregistered" for r in invalid)
    ledger = Ledger(rng=random.Random(0))
    ledger.register_message(MSG)
    ledger.track_many(batch)
    ledger.apply_results(MSG.message_id, "app", results, T0)
    for receipt in receipts:
        ledger.apply_callback(receipt)
    assert ledger.summary(MSG.message_id)["app"] == {"delivered": accepted, "failed": len(invalid)}


async def test_fake_push_channel_chunks_like_the_real_one() -> None:
    fake = FakeAppPushChannel(invalid_tokens=["tok_3"])
    batch = [
        DeliveryJob(
            message_id=MSG.message_id,
            warning_id=MSG.warning_id,
            channel="app",
            target_id=f"tok_{i}",
            township_code="330304108",
            created_at=T0,
        )
        for i in range(1234)
    ]
    results = await fake.send(batch, render_message(MSG, TOWNS))
    assert fake.request_sizes == [500, 500, 234]
    assert [r.target_id for r in results if r.state == "failed"] == ["tok_3"]


async def test_broadcast_ebm_per_county_and_play_out_receipts() -> None:
    targeting = Targeting(TOWNS, AudienceData(seed=9))
    batch = list(targeting.jobs(MSG, "broadcast"))
    rendered = render_message(MSG, TOWNS)
    gateway = BroadcastGatewayConfig(delivery_failure_rate=0.02, duplicate_receipt_p=0.1, seed=4, receipt_delay_ms=10)
    async with broadcast_simulator(gateway) as sim:
        results = await sim.channel.send(batch, rendered)
        await wait_receipts(sim, len(batch))
        await asyncio.sleep(0.1)  # the duplicates follow their originals by duplicate_lag_ms
        # the gateway counts a post once it returns, the test server holds it as it arrives:
        # read both when they agree, so a duplicate in flight is on neither side or on both
        deadline = time.monotonic() + 5.0
        while True:
            stats = await sim.stats()
            receipts = sim.receipts()
            agree = len(receipts) == stats["receipts_sent"] + stats["duplicate_receipts_sent"]
            if agree or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.02)
    assert stats["received_requests"] == 2  # one EBM per county platform
    assert all(r.state == "submitted" for r in results)
    assert {r.provider_message_id for r in results} == {e["EBM"]["EBMID"] for e in rendered.broadcast.values()}
    ledger = Ledger(rng=random.Random(0))
    ledger.register_message(MSG)
    ledger.track_many(batch)
    ledger.apply_results(MSG.message_id, "broadcast", results, T0)
    outcomes = [ledger.apply_callback(r)[0] for r in receipts]
    assert outcomes.count("applied") == len(batch)
    assert outcomes.count("duplicate") == stats["duplicate_receipts_sent"]
    covered = ledger.delivered_population[MSG.message_id]["broadcast"]
    assert covered >= 0.9 * (TOWNS["330304108"].population + TOWNS["330324110"].population)


async def test_one_county_platform_down_fails_only_its_terminals() -> None:
    targeting = Targeting(TOWNS)
    batch = list(targeting.jobs(MSG, "broadcast"))
    app = create_broadcast_gateway(BroadcastGatewayConfig(counties=("330324",)))
    down_url, stop_down = await asyncio.to_thread(run_gateway, app)
    await asyncio.to_thread(stop_down)  # nothing listens there any more
    async with broadcast_simulator(BroadcastGatewayConfig(counties=("330304",))) as sim:
        config = sim.channel.config.model_copy(update={"county_urls": {"330324": down_url}})
        async with BroadcastChannel(config) as channel:
            results = await channel.send(batch, render_message(MSG, TOWNS))
    by_county: dict[str, set[str]] = {}
    for job, result in zip(batch, results, strict=True):
        by_county.setdefault(job.township_code[:6], set()).add(result.state)
    assert by_county == {"330304": {"submitted"}, "330324": {"failed"}}
    assert all(r.reason.startswith("connect") for r in results if r.state == "failed")


def test_broadcast_config_defaults_are_stated() -> None:
    assert BroadcastConfig().terminals_per_request == 2000
