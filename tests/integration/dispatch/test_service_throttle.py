"""Throttling: the dispatcher keeps to a provider's TPS, and honours its 429 + Retry-After.

::

    client bucket 180/s + burst 20 ──►  gateway bucket 200/s      never a 429, ≤ 200 in any second
    client 2000/s                   ──►  gateway 100/s → 429 (Retry-After 1 s) → retried after it
"""

from __future__ import annotations

from services.dispatch.gateways import SmsGatewayConfig
from services.dispatch.orchestrator import DispatchSettings
from services.dispatch.targeting import OfficialsShape
from tests.integration.dispatch.test_service_support import (
    CODES,
    audience,
    fast_policy,
    final_states,
    gateways,
    publish,
    receipts,
    service,
    wait_for,
    warning,
)

OFFICIALS = OfficialsShape(
    city_officials=10,
    per_county=10,
    per_township=10,
    villages_per_township_min=4,
    villages_per_township_max=6,
    per_village=5,
)


async def test_sms_fan_out_keeps_to_the_gateway_tps() -> None:
    limit = 200
    codes = CODES[40:52]
    async with gateways(sms=SmsGatewayConfig(tps=limit, burst=limit, seed=5)) as gw:
        assert gw.sms is not None
        settings = DispatchSettings.model_validate(
            {
                "channels": {
                    "sms": {
                        "providers": [
                            {"provider": "sms", "base_url": gw.sms.url, "tps": 180, "burst": 20, "batch_size": 20}
                        ],
                        "batch_size": 100,
                        "max_inflight": 4,
                    }
                },
                "audience": audience(codes, officials=OFFICIALS).model_dump(),
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

            await wait_for(all_delivered, 15, "every SMS delivered")
            stats = await gw.sms.stats()
    assert 400 <= expected <= 1000
    assert stats["throttled_requests"] == 0, "the provider never had to push back"
    assert stats["accepted"] == stats["received_targets"] == expected
    assert stats["max_accepted_1s"] <= limit
    span = stats["last_accept_s"] - stats["first_accept_s"]
    rate = (stats["accepted"] - 20) / span
    assert 0.85 * limit <= rate <= limit, f"{rate:.1f}/s over {span:.1f} s"


async def test_a_throttling_gateway_is_retried_after_its_retry_after_and_nobody_is_lost() -> None:
    codes = CODES[60:64]
    async with gateways(sms=SmsGatewayConfig(tps=100, burst=100, seed=6)) as gw:
        assert gw.sms is not None
        settings = DispatchSettings.model_validate(
            {
                "channels": {
                    "sms": {
                        "providers": [
                            {
                                "provider": "sms",
                                "base_url": gw.sms.url,
                                "tps": 2000,
                                "burst": 100,
                                "batch_size": 100,
                                "concurrency": 4,
                            }
                        ],
                        "batch_size": 100,
                    }
                },
                "audience": audience(codes, officials=OFFICIALS).model_dump(),
                **fast_policy(
                    retry={"base_s": 0.05, "cap_s": 1.0, "max_attempts": 20, "max_attempts_per_provider": 20},
                    breaker={"failure_threshold": 1000, "open_s": 30.0},
                ),
            }
        )
        async with service(settings) as svc:
            msg = warning(codes)
            expected = svc.dispatcher.targeting.audience_size(msg, "sms")
            await publish(svc.bus, msg)

            async def all_delivered() -> bool:
                states = final_states(await receipts(svc.bus))
                return len(states) == expected and set(states.values()) == {"delivered"}

            await wait_for(all_delivered, 18, "every SMS delivered despite 429s")
            stats = await gw.sms.stats()
            got = await receipts(svc.bus)
    assert stats["throttled_requests"] > 0
    assert stats["accepted"] == expected, "no target accepted twice"
    throttled = [r for r in got if r.state == "failed"]
    assert throttled
    assert all(r.reason == "throttled" for r in throttled)
    # a retry never comes back sooner than the Retry-After (≥ 1 s) the gateway asked for
    by_target: dict[str, list[float]] = {}
    for r in got:
        if r.state in ("failed", "pending"):
            by_target.setdefault(r.target_id, []).append(r.at.timestamp() * (1 if r.state == "failed" else -1))
    gaps: list[float] = []
    for times in by_target.values():
        fails = sorted(t for t in times if t > 0)
        retries = sorted(-t for t in times if t < 0)
        gaps.extend(retry - fail for fail, retry in zip(fails, retries, strict=False))
    assert gaps
    assert min(gaps) >= 0.95
