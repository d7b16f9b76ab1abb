"""SMS channel against the gateway simulator on real loopback HTTP."""

from __future__ import annotations

import asyncio
import random
import time

import httpx

from services.dispatch.channels.sms.config import SmsConfig
from services.dispatch.channels.sms.testing import sms_simulator
from services.dispatch.gateways import SmsGatewayConfig
from services.dispatch.ledger import Ledger
from services.dispatch.render import render_message
from tests.unit.dispatch.factories import T0, TOWNS, chain, jobs

RED = chain(1, levels=["red"])[0]
YELLOW = chain(1, levels=["yellow"], warning_id="rainstorm-330304008-y")[0]


async def test_rate_never_exceeds_the_gateway_limit_over_three_seconds() -> None:
    limit = 200.0
    batch = jobs(RED, "sms", 700)
    gateway = SmsGatewayConfig(tps=limit, burst=int(limit), seed=1)
    channel = SmsConfig(tps=limit, burst=100, batch_size=100)
    async with sms_simulator(gateway, channel) as sim:
        started = time.monotonic()
        results = await sim.channel.send(batch, render_message(RED, TOWNS))
        elapsed = time.monotonic() - started
        stats = await sim.stats()
    assert [r.state for r in results] == ["submitted"] * len(batch)
    assert stats["throttled_requests"] == 0, "the provider never had to push back"
    assert stats["accepted"] == len(batch)
    span = stats["last_accept_s"] - stats["first_accept_s"]
    assert span >= 2.0
    sustained = (stats["accepted"] - 100) / span  # the first request is the bucket's burst
    assert sustained <= limit * 1.03, f"{sustained:.1f}/s over {span:.2f} s"
    assert stats["max_accepted_1s"] <= limit + 100  # rate + client burst, in any 1-s window
    assert elapsed >= (len(batch) - 100) / limit * 0.97


async def test_a_client_faster_than_the_gateway_gets_429_with_retry_after() -> None:
    batch = jobs(RED, "sms", 400)
    async with sms_simulator(
        SmsGatewayConfig(tps=100, burst=100), SmsConfig(tps=2000, burst=200, batch_size=100, concurrency=4)
    ) as sim:
        results = await sim.channel.send(batch, render_message(RED, TOWNS))
        stats = await sim.stats()
    throttled = [r for r in results if r.state == "failed"]
    assert throttled
    assert stats["throttled_targets"] == len(throttled)
    assert all(r.reason == "throttled" and r.retryable and (r.retry_after_s or 0) >= 1 for r in throttled)
    ledger = Ledger(rng=random.Random(0))
    ledger.register_message(RED)
    ledger.track_many(batch)
    summary = ledger.apply_results(RED.message_id, "sms", results, T0)
    assert {d.action for d in summary.decisions} == {"retry"}
    assert all(d.at is not None and (d.at - T0).total_seconds() >= 1 for d in summary.decisions)


async def test_outage_is_reported_per_target_with_a_reason() -> None:
    batch = jobs(RED, "sms", 30)
    rendered = render_message(RED, TOWNS)
    async with sms_simulator() as sim:
        async with httpx.AsyncClient() as client:
            await client.post(f"{sim.url}/control", json={"down": True})
        soft = await sim.channel.send(batch, rendered)
        await asyncio.to_thread(sim.stop_gateway)  # hard outage: connection refused
        hard = await sim.channel.send(batch, rendered)
    assert [r.target_id for r in soft] == [j.target_id for j in batch]
    assert all(r.state == "failed" and r.retryable and r.reason.startswith("http 503") for r in soft)
    assert all(r.state == "failed" and r.retryable and r.reason.startswith("connect") for r in hard)


async def test_duplicate_receipts_are_counted_once_by_the_ledger() -> None:
    batch = jobs(RED, "sms", 300)
    gateway = SmsGatewayConfig(duplicate_receipt_p=0.3, delivery_failure_rate=0.1, receipt_delay_ms=20, seed=5)
    async with sms_simulator(gateway) as sim:
        results = await sim.channel.send(batch, render_message(RED, TOWNS))
        ledger = Ledger(rng=random.Random(0))
        ledger.register_message(RED)
        ledger.track_many(batch)
        ledger.apply_results(RED.message_id, "sms", results, T0)
        deadline = time.monotonic() + 5
        stats = await sim.stats()
        while time.monotonic() < deadline:
            stats = await sim.stats()
            if stats["receipts_sent"] == 300 and stats["duplicate_receipts_sent"] > 0:
                await asyncio.sleep(0.2)  # let the duplicate batches land too
                break
            await asyncio.sleep(0.02)
        stats = await sim.stats()
        receipts = sim.receipts()
    outcomes = [ledger.apply_callback(r)[0] for r in receipts]
    assert len(receipts) == stats["receipts_sent"] + stats["duplicate_receipts_sent"]
    assert outcomes.count("applied") == 300
    assert outcomes.count("duplicate") == stats["duplicate_receipts_sent"] > 0
    summary = ledger.summary(RED.message_id)["sms"]
    assert summary["delivered"] + summary["failed"] == 300
    assert 10 <= summary["failed"] <= 60  # ≈ 10 % undelivered
    assert ledger.delivered_population[RED.message_id]["sms"] == summary["delivered"]


async def test_red_overtakes_a_queued_yellow_fan_out() -> None:
    yellow_jobs = jobs(YELLOW, "sms", 400, prefix="y")
    red_jobs = jobs(RED, "sms", 50, prefix="r")
    channel = SmsConfig(tps=400, burst=50, batch_size=50, concurrency=1)
    async with sms_simulator(SmsGatewayConfig(), channel) as sim:
        started = time.monotonic()
        yellow_task = asyncio.create_task(sim.channel.send(yellow_jobs, render_message(YELLOW, TOWNS)))
        await asyncio.sleep(0.05)
        red_results = await sim.channel.send(red_jobs, render_message(RED, TOWNS))
        red_done = time.monotonic() - started
        yellow_results = await yellow_task
        yellow_done = time.monotonic() - started
    assert all(r.state == "submitted" for r in red_results + yellow_results)
    assert red_done < 0.5 < yellow_done
    order = sim.channel.pacer.granted_order
    assert order.index(4) <= 2  # granted right behind the yellow request(s) already due


async def test_same_seed_same_outcomes() -> None:
    batch = jobs(RED, "sms", 200)
    rendered = render_message(RED, TOWNS)
    outcomes = []
    for _ in range(2):
        async with sms_simulator(SmsGatewayConfig(error_rate=0.2, seed=11)) as sim:
            results = await sim.channel.send(batch, rendered)
        outcomes.append([(r.state, r.provider_message_id) for r in results])
    assert outcomes[0] == outcomes[1]
    assert 20 <= sum(state == "failed" for state, _ in outcomes[0]) <= 60
