"""Bad input never stops dispatch: it is refused with a reason and a trace, and work goes on.

=======================================  ==========================================
input                                    outcome
=======================================  ==========================================
warning: not JSON                        obs.rejected ``malformed_json``
warning: no townships                    obs.rejected ``schema`` naming township_codes
warning: unknown township                obs.rejected ``unknown_station`` naming the code
garbage on ``dispatch.work``             obs.rejected ``schema``
text over a channel's limit              that channel not used; ``oversized`` trace
callback: not JSON / wrong shape         400 + ``malformed_json`` / ``schema``
callback: no usable receipt              422 + ``schema``
callback: unknown channel/provider       404 + ``unknown_feed``
callback: only unknown messages          404 + ``schema`` ("unknown message")
=======================================  ==========================================
"""

from __future__ import annotations

import json

import httpx

from services.dispatch.gateways import SmsGatewayConfig
from services.dispatch.orchestrator import DispatchSettings
from services.dispatch.processor import DISPATCH_WORK
from tests.integration.dispatch.test_service_support import (
    CODES,
    audience,
    fast_policy,
    final_states,
    gateways,
    publish,
    receipts,
    rejected,
    service,
    wait_for,
    warning,
)


def settings_for(sms_url: str, codes: tuple[str, ...], **channels: object) -> DispatchSettings:
    return DispatchSettings.model_validate(
        {
            "channels": {
                "sms": {"providers": [{"provider": "sms", "base_url": sms_url, "tps": 5000, "burst": 100}]},
                **channels,
            },
            "audience": audience(codes, static_targets={"webhook": ("sub-1",)}).model_dump(),
            **fast_policy(),
        }
    )


async def test_bad_warnings_are_rejected_with_a_reason_and_the_next_one_goes_out() -> None:
    codes = CODES[160:163]
    async with gateways(sms=SmsGatewayConfig(seed=21)) as gw:
        assert gw.sms is not None
        async with service(settings_for(gw.sms.url, codes)) as svc:
            good = warning(codes)
            no_towns = json.loads(good.model_dump_json()) | {"township_codes": []}
            unknown = json.loads(good.model_dump_json()) | {"township_codes": ["330399999"]}
            await publish(svc.bus, b"{not json")
            await publish(svc.bus, json.dumps(no_towns).encode())
            await publish(svc.bus, json.dumps(unknown).encode())
            await svc.bus.publish(DISPATCH_WORK, good.warning_id, b'{"kind":"dispatch.mystery"}')
            await publish(svc.bus, good)
            expected = svc.dispatcher.targeting.audience_size(good, "sms")

            async def delivered() -> bool:
                states = final_states(await receipts(svc.bus))
                return len(states) == expected and set(states.values()) == {"delivered"}

            await wait_for(delivered, 10, "the good warning delivered")
            refused = await rejected(svc.bus)
    reasons = {r.reason for r in refused}
    assert {"malformed_json", "schema", "unknown_station"} <= reasons
    by_reason = {r.reason: r for r in refused}
    assert "township_codes" in (by_reason["unknown_station"].field or "")
    assert "330399999" in by_reason["unknown_station"].detail
    assert any("township_codes" in (r.field or r.detail) for r in refused if r.reason == "schema")
    assert any(r.source.startswith("dispatch.work") and "dispatch.mystery" in r.detail for r in refused)
    assert all(r.raw for r in refused), "the raw payload is kept"
    assert svc.stats.bad_records == 1


