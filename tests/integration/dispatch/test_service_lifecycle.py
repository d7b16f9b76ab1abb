"""The warning lifecycle as dispatch sees it: cancel, approval holds, expiry, escalation.

::

    v1 Alert ──fan-out──────X Cancel v2          the rest of v1 is never sent
    v1 held  ····(nothing)···· v1 approved ──►   sent once, after approval
    expired on arrival                           nothing sent
    official ──sent── no ack in time ──►  superior gets it (esc:…) ──► … top of the chain
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from services.dispatch.gateways import SmsGatewayConfig
from services.dispatch.orchestrator import DispatchSettings
from services.dispatch.targeting import OfficialsShape
from tests.integration.dispatch.test_service_support import (
    CODES,
    audience,
    fast_policy,
    final_states,
    gateways,
    jobs,
    publish,
    receipts,
    sealed,
    service,
    wait_for,
    warning,
)

OFFICIALS = OfficialsShape(
    city_officials=10,
    per_county=10,
    per_township=10,
    villages_per_township_min=2,
    villages_per_township_max=4,
    per_village=5,
)


def sms_settings(url: str, codes: tuple[str, ...], *, tps: float = 5000, **extra: object) -> DispatchSettings:
    return DispatchSettings.model_validate(
        {
            "channels": {
                "sms": {
                    "providers": [{"provider": "sms", "base_url": url, "tps": tps, "burst": 10, "batch_size": 10}],
                    "batch_size": 20,
                    "max_inflight": 1,
                }
            },
            "audience": audience(codes, officials=extra.pop("officials", OFFICIALS)).model_dump(),
            **fast_policy(**extra),
        }
    )


async def test_cancel_mid_fan_out_stops_the_rest() -> None:
    codes = CODES[120:128]
    async with gateways(sms=SmsGatewayConfig(seed=11)) as gw:
        assert gw.sms is not None
        async with service(sms_settings(gw.sms.url, codes, tps=100)) as svc:
            alert = warning(codes)
            cancel = warning(codes, version=2, msg_type="Cancel", warning_id=alert.warning_id)
            expected = svc.dispatcher.targeting.audience_size(alert, "sms")
            await publish(svc.bus, alert)
            await wait_for(lambda: svc.stats.handoffs >= 60, 10, "the alert's fan-out under way")
            await publish(svc.bus, cancel)
            await wait_for(lambda: cancel.message_id in svc.dispatcher.ledger.messages, 5, "the cancel admitted")
            tracked_at_cancel = len([j for j in await jobs(svc.bus) if j.message_id == alert.message_id])

            async def cancel_delivered() -> bool:
                states = final_states(await receipts(svc.bus), cancel.message_id)
                return len(states) == expected and set(states.values()) == {"delivered"}

            await wait_for(cancel_delivered, 15, "the Cancel delivered to the audience")
            await wait_for(lambda: sealed(svc, alert.message_id), 5, "v1 sealed")
            alert_jobs = [j for j in await jobs(svc.bus) if j.message_id == alert.message_id]
            alert_states = final_states(await receipts(svc.bus), alert.message_id)
            sms = await gw.sms.stats()
    assert expected > 200
    assert len(alert_jobs) <= tracked_at_cancel + 20, "at most the batch in hand when the Cancel came"
    assert len(alert_jobs) < expected / 2, "the rest of the alert was never even queued"
    assert set(alert_states.values()) <= {"delivered", "skipped"}
    assert all(s != "pending" for s in alert_states.values())
    assert sms["received_targets"] == sum(1 for s in alert_states.values() if s == "delivered") + expected


async def test_a_held_warning_is_sent_only_once_approved() -> None:
    codes = CODES[130:134]
    async with gateways(sms=SmsGatewayConfig(seed=12)) as gw:
        assert gw.sms is not None
        async with service(sms_settings(gw.sms.url, codes)) as svc:
            held = warning(codes, approval="held")
            await publish(svc.bus, held)
            await publish(svc.bus, held)  # redelivered while held
            await svc.wait_idle(5)
            assert svc.stats.held == 1
            assert svc.stats.handoffs == 0
            assert await jobs(svc.bus) == []
            assert (await gw.sms.stats())["received_targets"] == 0

            approved = held.model_copy(update={"approval": "approved", "approved_by": "duty-1"})
            expected = svc.dispatcher.targeting.audience_size(approved, "sms")
            await publish(svc.bus, approved)

            async def delivered() -> bool:
                states = final_states(await receipts(svc.bus), held.message_id)
                return len(states) == expected and set(states.values()) == {"delivered"}

            await wait_for(delivered, 10, "the approved message delivered")
            released = held.model_copy(update={"approval": "released"})
            await publish(svc.bus, released)  # a later approval state of the same message
            await svc.wait_idle(5)
            assert (await gw.sms.stats())["received_targets"] == expected
            assert svc.stats.warnings_admitted == 1

            # held, then rejected (a Cancel): nobody was warned, so nobody hears of it
            other = warning(codes, approval="held", warning_id="rainstorm-rejected")
            await publish(svc.bus, other)
            await publish(svc.bus, warning(codes, version=2, msg_type="Cancel", warning_id="rainstorm-rejected"))
            await svc.wait_idle(5)
            assert (await gw.sms.stats())["received_targets"] == expected
            assert not [j for j in await jobs(svc.bus) if j.warning_id == "rainstorm-rejected"]


async def test_an_expired_warning_sends_nothing_and_expiry_stops_a_fan_out() -> None:
    codes = CODES[140:152]
    async with gateways(sms=SmsGatewayConfig(seed=13)) as gw:
        assert gw.sms is not None
        async with service(sms_settings(gw.sms.url, codes, tps=100)) as svc:
            stale = warning(codes, sent_at=datetime.now(UTC) - timedelta(hours=7), warning_id="rainstorm-stale")
            await publish(svc.bus, stale)
            await svc.wait_idle(5)
            assert svc.stats.expired_on_arrival == 1
            assert await jobs(svc.bus) == []

            now = datetime.now(UTC)
            short = warning(
                codes, sent_at=now - timedelta(minutes=10) + timedelta(seconds=1.0), valid_for=timedelta(minutes=10)
            )
            expected = svc.dispatcher.targeting.audience_size(short, "sms")
            await publish(svc.bus, short)
            await wait_for(lambda: sealed(svc, short.message_id), 10, "expiry and sealing")
            states = final_states(await receipts(svc.bus), short.message_id)
            sent = (await gw.sms.stats())["received_targets"]
            skipped = [r for r in await receipts(svc.bus) if r.state == "skipped"]
    assert 0 < sent < expected / 2, "sending stopped at expiry"
    assert set(states.values()) <= {"delivered", "skipped"}
    assert all(r.reason == "expired" for r in skipped)


async def test_officials_who_do_not_acknowledge_are_escalated_up_the_chain() -> None:
    codes = CODES[150:151]
    officials = OfficialsShape(
        city_officials=1, per_county=1, per_township=2, villages_per_township_min=0, villages_per_township_max=0
    )
    async with gateways(sms=SmsGatewayConfig(seed=14, receipt_delay_ms=10)) as gw:
        assert gw.sms is not None
        settings = sms_settings(
            gw.sms.url, codes, officials=officials, escalation={"ack_timeout_s": 1.5, "levels": ["red"]}
        )
        async with service(settings) as svc:
            msg = warning(codes)
            await publish(svc.bus, msg)
            township_official = f"off:OFF-T-{codes[0]}-000"

            async def delivered() -> bool:
                return (
                    final_states(await receipts(svc.bus), msg.message_id).get(("sms", township_official)) == "delivered"
                )

            await wait_for(delivered, 5, "the township official's SMS delivered")
            async with httpx.AsyncClient() as client:
                ok = await client.post(
                    f"{svc.callback_url}/ack", json={"message_id": msg.message_id, "target_id": township_official}
                )
                unknown = await client.post(
                    f"{svc.callback_url}/ack", json={"message_id": "rainstorm-nope.v1", "target_id": township_official}
                )
            assert ok.status_code == 202
            assert unknown.status_code == 404
            await wait_for(lambda: svc.stats.escalations >= 2, 8, "escalations")
            await wait_for(lambda: svc.stats.escalations_exhausted >= 2, 8, "the top of the chain")
            states = final_states(await receipts(svc.bus), msg.message_id)
            escalated = sorted(j.target_id for j in await jobs(svc.bus) if j.target_id.startswith("esc:"))
            stats = svc.stats
    assert states[("sms", township_official)] == "acknowledged"
    boss = svc.dispatcher.targeting.superior_of(f"OFF-T-{codes[0]}-001")
    assert boss is not None
    county = codes[0][:6]
    # the second township official (no ack) goes to their county official; the county
    # official (no ack) to the city duty officer; the city duty officer is the top
    assert f"esc:{boss.official_id}:OFF-T-{codes[0]}-001" in escalated
    assert f"esc:OFF-C-330300-000:OFF-X-{county}-000" in escalated
    assert not any(t.endswith(":OFF-T-" + codes[0] + "-000") for t in escalated), "acknowledged: not escalated"
    assert stats.escalations == len(escalated)
