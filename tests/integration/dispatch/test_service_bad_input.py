"""Bad input never stops dispatch: it is refused with a reason and a trace, and work goes on.

=======================================  ==========================================
input                                    outcome
=======================================  ==========================================
warning: not JSON                        obs.rejected ``malformed_json``
warning: no townships                    obs.rejected ``schema`` naming township_codes
warning: unknown township                obs.rejected ``unknown_station``, "[unknown_township] …"
garbage on ``dispatch.work``             obs.rejected ``schema``
text over a channel's limit              that channel not used; ``oversized`` trace
                                         (webhook body bytes, SMS segments)
callback: not JSON / wrong shape         400 + ``malformed_json`` / ``schema``
callback: no usable receipt              422 + ``schema``
callback: unknown channel/provider       404 + ``unknown_feed``
callback: only unknown messages          404 + ``schema``, "[unknown_message] …"
receipts on ``dispatch.work`` that the   applied rows go on; one ``obs.rejected``
worker cannot apply (unknown message or  per record (``schema``, "[unknown_message]"
target, bad state or time)               named) and a log line
=======================================  ==========================================

(``schemas/rejected.py`` has no ``unknown_township``/``unknown_message`` yet: the closest
reason is used and the detail starts with the proposed one in brackets.)
"""

from __future__ import annotations

import json

import httpx

from services.dispatch.gateways import PushGatewayConfig, SmsGatewayConfig
from services.dispatch.orchestrator import DispatchSettings, EscalationSettings
from services.dispatch.processor import DISPATCH_WORK, encode_callbacks
from tests.integration.dispatch.test_service_support import (
    CODES,
    audience,
    delivered_count,
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
    assert by_reason["unknown_station"].detail.startswith("[unknown_township] township_codes:")
    assert "330399999" in by_reason["unknown_station"].detail
    assert good.message_id in by_reason["unknown_station"].detail
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
                return await delivered_count(svc.bus, "sms") == expected

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
    only_unknown = [r for r in refused if r.detail.startswith("[unknown_message]")]
    assert len(only_unknown) == 1
    assert "rainstorm-nope.v1" in only_unknown[0].detail
    reasons = sorted(r.reason for r in refused)
    assert reasons == sorted(["malformed_json", "unknown_feed", "unknown_feed", *["schema"] * 6])
    mixed = [r for r in refused if r.detail.startswith("accepted the rest")]
    assert len(mixed) == 1
    assert "1 unusable" in mixed[0].detail
    assert "rainstorm-nope.v1" in mixed[0].detail
    assert all(r.raw for r in refused), "the raw callback is kept"


async def test_an_sms_text_over_its_segment_limit_is_refused_and_the_app_still_sends() -> None:
    codes = CODES[167:169]
    async with gateways(sms=SmsGatewayConfig(seed=24), push=PushGatewayConfig(seed=24, receipt_delay_ms=5)) as gw:
        assert gw.sms is not None
        assert gw.push is not None
        sms = {"providers": [{"provider": "sms", "base_url": gw.sms.url, "max_segments": 1}]}
        app = {"providers": [{"provider": "push", "base_url": gw.push.url}]}
        settings = DispatchSettings.model_validate(
            {
                "channels": {"sms": sms, "app": app},
                "audience": audience(codes, app_per_township=3).model_dump(),
                # a signature this long leaves no template within one 70-character segment
                "render": {"sms": {"signature": "【" + "温州市气象防灾减灾中心" * 7 + "】"}},
            }
            | fast_policy()
        )
        async with service(settings) as svc:
            msg = warning(codes)
            expected = svc.dispatcher.targeting.audience_size(msg, "app")
            await publish(svc.bus, msg)

            async def app_delivered() -> bool:
                return await delivered_count(svc.bus, "app") == expected

            await wait_for(app_delivered, 10, "app pushes delivered")
            refused = [r for r in await rejected(svc.bus) if r.reason == "oversized"]
            states = final_states(await receipts(svc.bus))
            sms_stats = await gw.sms.stats()
    assert [r.source for r in refused] == ["dispatch:sms"]
    assert msg.message_id in refused[0].detail
    assert "segments" in refused[0].detail
    assert not any(ch == "sms" for ch, _ in states)
    assert sms_stats["accepted"] == 0
    assert svc.stats.limit_violations == 1


async def test_receipts_the_worker_cannot_apply_leave_one_trace_and_the_rest_applies() -> None:
    """A stand-alone ingress cannot tell our messages from others: the worker sorts them out."""
    codes = CODES[175:177]
    async with gateways(sms=SmsGatewayConfig(seed=25, receipt_delay_ms=5)) as gw:
        assert gw.sms is not None
        # officials must acknowledge: the message stays open (not sealed) while they have not
        settings = settings_for(gw.sms.url, codes).model_copy(
            update={"escalation": EscalationSettings(ack_timeout_s=60.0, levels=("red",))}
        )
        async with service(settings) as svc:
            msg = warning(codes)
            await publish(svc.bus, msg)
            expected = svc.dispatcher.targeting.audience_size(msg, "sms")

            async def delivered() -> bool:
                states = final_states(await receipts(svc.bus))
                return len(states) == expected and set(states.values()) == {"delivered"}

            await wait_for(delivered, 10, "the warning delivered")
            official = next(t for ch, t in final_states(await receipts(svc.bus)) if t.startswith("off:"))
            at = "2024-07-25T06:30:00Z"
            rows = [
                ("rainstorm-elsewhere.v1", "zone:1", "delivered", at, "sms", ""),
                ("rainstorm-elsewhere.v2", "zone:2", "delivered", at, "sms", ""),
                (msg.message_id, "zone:999999999", "delivered", at, "sms", ""),
                (msg.message_id, f"zone:{codes[0]}", "exploded", at, "sms", ""),
                (msg.message_id, f"zone:{codes[0]}", "delivered", "yesterday", "sms", ""),
                (msg.message_id, official, "acknowledged", at, "ack", ""),
            ]
            unknown_only = [("rainstorm-elsewhere.v3", "zone:3", "failed", at, "sms", "gone")]
            await svc.bus.publish(DISPATCH_WORK, msg.warning_id, encode_callbacks("sms", rows))
            await svc.bus.publish(DISPATCH_WORK, "rainstorm-elsewhere", encode_callbacks("sms", unknown_only))

            async def acknowledged() -> bool:
                return final_states(await receipts(svc.bus)).get(("sms", official)) == "acknowledged"

            await wait_for(acknowledged, 5, "the usable row applied")
            await wait_for(lambda: svc.stats.callbacks_unknown == 4, 5, "the unknown rows counted")
            traces = [r for r in await rejected(svc.bus) if r.source.startswith("dispatch.work")]
    assert len(traces) == 2, [t.detail for t in traces]
    mixed = next(t for t in traces if msg.warning_id in t.detail)
    assert mixed.reason == "schema"
    assert "2 malformed receipt row(s)" in mixed.detail
    assert "2 [unknown_message] receipt(s)" in mixed.detail
    assert "rainstorm-elsewhere.v1" in mixed.detail
    assert "1 receipt(s) for target(s) the message was never sent to" in mixed.detail
    assert "zone:999999999" in mixed.detail
    assert "rainstorm-elsewhere" in json.loads(mixed.raw)["receipts"][0][0]
    other = next(t for t in traces if t is not mixed)
    assert other.reason == "schema"
    assert other.detail.startswith("sms receipts for rainstorm-elsewhere: dropped 1 [unknown_message]")
    assert svc.stats.bad_records == 0, "nothing failed: the worker went on"
