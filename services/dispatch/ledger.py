"""The delivery ledger: a pure state machine per ``(message_id, channel, target_id)``.

No I/O and no wall clock: every method takes the event time (``datetime``) it applies at,
and randomness (backoff jitter) comes from an injected ``random.Random``. The dispatcher
feeds it send results and provider receipts, asks it what is due, and publishes its
snapshot to a compacted topic.

States and order
----------------
::

    pending ──► submitted ──► delivered ──► acknowledged
       │            │  ▲            ▲
       │            ▼  │            │ (a late "delivered" still wins)
       │          failed ──retry──► pending (attempt + 1)
       ▼
    skipped   (cancelled / expired / superseded before it was sent)

A receipt is applied only if it moves the entry **forward** in the order::

    progress(state, attempt) = (tier, attempt if tier == 0 else 0, rank)
    tier: 0 in-flight states, 1 delivered, 2 acknowledged
    rank: pending 0 < skipped 1 < submitted 2 < failed 3 < delivered 4 < acknowledged 5

so (1) an equal receipt is a **duplicate** — a no-op, counted; (2) a lower one is
**stale** — ignored, counted (e.g. "submitted" after "delivered": the delivered receipt
that overtook the ack is kept); (3) "delivered" beats anything of any attempt; (4) a retry
(``begin_attempt``) raises the attempt, so the new ``pending`` is progress too. The final
state is therefore the maximum over the receipts seen, whatever their order.

Per-message counters (state → entries, delivered population, and per township/channel the
numbers of ``schemas.coverage.CoverageReport``) change only on an applied transition, so
duplicates and reorderings can never double-count, and they survive compaction.

Failure handling, in order (``_decide`` after every ``failed``)
------------------------------------------------------------------
1. cancelled/expired warning → give up (nothing more is sent).
2. retryable, attempts on this provider < ``max_attempts_per_provider``, total attempts <
   ``max_attempts``, provider's breaker not open → **retry** after
   ``max(retry_after_s, uniform(0, min(cap_s, base_s · 2^(attempt−1))))`` ("full jitter").
3. retryable, and the route has a next provider whose breaker is not open → **switch
   provider** (retry at once). A permanent failure (invalid number/token) skips this: it
   is the target's fault, not the provider's.
4. the route's fallback channel → **other channel** (this entry ends failed; the
   dispatcher creates a job on that channel).
5. otherwise **give up** (final failed).

Circuit breaker per provider: ``closed`` → ``open`` after ``failure_threshold``
consecutive failed requests; after ``open_s`` one probe is let through (``half_open``); a
success closes it, a failure re-opens it. One breaker event per ``apply_results`` call
(≈ one provider request), so a 503 on a 100-number batch is one failure, not 100.

Escalation: entries tracked with ``ack_deadline`` (officials) that are not
``acknowledged`` by then are returned once by ``escalations_due``.

Compaction: finished entries (acknowledged; delivered without a pending ack; skipped;
final failures) are dropped by ``compact``; the per-message counters already hold their
outcome. A receipt for a compacted entry is counted as ``late`` and ignored.

Retirement (``Ledger(retire_finished=True)``, what the dispatcher uses): entries that reach
``delivered``/``acknowledged`` and are finished are also dropped *while* the fan-out runs,
one ``retire()`` call after they finished (the dispatcher calls it every few seconds, so a
duplicate report arriving within that grace is still counted ``duplicate``). Only the
in-flight part of a million-target fan-out is then held as Python objects; what a retired
entry leaves behind is its key's 64-bit hash in a sorted NumPy run (``RetiredKeys``), so
``track`` stays idempotent for fall-back and escalation targets. Failed and skipped entries
wait for ``compact`` (a late "delivered" may still upgrade them).
"""

from __future__ import annotations

import heapq
import random
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from schemas.coverage import CoverageReport, TownshipCoverage
from schemas.delivery import DeliveryJob, DeliveryReceipt, DeliveryState
from schemas.warning import WarningMessage
from services.dispatch.channels.base import TargetResult

RANK: dict[str, int] = {"pending": 0, "skipped": 1, "submitted": 2, "failed": 3, "delivered": 4, "acknowledged": 5}
STATES: tuple[DeliveryState, ...] = ("pending", "skipped", "submitted", "failed", "delivered", "acknowledged")

ApplyOutcome = Literal["applied", "duplicate", "stale", "unknown", "late"]
Action = Literal["none", "retry", "switch_provider", "other_channel", "give_up"]
BreakerState = Literal["closed", "open", "half_open"]


def progress(state: str, attempt: int) -> tuple[int, int, int]:
    tier = 2 if state == "acknowledged" else 1 if state == "delivered" else 0
    return (tier, attempt if tier == 0 else 0, RANK[state])


