"""Memory: finished deliveries leave the live ledger while the fan-out runs, and the
account stays exact — in memory, in the store, and after a restart from the store.

::

    app fan-out (push simulator, receipts 5 ms later)
      delivered ──(retire_after_s)──► entry dropped, outcome kept in counters / slice "gone"
      duplicate report after that   ──► "late" (a no-op, counted)
      restart from the store         ──► same per-state and per-township numbers

(While the message is open a report for a target it was never sent to is "unknown" —
``tests/unit/dispatch/test_ledger.py``; after the seal's compaction it cannot be told from
a dropped entry and counts "late".)
"""

from __future__ import annotations

from services.dispatch.gateways import PushGatewayConfig
from services.dispatch.orchestrator import DispatchSettings, MemoryLedgerStore
from services.dispatch.processor import DISPATCH_WORK, encode_callbacks
from tests.integration.dispatch.test_service_support import (
    CODES,
    audience,
    coverage,
    fast_policy,
    final_states,
    gateways,
    publish,
    receipts,
    sealed,
    service,
    wait_for,
    warning,
)


def settings_for(push_url: str, codes: tuple[str, ...], per_township: int) -> DispatchSettings:
    return DispatchSettings.model_validate(
        {
            "channels": {
                "app": {
                    "providers": [{"provider": "push", "base_url": push_url, "concurrency": 2}],
                    "batch_size": 200,
                    "max_inflight": 1,
                }
            },
            "audience": audience(codes, app_per_township=per_township).model_dump(),
            "slice_targets": 100,
            **fast_policy(retire_after_s=0.05),
        }
    )


async def test_finished_entries_are_retired_during_the_fan_out_and_the_account_survives_a_restart() -> None:
    codes = CODES[20:30]
    store = MemoryLedgerStore()
    async with gateways(push=PushGatewayConfig(seed=31, receipt_delay_ms=5, latency_ms=2)) as gw:
        assert gw.push is not None
        settings = settings_for(gw.push.url, codes, per_township=300)
        async with service(settings, store=store) as first:
            msg = warning(codes)
            expected = first.dispatcher.targeting.audience_size(msg, "app")
            await publish(first.bus, msg)
            peak_live = 0

            async def all_final() -> bool:
                nonlocal peak_live
                peak_live = max(peak_live, first.dispatcher.ledger.live_entries())
                states = first.dispatcher.summary(msg.message_id).get("app", {})
                return states.get("delivered", 0) + states.get("failed", 0) == expected

            await wait_for(all_final, 20, "every push final")
            await wait_for(lambda: sealed(first, msg.message_id), 10, "sealed")
            summary = first.dispatcher.summary(msg.message_id)
            report = first.dispatcher.ledger.coverage(msg.message_id, msg.sent_at)
            states = final_states(await receipts(first.bus), msg.message_id)
            retired = first.stats.retired_entries
            # a provider repeating an old report, and a report about a target never sent to
            delivered_target = next(t for (_, t), s in states.items() if s == "delivered")
            rows = [
                (msg.message_id, delivered_target, "delivered", "2024-07-25T06:30:00Z", "push", ""),
                (msg.message_id, "tok_never_sent", "delivered", "2024-07-25T06:30:00Z", "push", ""),
            ]
            late_before = first.stats.callbacks_late
            await first.bus.publish(DISPATCH_WORK, msg.warning_id, encode_callbacks("app", rows))
            await wait_for(lambda: first.stats.callbacks_late == late_before + 2, 5, "both counted late")
            bus = first.bus
        async with service(settings, bus=bus, store=store) as second:
            assert second.stats.restored_warnings == 1
            restored = second.dispatcher.summary(msg.message_id)
            restored_report = second.dispatcher.ledger.coverage(msg.message_id, msg.sent_at)
            assert second.dispatcher.ledger.live_entries() == 0
            published = await coverage(bus)
    assert len(states) == expected
    assert summary == {"app": {"delivered": expected}}
    assert retired > expected // 2, "most entries left the live ledger before the seal"
    assert peak_live < expected, "the live ledger never held the whole fan-out"
    assert restored == summary
    assert restored_report.townships == report.townships
    assert sum(t.delivered for t in report.townships) == expected
    assert published[-1].complete
    assert first.stats.callbacks_unknown == 0