async def test_a_text_over_a_channels_limit_is_a_clear_error_and_other_channels_still_send() -> None:
    codes = CODES[163:165]
    async with gateways(sms=SmsGatewayConfig(seed=22)) as gw:
        assert gw.sms is not None
        webhook = {
            "providers": [
                {
                    "provider": "hooks",
                    "subscribers": {"sub-1": f"{gw.sms.url}/hook"},
                    "secret": "s3cret",
                    "max_body_bytes": 1024,
                }
            ]
        }
        async with service(settings_for(gw.sms.url, codes, webhook=webhook)) as svc:
            msg = warning(codes)
            expected = svc.dispatcher.targeting.audience_size(msg, "sms")
            await publish(svc.bus, msg)

            async def sms_delivered() -> bool:
                states = final_states(await receipts(svc.bus))
                return sum(1 for (ch, _), s in states.items() if ch == "sms" and s == "delivered") == expected

            await wait_for(sms_delivered, 10, "SMS delivered")
            await svc.wait_idle(5)
            refused = [r for r in await rejected(svc.bus) if r.reason == "oversized"]
            states = final_states(await receipts(svc.bus))
            metric = svc.metrics.registry.get_sample_value(
                "earlywarn_dispatch_limit_violations_total", {"channel": "webhook", "limit": "max_body_bytes"}
            )
    assert len(refused) == 1
    assert refused[0].source == "dispatch:webhook"
    assert msg.message_id in refused[0].detail
    assert "max_body_bytes" in refused[0].detail
    assert not any(ch == "webhook" for ch, _ in states)
    assert metric == 1.0
    assert svc.stats.limit_violations == 1


async def test_malformed_and_unknown_callbacks_get_4xx_and_a_trace() -> None:
    codes = CODES[165:167]
    async with gateways(sms=SmsGatewayConfig(seed=23)) as gw:
        assert gw.sms is not None
        async with service(settings_for(gw.sms.url, codes)) as svc:
            msg = warning(codes)
            await publish(svc.bus, msg)
            await wait_for(lambda: msg.message_id in svc.dispatcher.ledger.messages, 5, "admitted")
            base = f"{svc.callback_url}/callbacks"
            good_ref = f"{msg.message_id}|zone:{codes[0]}"
            async with httpx.AsyncClient() as client:
                answers = {
                    "not json": await client.post(f"{base}/sms/sms", content=b"{oops"),
                    "wrong shape": await client.post(f"{base}/sms/sms", json=[1, 2]),
                    "no receipts list": await client.post(f"{base}/sms/sms", json={"receipts": "x"}),
                    "unusable": await client.post(f"{base}/sms/sms", json={"receipts": [{"nothing": 1}]}),
                    "unknown channel": await client.post(f"{base}/fax/fax", json={"receipts": []}),
                    "unknown provider": await client.post(f"{base}/sms/nobody", json={"receipts": []}),
                    "unknown message": await client.post(
                        f"{base}/sms/sms", json={"receipts": [{"ref": "rainstorm-nope.v1|zone:1", "status": "DELIVRD"}]}
                    ),
                    "mixed": await client.post(
                        f"{base}/sms/sms",
                        json={
                            "receipts": [
                                {"ref": "rainstorm-nope.v1|zone:1", "status": "DELIVRD"},
                                {"ref": good_ref, "status": "DELIVRD"},
                                {"ref": "no-separator"},
                            ]
                        },
                    ),
                    "bad ack": await client.post(f"{svc.callback_url}/ack", json={"message_id": 5}),
                }
            expected = svc.dispatcher.targeting.audience_size(msg, "sms")

            async def delivered() -> bool:
                states = final_states(await receipts(svc.bus))
                return len(states) == expected and set(states.values()) == {"delivered"}

            await wait_for(delivered, 10, "the warning delivered regardless")
            refused = [r for r in await rejected(svc.bus) if r.source.startswith("callback:")]
    codes_by_case = {k: v.status_code for k, v in answers.items()}
    assert codes_by_case == {
        "not json": 400,
        "wrong shape": 400,
        "no receipts list": 400,
        "unusable": 422,
        "unknown channel": 404,
        "unknown provider": 404,
        "unknown message": 404,
        "mixed": 202,
        "bad ack": 400,
    }
    assert answers["mixed"].json() == {"accepted": 1, "unusable": 1, "unknown": 1}
    reasons = sorted(r.reason for r in refused)
    assert reasons == sorted(["malformed_json", "unknown_feed", "unknown_feed", *["schema"] * 6])
    mixed = [r for r in refused if r.detail.startswith("accepted the rest")]
    assert len(mixed) == 1
    assert "1 unusable" in mixed[0].detail
    assert "rainstorm-nope.v1" in mixed[0].detail
    assert all(r.raw for r in refused), "the raw callback is kept"