def _ts(at: datetime) -> float:
    return at.timestamp()


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


# --------------------------------------------------------------------------- policies


class RetryPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    base_s: float = Field(default=2.0, gt=0)
    cap_s: float = Field(default=300.0, gt=0)
    max_attempts: int = Field(default=6, ge=1, description="per entry, across providers")
    max_attempts_per_provider: int = Field(default=3, ge=1)


class BreakerPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    failure_threshold: int = Field(default=5, ge=1, description="consecutive failed requests that open it")
    open_s: float = Field(default=30.0, gt=0, description="how long it stays open before a probe")
    half_open_probes: int = Field(default=1, ge=1)


class Route(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    providers: tuple[str, ...] = Field(default=(), description="primary first, then secondaries")
    fallback_channels: tuple[str, ...] = ()


class LedgerPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    retry: RetryPolicy = RetryPolicy()
    breaker: BreakerPolicy = BreakerPolicy()
    routes: dict[str, Route] = Field(default_factory=dict, description="channel → providers and fallbacks")


def backoff_delay_s(attempt: int, policy: RetryPolicy, rng: random.Random, retry_after_s: float | None = None) -> float:
    """Exponential backoff with full jitter; never sooner than the provider's Retry-After."""
    ceiling = min(policy.cap_s, policy.base_s * 2 ** max(0, attempt - 1))
    delay = rng.uniform(0.0, ceiling)
    return max(delay, retry_after_s or 0.0)


# --------------------------------------------------------------------------- breaker


@dataclass
class CircuitBreaker:
    policy: BreakerPolicy
    state: BreakerState = "closed"
    failures: int = 0
    opened_at: float = 0.0
    probes: int = 0

    def allow(self, now: float) -> bool:
        """May a request go to this provider at ``now``? (Counts half-open probes.)"""
        if self.state == "open" and now >= self.opened_at + self.policy.open_s:
            self.state, self.probes = "half_open", 0
        if self.state == "closed":
            return True
        if self.state == "half_open" and self.probes < self.policy.half_open_probes:
            self.probes += 1
            return True
        return False

    def is_open(self, now: float) -> bool:
        return self.state == "open" and now < self.opened_at + self.policy.open_s

    def record(self, success: bool, now: float) -> None:
        if success:
            self.state, self.failures, self.probes = "closed", 0, 0
            return
        self.failures += 1
        if self.state == "half_open" or self.failures >= self.policy.failure_threshold:
            self.state, self.opened_at, self.probes = "open", now, 0

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state, "failures": self.failures, "opened_at": self.opened_at, "probes": self.probes}


# --------------------------------------------------------------------------- entries


@dataclass(slots=True)
class Entry:
    state: DeliveryState
    attempt: int = 1
    provider: str = ""
    provider_attempts: int = 0
    reason: str = ""
    population: int = 0
    township_code: str = ""
    provider_message_id: str = ""
    next_attempt_at: float | None = None
    next_provider: str = ""
    final: bool = False
    ack_deadline: float | None = None
    escalated: bool = False

    def finished(self) -> bool:
        if self.state in ("acknowledged", "skipped"):
            return True
        if self.state == "delivered":
            return self.ack_deadline is None or self.escalated
        return self.state == "failed" and self.final


_ENTRY_FIELDS = tuple(Entry.__dataclass_fields__)


@dataclass
class MessageMeta:
    warning_id: str
    expires_at: float | None = None
    cancelled: str = ""
    """Why nothing more is sent ("cancelled", "expired", "superseded"), or ""."""
    sealed: bool = False
    """Fan-out finished: no new jobs are accepted, and finished entries may be compacted."""


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    message_id: str
    channel: str
    target_id: str
    at: datetime | None = None
    provider: str = ""
    fallback_channel: str = ""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Due:
    """A retry whose time has come: call ``begin_attempt`` then send on ``provider``."""

    message_id: str
    channel: str
    target_id: str
    provider: str
    attempt: int


@dataclass(frozen=True, slots=True)
class Escalation:
    message_id: str
    channel: str
    target_id: str
    state: DeliveryState
    deadline: datetime


@dataclass
class LedgerStats:
    applied: int = 0
    duplicates: int = 0
    stale: int = 0
    unknown: int = 0
    late: int = 0
    duplicate_jobs: int = 0
    compacted: int = 0
    retired: int = 0


