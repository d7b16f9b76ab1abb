"""Ledger: transitions, idempotency, ordering, backoff, breaker, fail-over, cancellation,
escalation, compaction and snapshots."""

from __future__ import annotations

import json
import random
from datetime import timedelta
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.delivery import DeliveryReceipt, DeliveryState
from services.dispatch.channels.base import TargetResult
from services.dispatch.ledger import (
    BreakerPolicy,
    CircuitBreaker,
    Ledger,
    LedgerPolicy,
    RetiredKeys,
    RetryPolicy,
    Route,
    backoff_delay_s,
    progress,
)
from tests.unit.dispatch.factories import T0, chain, jobs

MSG = chain(1)[0]
MID = MSG.message_id


def receipt(
    target: str, state: DeliveryState, attempt: int = 1, minute: int = 0, channel: str = "sms"
) -> DeliveryReceipt:
    return DeliveryReceipt(
        message_id=MID,
        warning_id=MSG.warning_id,
        channel=channel,
        target_id=target,
        state=state,
        at=T0 + timedelta(minutes=minute),
        attempt=attempt,
    )


def fresh(n: int = 1, policy: LedgerPolicy | None = None, channel: str = "sms") -> Ledger:
    ledger = Ledger(policy, random.Random(7))
    ledger.register_message(MSG)
    ledger.track_many(jobs(MSG, channel, n))
    return ledger


# --------------------------------------------------------------------------- transitions


def test_happy_path_and_counters() -> None:
    ledger = fresh()
    assert ledger.summary(MID) == {"sms": {"pending": 1}}
    assert ledger.apply(receipt("t0", "submitted")) == "applied"
    assert ledger.apply(receipt("t0", "delivered")) == "applied"
    assert ledger.apply(receipt("t0", "acknowledged")) == "applied"
    assert ledger.summary(MID) == {"sms": {"acknowledged": 1}}
    assert ledger.delivered_population[MID]["sms"] == 1


def test_delivered_before_submitted_is_kept() -> None:
    ledger = fresh()
    assert ledger.apply(receipt("t0", "delivered")) == "applied"
    assert ledger.apply(receipt("t0", "submitted")) == "stale"
    entry = ledger.entry(MID, "sms", "t0")
    assert entry is not None
    assert entry.state == "delivered"
    assert ledger.stats.stale == 1


def test_duplicate_receipt_is_a_counted_no_op() -> None:
    ledger = fresh()
    ledger.apply(receipt("t0", "delivered"))
    assert ledger.apply(receipt("t0", "delivered")) == "duplicate"
    assert ledger.apply(receipt("t0", "delivered", attempt=2)) == "duplicate"  # delivered is delivered
    assert ledger.stats.duplicates == 2
    assert ledger.summary(MID) == {"sms": {"delivered": 1}}
    assert ledger.delivered_population[MID]["sms"] == 1


def test_unknown_and_late_receipts() -> None:
    ledger = fresh()
    assert ledger.apply(receipt("nobody", "delivered")) == "unknown"
    ledger.apply(receipt("t0", "delivered"))
    ledger.seal(MID)
    assert ledger.compact() == 1
    assert ledger.apply(receipt("t0", "delivered")) == "late"


def test_a_late_failure_of_an_old_attempt_is_stale() -> None:
    ledger = fresh()
    ledger.apply(receipt("t0", "failed", attempt=1))
    ledger.entries[MID][("sms", "t0")].next_attempt_at = None
    assert ledger.begin_attempt(MID, "sms", "t0", T0) == 2
    assert ledger.apply(receipt("t0", "submitted", attempt=2)) == "applied"
    assert ledger.apply(receipt("t0", "failed", attempt=1)) == "stale"


STATES: list[DeliveryState] = ["pending", "submitted", "failed", "delivered", "acknowledged", "skipped"]
receipt_strategy = st.tuples(st.sampled_from(STATES), st.integers(min_value=1, max_value=3))


