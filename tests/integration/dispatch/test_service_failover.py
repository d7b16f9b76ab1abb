"""Provider outage → fail-over, with the real gateway simulators on loopback.

::

    primary SMS  ──503 503 ▌breaker open▐ ─────────────────────────────►
    secondary    ─────────────── every retry and every new batch ───────►   all delivered, once

    broadcast    ──503 503 503 (3 attempts) ──► other channel: zone SMS of the township
"""

from __future__ import annotations

import pytest

from services.dispatch.gateways import BroadcastGatewayConfig, SmsGatewayConfig
from services.dispatch.orchestrator import DispatchSettings
from services.dispatch.targeting import OfficialsShape
from tests.integration.dispatch.test_service_support import (
    CODES,
    audience,
    coverage,
    fast_policy,
    final_states,
    gateways,
    publish,
    receipts,
    sealed_and_published,
    service,
    wait_for,
    warning,
)


async def test_primary_sms_outage_fails_over_to_the_secondary_and_loses_nobody() -> None:
    codes = CODES[:6]
    async with gateways(sms=SmsGatewayConfig(seed=1), sms_secondary=SmsGatewayConfig(seed=2)) as gw:
        assert gw.sms is not None
        assert gw.sms_secondary is not None
        await gw.sms.control(down=True)  # the primary answers 503 to everything
        settings = DispatchSettings.model_validate(
            {
                "channels": {
                    "sms": {
                        "providers": [
                            {"provider": "sms-a", "base_url": gw.sms.url, "tps": 2000, "burst": 50, "batch_size": 50},
                            {"provider": "sms-b", "base_url": gw.sms_secondary.url, "tps": 2000, "burst": 50},
                        ],
                        "batch_size": 50,
                    }
                },
                "audience": audience(codes, officials=OfficialsShape(per_county=10, per_township=10)).model_dump(),
                **fast_policy(),
            }
        )
        async with service(settings) as svc:
            msg = warning(codes)
            expected = svc.dispatcher.targeting.audience_size(msg, "sms")
            await publish(svc.bus, msg)

            async def all_delivered() -> bool:
                states = final_states(await receipts(svc.bus))
                return len(states) == expected and set(states.values()) == {"delivered"}

            await wait_for(all_delivered, 15, "every SMS target delivered via the secondary")
            primary, secondary = await gw.sms.stats(), await gw.sms_secondary.stats()
            got = await receipts(svc.bus)
            stats = svc.stats
    assert expected > 100
    assert primary["outage_requests"] >= 2
    assert primary["accepted"] == 0
    assert secondary["accepted"] == secondary["received_targets"] == expected, "each target reached the secondary once"
    delivered = [r for r in got if r.state == "delivered"]
    assert {r.provider for r in delivered} == {"sms-b"}
    failed_on_primary = {r.target_id for r in got if r.state == "failed" and r.provider == "sms-a"}
    assert failed_on_primary, "the outage is on the record"
    assert all(r.reason.startswith("http 503") for r in got if r.state == "failed")
    assert stats.retries + stats.provider_switches > 0
    assert stats.give_ups == 0


@pytest.mark.parametrize(
    "coverage_interval_s",
    [
        0.2,
        # no periodic report after the first: the final one must come with the seal itself
        30.0,
    ],
)
async def test_broadcast_platform_down_falls_back_to_the_townships_zone_sms(coverage_interval_s: float) -> None:
    codes = CODES[20:24]
    async with gateways(sms=SmsGatewayConfig(seed=3), broadcast=BroadcastGatewayConfig(seed=4)) as gw:
        assert gw.sms is not None
        assert gw.broadcast is not None
        await gw.broadcast.control(down=True)
        settings = DispatchSettings.model_validate(
            {
                "channels": {
                    "broadcast": {
                        "providers": [{"provider": "ebm", "base_url": gw.broadcast.url}],
                        "fallback_channels": ["sms"],
                    },
                    "sms": {"providers": [{"provider": "sms", "base_url": gw.sms.url, "tps": 2000, "burst": 100}]},
                },
                "level_channels": {"red": ["broadcast"]},
                "audience": audience(codes).model_dump(),
                **fast_policy(
                    breaker={"failure_threshold": 50, "open_s": 30.0}, coverage_interval_s=coverage_interval_s
                ),
            }
        )
        async with service(settings) as svc:
            msg = warning(codes)
            terminals = svc.dispatcher.targeting.audience_size(msg, "broadcast")
            await publish(svc.bus, msg)

            async def settled() -> bool:
                states = final_states(await receipts(svc.bus))
                zones = {k: v for k, v in states.items() if k[0] == "sms"}
                ebt = {k: v for k, v in states.items() if k[0] == "broadcast"}
                return len(zones) == len(codes) and set(zones.values()) == {"delivered"} and len(ebt) == terminals

            await wait_for(settled, 15, "terminals failed and zone SMS delivered")
            await wait_for(svc.dispatcher.idle, 5, "idle")
            # not just ``sealed``: a reader polling the ledger can see the seal before the tick
            # that sealed it has flushed the final coverage report (CI, loaded machine)
            await wait_for(lambda: sealed_and_published(svc, msg.message_id), 5, "sealed, final report out")
            states = final_states(await receipts(svc.bus))
            reports = [c for c in await coverage(svc.bus) if c.message_id == msg.message_id]
            sms_stats = await gw.sms.stats()
            stats = svc.stats
    assert {v for k, v in states.items() if k[0] == "broadcast"} == {"failed"}
    assert {k[1] for k in states if k[0] == "sms"} == {f"zone:{c}" for c in codes}
    assert sms_stats["received_targets"] == len(codes), "one zone SMS per township, however many terminals failed"
    assert stats.channel_fallbacks == terminals
    final = reports[-1]
    assert final.complete
    assert final.unreached_townships == ()
    assert {t.township_code for t in final.townships if t.channel == "sms" and t.delivered == 1} == set(codes)