class RetiredKeys:
    """The keys of a message's retired entries, as 64-bit hashes in sorted NumPy runs.

    A new run swallows every older run that is less than twice its size, so run sizes at
    least double from the newest to the oldest: at most log2(n) + 1 runs, a membership test
    is that many binary searches, and each key is merged O(log n) times. A million keys take
    8 MB of array memory and no Python objects, so they never pin the object allocator's
    arenas. ``hash`` is per process, which is all this needs: the set lives and dies with
    the ledger (it is not part of a snapshot).
    """

    __slots__ = ("_runs", "_size")

    def __init__(self) -> None:
        self._runs: list[np.ndarray[Any, np.dtype[np.int64]]] = []
        self._size = 0

    @staticmethod
    def key_hash(channel: str, target_id: str) -> int:
        return hash((channel, target_id))

    def add(self, hashes: Sequence[int]) -> None:
        if not hashes:
            return
        run = np.sort(np.fromiter(hashes, dtype=np.int64, count=len(hashes)))
        while self._runs and len(self._runs[-1]) <= 2 * len(run):
            run = np.sort(np.concatenate((self._runs.pop(), run)), kind="stable")
        self._runs.append(run)
        self._size += len(hashes)

    def __contains__(self, key_hash: object) -> bool:
        if not isinstance(key_hash, int):
            return False
        for run in self._runs:
            i = int(np.searchsorted(run, key_hash))
            if i < len(run) and int(run[i]) == key_hash:
                return True
        return False

    def __len__(self) -> int:
        return self._size

    @property
    def nbytes(self) -> int:
        return sum(int(run.nbytes) for run in self._runs)


@dataclass
class ResultsSummary:
    outcomes: dict[str, int] = field(default_factory=dict)
    decisions: list[Decision] = field(default_factory=list)


Key = tuple[str, str]  # (channel, target_id) within a message

_ZERO_ROW = (0, 0, 0, 0, 0)