@settings(max_examples=300, deadline=None)
@given(
    per_target=st.lists(st.lists(receipt_strategy, min_size=1, max_size=8), min_size=1, max_size=5),
    dup_factor=st.integers(min_value=1, max_value=3),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_any_receipt_order_never_regresses_and_never_double_counts(
    per_target: list[list[tuple[DeliveryState, int]]], dup_factor: int, seed: int
) -> None:
    ledger = fresh(len(per_target))
    stream = [(f"t{i}", state, attempt) for i, rs in enumerate(per_target) for state, attempt in rs] * dup_factor
    random.Random(seed).shuffle(stream)
    seen: dict[str, list[tuple[int, int, int]]] = {f"t{i}": [progress("pending", 1)] for i in range(len(per_target))}
    outcomes = {"applied": 0, "duplicate": 0, "stale": 0}
    for target, state, attempt in stream:
        outcomes[ledger.apply(receipt(target, state, attempt))] += 1
        entry = ledger.entry(MID, "sms", target)
        assert entry is not None
        seen[target].append(progress(entry.state, entry.attempt))
    assert sum(outcomes.values()) == len(stream)
    for i, rs in enumerate(per_target):
        target = f"t{i}"
        assert all(a <= b for a, b in pairwise(seen[target])), "state regressed"
        assert seen[target][-1] == max([progress("pending", 1)] + [progress(s, a) for s, a in rs])
    counts = ledger.summary(MID)["sms"]
    assert sum(counts.values()) == len(per_target)
    assert all(n >= 0 for n in ledger.counts[MID]["sms"].values())
    finals = [ledger.entry(MID, "sms", f"t{i}") for i in range(len(per_target))]
    for state in STATES:
        assert counts.get(state, 0) == sum(1 for e in finals if e is not None and e.state == state)
    reached = sum(1 for e in finals if e is not None and e.state in ("delivered", "acknowledged"))
    assert ledger.delivered_population.get(MID, {}).get("sms", 0) == reached
    [row] = ledger.coverage(MID, T0).townships
    assert (row.targets, row.delivered, row.reached_population) == (len(per_target), reached, reached)
    assert row.failed == counts.get("failed", 0)


# --------------------------------------------------------------------------- backoff


@pytest.mark.parametrize("attempt", [1, 2, 3, 6, 12])
def test_full_jitter_bounds(attempt: int) -> None:
    policy = RetryPolicy(base_s=2.0, cap_s=60.0)
    rng = random.Random(1)
    ceiling = min(60.0, 2.0 * 2 ** (attempt - 1))
    delays = [backoff_delay_s(attempt, policy, rng) for _ in range(2000)]
    assert all(0.0 <= d <= ceiling for d in delays)
    assert 0.4 * ceiling < sum(delays) / len(delays) < 0.6 * ceiling  # uniform: mean ≈ ceiling/2


def test_backoff_is_seeded_and_respects_retry_after() -> None:
    policy = RetryPolicy()
    a = [backoff_delay_s(3, policy, random.Random(42)) for _ in range(3)]
    b = [backoff_delay_s(3, policy, random.Random(42)) for _ in range(3)]
    assert a == b
    assert backoff_delay_s(1, policy, random.Random(0), retry_after_s=30.0) >= 30.0


# --------------------------------------------------------------------------- breaker


def test_breaker_opens_half_opens_and_closes() -> None:
    breaker = CircuitBreaker(BreakerPolicy(failure_threshold=3, open_s=10.0, half_open_probes=1))
    for t in range(3):
        assert breaker.allow(float(t))
        breaker.record(False, float(t))
    assert breaker.to_json()["state"] == "open"
    assert not breaker.allow(5.0)
    assert breaker.allow(12.5)  # the probe
    assert breaker.to_json()["state"] == "half_open"
    assert not breaker.allow(12.6)  # only one probe at a time
    breaker.record(False, 13.0)
    assert breaker.to_json()["state"] == "open"
    assert breaker.opened_at == 13.0
    assert breaker.allow(23.0)
    breaker.record(True, 23.5)
    assert breaker.to_json()["state"] == "closed"
    assert breaker.failures == 0


def test_breaker_counts_one_event_per_request_not_per_target() -> None:
    policy = LedgerPolicy(breaker=BreakerPolicy(failure_threshold=2))
    ledger = fresh(100, policy)
    down = [TargetResult.failed(f"t{i}", "p1", "http 503") for i in range(100)]
    ledger.apply_results(MID, "sms", down, T0)
    assert ledger.breaker("p1").state == "closed"  # 100 targets, one request
    ledger.apply_results(MID, "sms", down, T0)  # all stale now, but the request failed again
    assert ledger.breaker("p1").state == "open"
    assert not ledger.allow_send("p1", T0 + timedelta(seconds=1))


# --------------------------------------------------------------------------- fail-over


def test_retry_then_secondary_provider_then_other_channel() -> None:
    policy = LedgerPolicy(
        retry=RetryPolicy(base_s=1.0, cap_s=8.0, max_attempts=4, max_attempts_per_provider=2),
        routes={"sms": Route(providers=("p1", "p2"), fallback_channels=("app",))},
    )
    ledger = fresh(1, policy)
    now = T0
    actions = []
    for _ in range(4):
        entry = ledger.entry(MID, "sms", "t0")
        assert entry is not None
        summary = ledger.apply_results(MID, "sms", [TargetResult.failed("t0", entry.provider, "http 503")], now)
        decision = summary.decisions[0]
        actions.append((decision.action, decision.provider))
        if decision.action not in ("retry", "switch_provider"):
            break
        assert decision.at is not None
        now = decision.at
        due = ledger.due(now)
        assert [(d.target_id, d.provider) for d in due] == [("t0", decision.provider)]
        assert ledger.begin_attempt(MID, "sms", "t0", now) == due[0].attempt
    assert actions == [("retry", "p1"), ("switch_provider", "p2"), ("retry", "p2"), ("other_channel", "p2")]
    assert ledger.summary(MID) == {"sms": {"failed": 1}}
    assert ledger.begin_attempt(MID, "sms", "t0", now) is None


def test_permanent_failure_skips_retries_and_provider_switch() -> None:
    policy = LedgerPolicy(routes={"sms": Route(providers=("p1", "p2"))})
    ledger = fresh(1, policy)
    summary = ledger.apply_results(MID, "sms", [TargetResult.failed("t0", "p1", "invalid", retryable=False)], T0)
    assert summary.decisions[0].action == "give_up"


def test_open_breaker_moves_the_retry_to_the_secondary() -> None:
    policy = LedgerPolicy(
        breaker=BreakerPolicy(failure_threshold=1, open_s=60.0),
        routes={"sms": Route(providers=("p1", "p2"))},
    )
    ledger = fresh(1, policy)
    summary = ledger.apply_results(MID, "sms", [TargetResult.failed("t0", "p1", "http 503")], T0)
    assert summary.decisions[0].action == "switch_provider"
    assert summary.decisions[0].provider == "p2"


def test_retry_after_is_honoured() -> None:
    ledger = fresh(1)
    result = TargetResult.failed("t0", "p1", "throttled", retry_after_s=20.0)
    decision = ledger.apply_results(MID, "sms", [result], T0).decisions[0]
    assert decision.action == "retry"
    assert decision.at is not None
    assert decision.at >= T0 + timedelta(seconds=20)
    assert ledger.due(T0 + timedelta(seconds=19)) == []


# --------------------------------------------------------------------------- cancellation / expiry


def test_cancel_skips_pending_and_stops_retries_but_keeps_the_cancel_message() -> None:
    msgs = chain(2, last="Cancel")
    ledger = Ledger(rng=random.Random(0))
    for m in msgs:
        ledger.register_message(m)
    ledger.track_many(jobs(msgs[0], "sms", 10))
    ledger.apply_results(msgs[0].message_id, "sms", [TargetResult("t0", "submitted", "p1")], T0)
    ledger.apply_results(msgs[0].message_id, "sms", [TargetResult.failed("t1", "p1", "http 503")], T0)
    skipped = ledger.on_warning_message(msgs[1])
    assert skipped == 8  # t2..t9 were pending; t0 submitted, t1 failed (no more retries)
    assert ledger.summary(msgs[0].message_id) == {"sms": {"submitted": 1, "failed": 1, "skipped": 8}}
    assert ledger.due(T0 + timedelta(hours=1)) == []
    assert ledger.begin_attempt(msgs[0].message_id, "sms", "t1", T0 + timedelta(hours=1)) is None
    assert ledger.track_many(jobs(msgs[1], "sms", 3)) == 3
    assert ledger.summary(msgs[1].message_id) == {"sms": {"pending": 3}}
    # a late receipt for something already in flight still lands
    late = DeliveryReceipt(
        message_id=msgs[0].message_id,
        warning_id=msgs[0].warning_id,
        channel="sms",
        target_id="t0",
        state="delivered",
        at=T0,
    )
    assert ledger.apply(late) == "applied"


def test_expiry_stops_everything_pending() -> None:
    ledger = fresh(5)
    assert ledger.expire(T0 + timedelta(hours=5)) == 0
    assert ledger.expire(T0 + timedelta(hours=6)) == 5
    assert ledger.summary(MID) == {"sms": {"skipped": 5}}
    assert ledger.track_many(jobs(MSG, "sms", 6, prefix="x")) == 6
    assert ledger.summary(MID)["sms"]["skipped"] == 11  # new jobs of an expired message are skipped at once


# --------------------------------------------------------------------------- escalation


def test_unacknowledged_officials_escalate_once() -> None:
    ledger = Ledger()
    ledger.register_message(MSG)
    deadline = T0 + timedelta(minutes=15)
    ledger.track_many(jobs(MSG, "sms", 3, prefix="off:"), ack_deadline=deadline)
    ledger.apply(receipt("off:0", "acknowledged"))
    ledger.apply(receipt("off:1", "delivered"))
    assert ledger.escalations_due(deadline - timedelta(seconds=1)) == []
    due = ledger.escalations_due(deadline)
    assert sorted((e.target_id, e.state) for e in due) == [("off:1", "delivered"), ("off:2", "pending")]
    assert ledger.escalations_due(deadline + timedelta(hours=1)) == []


# --------------------------------------------------------------------------- compaction / snapshot


def test_compaction_drops_finished_entries_and_keeps_counts() -> None:
    n = 20_000
    ledger = fresh(n)
    for i in range(n):
        ledger.apply(receipt(f"t{i}", "delivered" if i % 10 else "failed"))
        if i % 10 == 0:
            ledger.entries[MID][("sms", f"t{i}")].final = True
    before = ledger.summary(MID)
    assert ledger.compact() == 0  # not sealed: the fan-out may still be adding jobs
    ledger.seal(MID)
    assert ledger.compact() == n
    assert ledger.live_entries() == 0
    assert ledger.summary(MID) == before == {"sms": {"delivered": n - n // 10, "failed": n // 10}}
    assert ledger.track_many(jobs(MSG, "sms", 5)) == 0  # a redelivered job of a sealed message
    assert ledger.stats.duplicate_jobs == 5


def retiring(n: int) -> Ledger:
    ledger = Ledger(rng=random.Random(7), retire_finished=True)
    ledger.register_message(MSG)
    ledger.track_many(jobs(MSG, "sms", n))
    return ledger


def test_retirement_drops_delivered_entries_one_call_after_they_finished() -> None:
    ledger = retiring(6)
    for target in ("t0", "t1"):
        ledger.apply(receipt(target, "submitted"))
        ledger.apply(receipt(target, "delivered"))
    ledger.apply(receipt("t2", "failed"))
    assert ledger.retire() == (0, [])  # the grace period: finished since the last call
    assert ledger.apply(receipt("t0", "delivered")) == "duplicate"  # still known within it
    ledger.apply(receipt("t3", "delivered"))
    removed, gone = ledger.retire()
    assert removed == 2
    assert sorted(t for _, _, t, _ in gone) == ["t0", "t1"]
    assert all(entry.state == "delivered" for *_, entry in gone)
    counts = {"sms": {"pending": 2, "delivered": 3, "failed": 1}}
    assert ledger.summary(MID) == counts  # retirement never changes the counters
    assert ledger.apply(receipt("t1", "delivered")) == "late"
    assert ledger.apply(receipt("t1", "acknowledged")) == "late"
    assert ledger.apply(receipt("t9", "delivered")) == "unknown"  # never sent: told apart while open
    assert ledger.retire(collect=False) == (1, [])  # t3
    assert ledger.live_entries() == 3  # t2 (failed: a late "delivered" may upgrade it), t4, t5
    assert ledger.stats.retired == 3
    assert ledger.summary(MID) == counts


def test_a_retired_target_is_never_tracked_again_unless_the_caller_says_fresh() -> None:
    ledger = retiring(3)
    ledger.apply(receipt("t0", "delivered"))
    ledger.retire()
    ledger.retire()
    assert ledger.entry(MID, "sms", "t0") is None
    assert ledger.knows_target(MID, "sms", "t0")
    assert ledger.knows_target(MID, "sms", "t1")
    assert not ledger.knows_target(MID, "sms", "t9")
    assert not ledger.knows_target(MID, "broadcast", "t0")
    assert ledger.track_many(jobs(MSG, "sms", 4)) == 1  # t3 only: t0 retired, t1/t2 live
    assert ledger.stats.duplicate_jobs == 3
    again = jobs(MSG, "sms", 1)[0]
    assert ledger.track(again, fresh=True)  # a fan-out past its cursor does not search
    ledger.seal(MID)
    ledger.compact()
    assert MID not in ledger.retired  # sealed: every job is refused anyway
    assert not ledger.track(jobs(MSG, "sms", 1)[0], fresh=True)


def test_entries_awaiting_an_acknowledgement_are_not_retired_until_acknowledged() -> None:
    ledger = Ledger(rng=random.Random(7), retire_finished=True)
    ledger.register_message(MSG)
    ledger.track_many(jobs(MSG, "sms", 2, prefix="off:"), ack_deadline=T0 + timedelta(minutes=15))
    ledger.apply(receipt("off:0", "delivered"))
    ledger.apply(receipt("off:1", "delivered"))
    ledger.retire()
    assert ledger.retire() == (0, [])
    assert ledger.apply(receipt("off:0", "acknowledged")) == "applied"
    ledger.retire()
    removed, _ = ledger.retire()
    assert removed == 1
    assert ledger.entry(MID, "sms", "off:1") is not None
    assert ledger.summary(MID) == {"sms": {"acknowledged": 1, "delivered": 1}}


def test_a_ledger_without_retirement_keeps_finished_entries_until_compaction() -> None:
    ledger = fresh(2)
    ledger.apply(receipt("t0", "delivered"))
    assert ledger.retire() == (0, [])
    assert ledger.retire() == (0, [])
    assert ledger.live_entries() == 2


@settings(max_examples=30, deadline=None)
@given(batches=st.lists(st.lists(st.integers(-(2**63), 2**63 - 1), max_size=300), max_size=12))
def test_retired_keys_membership_is_exact(batches: list[list[int]]) -> None:
    keys = RetiredKeys()
    seen: set[int] = set()
    added = 0
    for batch in batches:
        keys.add(batch)
        seen.update(batch)
        added += len(batch)
        assert len(keys) == added
        assert len(keys._runs) <= max(1, added).bit_length() + 1
    assert all(k in keys for k in seen)
    rng = random.Random(len(seen))
    assert not any(k in keys for k in (rng.randrange(-(2**63), 2**63) for _ in range(200)) if k not in seen)
    assert "not a hash" not in keys
    assert keys.nbytes == 8 * added


def test_snapshot_roundtrip_through_json() -> None:
    policy = LedgerPolicy(routes={"sms": Route(providers=("p1", "p2"))})
    ledger = fresh(6, policy)
    ledger.track_many(jobs(MSG, "sms", 2, prefix="off:"), ack_deadline=T0 + timedelta(minutes=5))
    ledger.apply(receipt("t0", "delivered"))
    ledger.apply_results(MID, "sms", [TargetResult.failed("t1", "p1", "http 503", retry_after_s=10.0)], T0)
    ledger.cancel_message("other.v1")
    data = json.loads(json.dumps(ledger.snapshot()))
    restored = Ledger.restore(data, policy, random.Random(7))
    assert restored.snapshot() == ledger.snapshot()
    later = T0 + timedelta(minutes=10)
    assert restored.due(later) == ledger.due(later)
    assert restored.escalations_due(later) == ledger.escalations_due(later)


def test_coverage_report_per_township_and_channel() -> None:
    msg = chain(1, towns=("330304108", "330304008"))[0]
    ledger = Ledger(rng=random.Random(0))
    ledger.register_message(msg)
    batch = jobs(msg, "broadcast", 4)
    batch[2:] = [j.model_copy(update={"township_code": "330304008", "population": 500}) for j in batch[2:]]
    ledger.track_many(batch)
    ledger.apply_results(msg.message_id, "broadcast", [TargetResult(j.target_id, "submitted", "p") for j in batch], T0)
    for target, state in (("t0", "delivered"), ("t1", "delivered"), ("t2", "failed")):
        ledger.apply_callback(
            DeliveryReceipt(
                message_id=msg.message_id,
                warning_id=msg.warning_id,
                channel="broadcast",
                target_id=target,
                state=state,
                at=T0,
            )
        )
    report = ledger.coverage(msg.message_id, T0)
    rows = {r.township_code: r for r in report.townships}
    assert (rows["330304108"].delivered, rows["330304108"].reached_population) == (2, 2)
    assert (rows["330304008"].targets, rows["330304008"].targeted_population) == (2, 1000)
    assert (rows["330304008"].delivered, rows["330304008"].failed) == (0, 1)
    assert report.unreached_townships == ("330304008",)
    assert not report.complete  # t3 still submitted, t2 has a retry scheduled