class Ledger:
    """Delivery states, retries, breakers, cancellation, escalation and compaction."""

    def __init__(
        self, policy: LedgerPolicy | None = None, rng: random.Random | None = None, *, retire_finished: bool = False
    ) -> None:
        self.policy = policy or LedgerPolicy()
        self.retire_finished = retire_finished
        """Note entries that become delivered/acknowledged, for ``retire`` (see the module docstring)."""
        self.retired: dict[str, RetiredKeys] = {}
        self._finishing: list[tuple[str, str, str]] = []
        self._finished: list[tuple[str, str, str]] = []
        self.rng = rng or random.Random(0)
        self.messages: dict[str, MessageMeta] = {}
        self.entries: dict[str, dict[Key, Entry]] = {}
        self.counts: dict[str, dict[str, dict[str, int]]] = {}
        """message_id → channel → state → entries (live; compaction does not change it)."""
        self.delivered_population: dict[str, dict[str, int]] = {}
        self.township_counts: dict[str, dict[str, array[int]]] = {}
        """message_id → "channel|township" → [targets, targeted_pop, delivered, reached_pop, failed]
        (machine integers: an update allocates no int object that could outlive the fan-out
        somewhere in the middle of the allocator's arenas)."""
        self._rows: dict[str, dict[str, dict[str, array[int]]]] = {}
        """message_id → channel → township → the same row (found without building a key)."""
        self.compacted_messages: set[str] = set()
        self.breakers: dict[str, CircuitBreaker] = {}
        self.stats = LedgerStats()
        self._retry_heap: list[tuple[float, str, str, str]] = []
        self._ack_heap: list[tuple[float, str, str, str]] = []

    # -- registration -----------------------------------------------------------

    def register_message(self, msg: WarningMessage) -> None:
        """Know a message's warning and expiry (for cancellation and expiry)."""
        meta = self.messages.setdefault(msg.message_id, MessageMeta(msg.warning_id))
        meta.expires_at = _ts(msg.expires_at)

    def track(
        self,
        job: DeliveryJob,
        *,
        provider: str = "",
        ack_deadline: datetime | None = None,
        fresh: bool = False,
    ) -> bool:
        """Start tracking a job as ``pending`` (attempt 1). Idempotent: False if known
        (live, compacted after the seal, or retired). ``fresh``: the caller knows the key
        was never tracked (a fan-out past its cursor), so the retired keys are not searched."""
        meta = self.messages.get(job.message_id)
        if meta is None:  # not setdefault: a MessageMeta per call costs more than the rest of track
            meta = self.messages[job.message_id] = MessageMeta(job.warning_id)
        key = (job.channel, job.target_id)
        if meta.sealed or key in self.entries.get(job.message_id, {}):
            # a sealed message's fan-out is complete: a job seen again is a redelivery
            self.stats.duplicate_jobs += 1
            return False
        if not fresh:
            retired = self.retired.get(job.message_id)
            if retired is not None and hash(key) in retired:
                self.stats.duplicate_jobs += 1
                return False
        table = self.entries.setdefault(job.message_id, {})
        state: DeliveryState = "skipped" if meta.cancelled else "pending"
        entry = Entry(
            state,
            provider=provider or self._primary(job.channel),
            provider_attempts=1,
            population=job.population,
            township_code=job.township_code,
        )
        if ack_deadline is not None:
            entry.ack_deadline = _ts(ack_deadline)
            heapq.heappush(self._ack_heap, (entry.ack_deadline, job.message_id, job.channel, job.target_id))
        if meta.cancelled:
            entry.reason = meta.cancelled
        table[key] = entry
        row = self._township_row(job.message_id, job.channel, job.township_code)
        row[0] += 1
        row[1] += job.population
        self._count(job.message_id, job.channel, state, +1, entry)
        return True

    def track_many(
        self, jobs: Iterable[DeliveryJob], *, provider: str = "", ack_deadline: datetime | None = None
    ) -> int:
        """``track`` each job; returns how many were new."""
        return sum(self.track(job, provider=provider, ack_deadline=ack_deadline) for job in jobs)

    def _was_dropped(self, message_id: str, channel: str, target_id: str) -> bool:
        """Of a message with dropped entries: was this one of them? Exact while the message
        is open (its retired keys); after the seal's compaction it cannot be told, so yes."""
        meta = self.messages.get(message_id)
        if meta is None or meta.sealed:
            return True
        retired = self.retired.get(message_id)
        return retired is not None and hash((channel, target_id)) in retired

    def knows_target(self, message_id: str, channel: str, target_id: str) -> bool:
        """Was this target ever tracked for the message (live or retired)?"""
        if (channel, target_id) in self.entries.get(message_id, {}):
            return True
        retired = self.retired.get(message_id)
        return retired is not None and hash((channel, target_id)) in retired

    def seal(self, message_id: str) -> None:
        """Declare the fan-out of ``message_id`` complete (after the last ``track``).

        From then on a repeated job (a redelivered record) is rejected even after its entry
        was compacted, and ``compact`` may drop the message's finished entries.
        """
        self.messages.setdefault(message_id, MessageMeta(message_id.rpartition(".v")[0])).sealed = True

    def _primary(self, channel: str) -> str:
        route = self.policy.routes.get(channel)
        return route.providers[0] if route and route.providers else ""

    def entry(self, message_id: str, channel: str, target_id: str) -> Entry | None:
        return self.entries.get(message_id, {}).get((channel, target_id))

    # -- counters --------------------------------------------------------------

    def _township_row(self, message_id: str, channel: str, township: str) -> array[int]:
        by_channel = self._rows.get(message_id)
        if by_channel is not None:
            towns = by_channel.get(channel)
            if towns is not None:
                row = towns.get(township)
                if row is not None:
                    return row
        rows = self.township_counts.setdefault(message_id, {})
        key = f"{channel}|{township}"
        row = rows.get(key)
        if row is None:
            row = rows[key] = array("q", _ZERO_ROW)
        self._rows.setdefault(message_id, {}).setdefault(channel, {})[township] = row
        return row

    def _count(self, message_id: str, channel: str, state: str, delta: int, entry: Entry) -> None:
        per_channel = self.counts.setdefault(message_id, {}).setdefault(channel, {})
        per_channel[state] = per_channel.get(state, 0) + delta
        if state in ("delivered", "acknowledged"):
            pop = self.delivered_population.setdefault(message_id, {})
            pop[channel] = pop.get(channel, 0) + delta * entry.population
            row = self._township_row(message_id, channel, entry.township_code)
            row[2] += delta
            row[3] += delta * entry.population
        elif state == "failed":
            self._township_row(message_id, channel, entry.township_code)[4] += delta

    def _move(self, message_id: str, channel: str, entry: Entry, state: DeliveryState) -> None:
        self._count(message_id, channel, entry.state, -1, entry)
        entry.state = state
        self._count(message_id, channel, state, +1, entry)

    def summary(self, message_id: str) -> dict[str, dict[str, int]]:
        """channel → state → entries (zero counts omitted)."""
        return {ch: {s: n for s, n in states.items() if n} for ch, states in self.counts.get(message_id, {}).items()}

    # -- receipts -----------------------------------------------------------------

    def apply(self, receipt: DeliveryReceipt, *, attempt: int | None = None) -> ApplyOutcome:
        """Apply one receipt (idempotent, order-tolerant; see the module docstring).

        ``attempt`` overrides ``receipt.attempt``. Provider reports that do not know our
        attempt number go through ``apply_callback`` instead.
        """
        return self.apply_state(
            receipt.message_id,
            receipt.channel,
            receipt.target_id,
            receipt.state,
            attempt if attempt is not None else receipt.attempt,
            receipt.provider,
            receipt.reason,
        )

    def apply_state(
        self,
        message_id: str,
        channel: str,
        target_id: str,
        state: DeliveryState,
        attempt: int,
        provider: str = "",
        reason: str = "",
    ) -> ApplyOutcome:
        """``apply`` from the receipt's fields (no model built: the hot path of a fan-out)."""
        table = self.entries.get(message_id)
        entry = table.get((channel, target_id)) if table else None
        if entry is None:
            if message_id in self.compacted_messages and self._was_dropped(message_id, channel, target_id):
                self.stats.late += 1
                return "late"
            self.stats.unknown += 1
            return "unknown"
        new = progress(state, attempt)
        old = progress(entry.state, entry.attempt)
        if new == old:
            self.stats.duplicates += 1
            return "duplicate"
        if new < old:
            self.stats.stale += 1
            return "stale"
        if new[0] == 0:
            entry.attempt = new[1]
        self._move(message_id, channel, entry, state)
        if provider:
            entry.provider = provider
        entry.reason = reason
        if state in ("delivered", "acknowledged"):
            entry.next_attempt_at = None
            entry.final = True
            if self.retire_finished:
                self._finishing.append((message_id, channel, target_id))
        self.stats.applied += 1
        return "applied"

    def apply_callback(
        self, receipt: DeliveryReceipt, at: datetime | None = None
    ) -> tuple[ApplyOutcome, Decision | None]:
        """A provider's delivery report, which does not know our attempt number: it is
        taken to be about the entry's current attempt. A ``failed`` report triggers the
        failure decision (retry / switch / other channel / give up) at ``at`` (default:
        the receipt's time)."""
        return self.apply_report(
            receipt.message_id,
            receipt.channel,
            receipt.target_id,
            receipt.state,
            at or receipt.at,
            receipt.provider,
            receipt.reason,
            receipt.attempt,
        )

    def apply_report(
        self,
        message_id: str,
        channel: str,
        target_id: str,
        state: DeliveryState,
        at: datetime,
        provider: str = "",
        reason: str = "",
        attempt_if_unknown: int = 1,
    ) -> tuple[ApplyOutcome, Decision | None]:
        """``apply_callback`` from the report's fields (no model built)."""
        entry = self.entry(message_id, channel, target_id)
        outcome = self.apply_state(
            message_id, channel, target_id, state, entry.attempt if entry else attempt_if_unknown, provider, reason
        )
        decision = None
        if outcome == "applied" and state == "failed" and entry is not None:
            decision = self._decide(message_id, channel, target_id, entry, _ts(at), retryable=True, retry_after_s=None)
        return outcome, decision

    # -- send results -------------------------------------------------------------

    def apply_results(
        self,
        message_id: str,
        channel: str,
        results: Sequence[TargetResult],
        at: datetime,
    ) -> ResultsSummary:
        """Fold a channel's ``send`` results in (at the entries' current attempts), feed the
        provider's breaker once, then decide what to do about each new failure."""
        now = _ts(at)
        summary = ResultsSummary()
        table = self.entries.get(message_id, {})
        successes = failures = 0
        provider = ""
        to_decide: list[tuple[TargetResult, Entry]] = []
        for result in results:
            provider = provider or result.provider
            entry = table.get((channel, result.target_id))
            outcome = self.apply_state(
                message_id,
                channel,
                result.target_id,
                result.state,
                entry.attempt if entry else 1,
                result.provider[:64],
                result.reason[:300],
            )
            summary.outcomes[outcome] = summary.outcomes.get(outcome, 0) + 1
            if entry is not None and result.provider_message_id and outcome == "applied":
                entry.provider_message_id = result.provider_message_id
            if result.state != "failed":
                successes += 1
                continue
            failures += result.retryable
            if outcome == "applied" and entry is not None:
                to_decide.append((result, entry))
        if provider and (successes or failures):
            self.breaker(provider).record(successes > 0, now)
        for result, entry in to_decide:
            summary.decisions.append(
                self._decide(
                    message_id,
                    channel,
                    result.target_id,
                    entry,
                    now,
                    retryable=result.retryable,
                    retry_after_s=result.retry_after_s,
                )
            )
        return summary

    def _warning_of(self, message_id: str) -> str:
        meta = self.messages.get(message_id)
        return meta.warning_id if meta else message_id.rpartition(".v")[0] or message_id

    # -- failure decisions ------------------------------------------------------------

    def breaker(self, provider: str) -> CircuitBreaker:
        if provider not in self.breakers:
            self.breakers[provider] = CircuitBreaker(self.policy.breaker)
        return self.breakers[provider]

    def _stopped(self, message_id: str, now: float) -> str:
        meta = self.messages.get(message_id)
        if meta is None:
            return ""
        if meta.cancelled:
            return meta.cancelled
        if meta.expires_at is not None and now >= meta.expires_at:
            return "expired"
        return ""

    def _decide(
        self,
        message_id: str,
        channel: str,
        target_id: str,
        entry: Entry,
        now: float,
        *,
        retryable: bool,
        retry_after_s: float | None,
    ) -> Decision:
        retry = self.policy.retry
        route = self.policy.routes.get(channel, Route())
        stopped = self._stopped(message_id, now)

        def final(action: Action, reason: str, fallback: str = "") -> Decision:
            entry.final = True
            entry.next_attempt_at = None
            return Decision(action, message_id, channel, target_id, None, entry.provider, fallback, reason)

        if stopped:
            return final("give_up", stopped)
        if (
            retryable
            and entry.provider_attempts < retry.max_attempts_per_provider
            and entry.attempt < retry.max_attempts
            and not self.breaker(entry.provider).is_open(now)
        ):
            at = now + backoff_delay_s(entry.attempt, retry, self.rng, retry_after_s)
            return self._schedule(message_id, channel, target_id, entry, at, entry.provider, "retry")
        if retryable and entry.attempt < retry.max_attempts and entry.provider in route.providers:
            for candidate in route.providers[route.providers.index(entry.provider) + 1 :]:
                if not self.breaker(candidate).is_open(now):
                    return self._schedule(message_id, channel, target_id, entry, now, candidate, "switch_provider")
        if route.fallback_channels:
            return final("other_channel", entry.reason or "failed", route.fallback_channels[0])
        return final("give_up", entry.reason or "failed")

    def _schedule(
        self, message_id: str, channel: str, target_id: str, entry: Entry, at: float, provider: str, action: Action
    ) -> Decision:
        entry.next_attempt_at = at
        entry.next_provider = provider
        heapq.heappush(self._retry_heap, (at, message_id, channel, target_id))
        return Decision(action, message_id, channel, target_id, _dt(at), provider, "", entry.reason)

    def allow_send(self, provider: str, at: datetime) -> bool:
        """Ask before each request: False while the provider's breaker is open (half-open
        lets ``half_open_probes`` requests through)."""
        return self.breaker(provider).allow(_ts(at))

    def due(self, at: datetime, limit: int | None = None) -> list[Due]:
        """Retries whose time has come (each returned once; stale heap items dropped).

        A retry due on a provider whose breaker is open moves to the route's next provider
        with a closed breaker, or waits until the breaker's probe time.
        """
        now = _ts(at)
        out: list[Due] = []
        while self._retry_heap and self._retry_heap[0][0] <= now and (limit is None or len(out) < limit):
            when, message_id, channel, target_id = heapq.heappop(self._retry_heap)
            entry = self.entry(message_id, channel, target_id)
            if entry is None or entry.next_attempt_at != when or entry.final:
                continue
            if self._stopped(message_id, now):
                entry.next_attempt_at = None
                entry.final = True
                continue
            provider = entry.next_provider or entry.provider
            breaker = self.breaker(provider)
            if breaker.is_open(now):
                route = self.policy.routes.get(channel, Route())
                others = [p for p in route.providers if p != provider and not self.breaker(p).is_open(now)]
                if others:
                    entry.next_provider = provider = others[0]
                else:
                    entry.next_attempt_at = breaker.opened_at + breaker.policy.open_s
                    heapq.heappush(self._retry_heap, (entry.next_attempt_at, message_id, channel, target_id))
                    continue
            out.append(Due(message_id, channel, target_id, provider, entry.attempt + 1))
        return out

    def begin_attempt(self, message_id: str, channel: str, target_id: str, at: datetime) -> int | None:
        """Open the next attempt (state ``pending``); None when nothing may be sent."""
        entry = self.entry(message_id, channel, target_id)
        if entry is None or entry.final or entry.state in ("delivered", "acknowledged", "skipped"):
            return None
        if self._stopped(message_id, _ts(at)):
            return None
        provider = entry.next_provider or entry.provider
        entry.provider_attempts = entry.provider_attempts + 1 if provider == entry.provider else 1
        entry.provider = provider
        entry.attempt += 1
        entry.next_attempt_at = None
        entry.next_provider = ""
        self._move(message_id, channel, entry, "pending")
        return entry.attempt

    # -- cancellation / expiry ---------------------------------------------------------------

    def _skip_pending(self, message_id: str, why: str) -> int:
        skipped = 0
        for (channel, _), entry in self.entries.get(message_id, {}).items():
            if entry.state == "pending" or (entry.state == "failed" and not entry.final):
                if entry.state == "pending":
                    self._move(message_id, channel, entry, "skipped")
                    entry.reason = why
                    skipped += 1
                entry.final = True
                entry.next_attempt_at = None
        return skipped

    def cancel_message(self, message_id: str, why: str = "cancelled") -> int:
        """Nothing more is sent for ``message_id``: pending entries become ``skipped``."""
        self.messages.setdefault(message_id, MessageMeta(message_id.rpartition(".v")[0])).cancelled = why
        return self._skip_pending(message_id, why)

    def cancel_warning(self, warning_id: str, *, keep: Iterable[str] = (), why: str = "cancelled") -> int:
        """Stop every message of a warning except ``keep`` (e.g. the Cancel message itself,
        which must still go out). Returns the number of entries skipped."""
        kept = set(keep)
        return sum(
            self.cancel_message(mid, why)
            for mid, meta in list(self.messages.items())
            if meta.warning_id == warning_id and mid not in kept
        )

    def on_warning_message(self, msg: WarningMessage) -> int:
        """Register ``msg``; an Update/Cancel supersedes every earlier message of its warning."""
        self.register_message(msg)
        if msg.msg_type == "Alert":
            return 0
        why = "cancelled" if msg.msg_type == "Cancel" else "superseded"
        return sum(self.cancel_message(ref.message_id, why) for ref in msg.references)

    def expire(self, at: datetime) -> int:
        now = _ts(at)
        return sum(
            self.cancel_message(mid, "expired")
            for mid, meta in list(self.messages.items())
            if not meta.cancelled and meta.expires_at is not None and meta.expires_at <= now
        )

    # -- escalation ---------------------------------------------------------------------

    def escalations_due(self, at: datetime) -> list[Escalation]:
        now = _ts(at)
        out = []
        while self._ack_heap and self._ack_heap[0][0] <= now:
            deadline, message_id, channel, target_id = heapq.heappop(self._ack_heap)
            entry = self.entry(message_id, channel, target_id)
            if entry is None or entry.escalated or entry.state == "acknowledged" or entry.ack_deadline != deadline:
                continue
            entry.escalated = True
            out.append(Escalation(message_id, channel, target_id, entry.state, _dt(deadline)))
        return out

    # -- compaction --------------------------------------------------------------------

    def compact(self, message_ids: Iterable[str] | None = None) -> int:
        """Drop the finished entries of sealed messages (their outcome stays in ``counts``).

        Returns how many entries were dropped.
        """
        removed = 0
        for message_id in list(message_ids if message_ids is not None else self.entries):
            table = self.entries.get(message_id)
            meta = self.messages.get(message_id)
            if meta is None or not meta.sealed:
                continue
            self.retired.pop(message_id, None)  # sealed: ``track`` refuses every job from now on
            if not table:
                continue
            done = [key for key, entry in table.items() if entry.finished()]
            for key in done:
                del table[key]
            removed += len(done)
            if done:
                self.compacted_messages.add(message_id)
            if not table:
                del self.entries[message_id]
        self.stats.compacted += removed
        return removed

    def retire(self, collect: bool = True) -> tuple[int, list[tuple[str, str, str, Entry]]]:
        """Drop the entries that became delivered/acknowledged before the previous call and
        are finished (no acknowledgement pending). Returns how many, and (``collect``) them
        as ``(message_id, channel, target_id, entry)``. Their outcome stays in the counters,
        their keys in ``retired``; a later report about one of them is ``late``. Call it
        every grace period: an entry lives on for one to two periods after it finished."""
        due, self._finished, self._finishing = self._finished, self._finishing, []
        out: list[tuple[str, str, str, Entry]] = []
        hashes: dict[str, list[int]] = {}
        removed = 0
        table: dict[Key, Entry] | None = None
        current = ""
        keys: list[int] = []
        for message_id, channel, target_id in due:
            if message_id != current or table is None:
                current, table = message_id, self.entries.get(message_id)
                keys = hashes.setdefault(message_id, [])
            if not table:
                continue
            key = (channel, target_id)
            entry = table.get(key)
            if entry is None or not (entry.ack_deadline is None or entry.escalated or entry.state == "acknowledged"):
                continue  # gone already, or an acknowledgement is still awaited
            del table[key]
            removed += 1
            keys.append(hash(key))
            if collect:
                out.append((message_id, channel, target_id, entry))
        for message_id, found in hashes.items():
            if not found:
                continue
            self.retired.setdefault(message_id, RetiredKeys()).add(found)
            self.compacted_messages.add(message_id)
            if not self.entries.get(message_id):
                self.entries.pop(message_id, None)
        self.stats.retired += removed
        return removed, out

    def live_entries(self) -> int:
        return sum(len(t) for t in self.entries.values())

    # -- coverage ---------------------------------------------------------------------

    def coverage(self, message_id: str, at: datetime) -> CoverageReport:
        """Who the message reached, per township and channel (``schemas.coverage``).

        ``failed`` counts entries currently failed (including those awaiting a retry);
        ``complete`` is True when no entry of the message can still change by itself
        (nothing pending, submitted-without-report, or failed with a retry scheduled).
        """
        rows = self.township_counts.get(message_id, {})
        townships = []
        reached: dict[str, int] = {}
        for key in sorted(rows):
            channel, _, township = key.partition("|")
            targets, targeted, delivered, reached_pop, failed = rows[key]
            townships.append(
                TownshipCoverage(
                    township_code=township,
                    channel=channel,
                    targeted_population=targeted,
                    reached_population=reached_pop,
                    targets=targets,
                    delivered=delivered,
                    failed=failed,
                )
            )
            reached[township] = reached.get(township, 0) + delivered
        open_states = sum(
            n
            for states in self.counts.get(message_id, {}).values()
            for s, n in states.items()
            if s in ("pending", "submitted")
        )
        # only scanned when it can matter (a million-entry message is never scanned mid-fan-out)
        retrying = open_states == 0 and any(
            e.state == "failed" and not e.final for e in self.entries.get(message_id, {}).values()
        )
        return CoverageReport(
            warning_id=self._warning_of(message_id),
            message_id=message_id,
            at=at,
            townships=tuple(townships),
            unreached_townships=tuple(t for t, n in sorted(reached.items()) if n == 0),
            complete=open_states == 0 and not retrying,
        )

    # -- snapshot / restore ---------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """A JSON-compatible image of the whole ledger (for a changelog / compacted topic)."""
        return {
            "version": 1,
            "messages": {
                mid: {
                    "warning_id": m.warning_id,
                    "expires_at": m.expires_at,
                    "cancelled": m.cancelled,
                    "sealed": m.sealed,
                }
                for mid, m in self.messages.items()
            },
            "entries": [
                [mid, ch, tid, *[getattr(e, f) for f in _ENTRY_FIELDS]]
                for mid, table in self.entries.items()
                for (ch, tid), e in table.items()
            ],
            "counts": self.counts,
            "delivered_population": self.delivered_population,
            "township_counts": {m: {k: list(v) for k, v in rows.items()} for m, rows in self.township_counts.items()},
            "compacted_messages": sorted(self.compacted_messages),
            "breakers": {p: b.to_json() for p, b in self.breakers.items()},
            "stats": dict(self.stats.__dict__),
        }

    @classmethod
    def restore(
        cls, data: Mapping[str, Any], policy: LedgerPolicy | None = None, rng: random.Random | None = None
    ) -> Ledger:
        ledger = cls(policy, rng)
        ledger.merge_snapshot(data)
        for p, b in data["breakers"].items():
            ledger.breakers[p] = CircuitBreaker(
                ledger.policy.breaker, b["state"], b["failures"], b["opened_at"], b["probes"]
            )
        ledger.stats = LedgerStats(**data["stats"])
        return ledger

    def merge_snapshot(self, data: Mapping[str, Any]) -> None:
        """Add the messages, entries and counters of a snapshot to this ledger.

        For a dispatcher that keeps one ledger for many warnings and restores them one at a
        time (e.g. when a partition is assigned to it). The snapshot's message ids must not
        be known here yet; its breakers and stats are not merged (they belong to the process).
        """
        if data.get("version") != 1:
            raise ValueError(f"unsupported ledger snapshot version {data.get('version')!r}")
        for mid, m in data["messages"].items():
            self.messages[mid] = MessageMeta(m["warning_id"], m["expires_at"], m["cancelled"], m["sealed"])
        for row in data["entries"]:
            mid, ch, tid, *values = row
            entry = Entry(**dict(zip(_ENTRY_FIELDS, values, strict=True)))
            self.entries.setdefault(mid, {})[(ch, tid)] = entry
            if entry.next_attempt_at is not None and not entry.final:
                heapq.heappush(self._retry_heap, (entry.next_attempt_at, mid, ch, tid))
            if entry.ack_deadline is not None and not entry.escalated:
                heapq.heappush(self._ack_heap, (entry.ack_deadline, mid, ch, tid))
        for m, chs in data["counts"].items():
            self.counts[m] = {c: dict(s) for c, s in chs.items()}
        for m, c in data["delivered_population"].items():
            self.delivered_population[m] = dict(c)
        for m, rows in data["township_counts"].items():
            self.township_counts[m] = {k: array("q", v) for k, v in rows.items()}
            self._rows.pop(m, None)
        self.compacted_messages.update(data["compacted_messages"])

    def forget(self, message_ids: Iterable[str]) -> int:
        """Drop everything known about these messages (their warning moved to another
        worker, or it is long over). Heap items left behind are skipped lazily. Returns the
        number of live entries dropped."""
        dropped = 0
        for mid in message_ids:
            dropped += len(self.entries.pop(mid, {}))
            self.messages.pop(mid, None)
            self.counts.pop(mid, None)
            self.delivered_population.pop(mid, None)
            self.township_counts.pop(mid, None)
            self._rows.pop(mid, None)
            self.compacted_messages.discard(mid)
            self.retired.pop(mid, None)
        return dropped
