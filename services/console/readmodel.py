"""The console's read model: what the duty officer sees, folded from the topics.

Pure state, no I/O: the consumers (``services.console.consumers``) validate records and
call ``fold_*``; each call returns a ``Changes`` — the stream events to broadcast and the
audit follow-ups to write — so the same code serves the HTTP API, the live stream and the
unit tests.

Per warning (``WarningState``)::

    messages   every (message id, approval) seen once — redeliveries are dropped
    current    the newest message: highest version, then approval (held < approved)
    effective  the newest message that may be disseminated (approval ≠ held): what the
               public has been told; it colours the map
    active     effective exists, is not a Cancel, and has not expired (``now`` = the
               injected clock: a replay passes its virtual clock)

Township colour = the highest level over the active warnings naming the township, so an
Alert colours it, an Update changes the colour, and a Cancel (or expiry) clears it.

Approval queue = warnings whose ``current`` message is held and newer than ``effective``
(a held Alert, or a held escalation of a warning already out), ordered by deadline. An
item leaves the queue when the approved/released message arrives, when a newer message
supersedes it, or when a ``reject`` command for it is seen on ``commands`` (a rejected
message is dropped by the lifecycle without a trace on ``warnings``).
"""

from __future__ import annotations

import json
import re
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from schemas.command import OperatorCommand
from schemas.common import LEVEL_RANK
from schemas.coverage import CoverageReport
from schemas.rejected import RejectedRecord
from schemas.warning import WarningMessage

Json = dict[str, Any]

APPROVAL_RANK: dict[str, int] = {"held": 0, "auto": 1, "approved": 1, "released": 1}


def county_of(township_code: str) -> str:
    """NBS township codes start with their county's 6-digit adcode."""
    return township_code[:6]


def iso(dt: datetime | None) -> str | None:
    return None if dt is None else dt.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class StreamEvent:
    type: str
    data: Json


@dataclass(frozen=True, slots=True)
class AuditFollowUp:
    """An outcome learned from the topics for a command this console published."""

    command_id: str
    actor: str
    role: str
    action: str
    target: str
    outcome: str
    detail: str


@dataclass
class Changes:
    events: list[StreamEvent] = field(default_factory=list)
    audit: list[AuditFollowUp] = field(default_factory=list)

    def extend(self, other: Changes) -> None:
        self.events.extend(other.events)
        self.audit.extend(other.audit)


@dataclass(frozen=True, slots=True)
class Ack:
    actor: str
    role: str
    at: datetime
    message_id: str | None


@dataclass(frozen=True, slots=True)
class PendingCommand:
    command_id: str
    action: str
    actor: str
    role: str
    warning_id: str | None
    message_id: str | None
    issued_at: datetime


@dataclass
class WarningState:
    warning_id: str
    arrival: int
    messages: dict[str, WarningMessage] = field(default_factory=dict)
    current: WarningMessage | None = None
    effective: WarningMessage | None = None
    coverage: dict[str, CoverageReport] = field(default_factory=dict)
    receipts: dict[str, Counter[str]] = field(default_factory=dict)
    acks: list[Ack] = field(default_factory=list)
    rejected_message_ids: set[str] = field(default_factory=set)
    refusals: list[Json] = field(default_factory=list)
    was_active: bool = False

    @property
    def latest(self) -> WarningMessage:
        assert self.current is not None
        return self.current

    def is_active(self, now: datetime) -> bool:
        eff = self.effective
        return eff is not None and eff.msg_type != "Cancel" and eff.expires_at > now

    @property
    def held(self) -> WarningMessage | None:
        cur = self.current
        if cur is None or cur.approval != "held" or cur.message_id in self.rejected_message_ids:
            return None
        if self.effective is not None and self.effective.version >= cur.version:
            return None
        return cur

    def history(self) -> list[WarningMessage]:
        return sorted(self.messages.values(), key=lambda m: (m.version, APPROVAL_RANK[m.approval], m.sent_at))


def message_summary(msg: WarningMessage) -> Json:
    return {
        "message_id": msg.message_id,
        "version": msg.version,
        "msg_type": msg.msg_type,
        "level": msg.level,
        "approval": msg.approval,
        "approved_by": msg.approved_by,
        "sent_at": iso(msg.sent_at),
        "onset_at": iso(msg.onset_at),
        "expires_at": iso(msg.expires_at),
        "references": [r.message_id for r in msg.references],
        "headline": msg.headline,
        "reason": msg.reason,
        "status": msg.status,
    }


def coverage_summary(report: CoverageReport) -> Json:
    """Per channel: targeted vs reached population, targets delivered and failed."""
    channels: dict[str, Json] = {}
    for row in report.townships:
        ch = channels.setdefault(
            row.channel,
            {
                "channel": row.channel,
                "targeted_population": 0,
                "reached_population": 0,
                "targets": 0,
                "delivered": 0,
                "failed": 0,
                "townships": 0,
            },
        )
        ch["targeted_population"] += row.targeted_population
        ch["reached_population"] += row.reached_population
        ch["targets"] += row.targets
        ch["delivered"] += row.delivered
        ch["failed"] += row.failed
        ch["townships"] += 1
    for ch in channels.values():
        targeted = ch["targeted_population"]
        ch["reached_share"] = round(ch["reached_population"] / targeted, 4) if targeted else None
    return {
        "message_id": report.message_id,
        "at": iso(report.at),
        "complete": report.complete,
        "channels": sorted(channels.values(), key=lambda c: str(c["channel"])),
        "unreached_townships": list(report.unreached_townships),
    }


class StationBook:
    """Station health: ``stale`` from the ``obs.*`` topics, ``faulty`` from the rules.

    - ``stale``: the newest event time seen on any station is more than
      ``stale_factor × interval`` past the station's last report (the rules' health
      checker uses the same rule).
    - ``faulty``: the station's newest assessment on ``hazard.assessments`` carries the
      rules' ``suppressed_by_sensor_<status>`` marker (spike, flatline, implausible:
      ``services.rules.detectors.health``); a later unmarked assessment clears it. The
      console does not judge spikes or flat lines itself.
    - ``implausible``: the rules' lifecycle left one of the station's claims out because the
      radars saw no rain near it (an ``implausible_value`` record on ``obs.rejected``,
      ``question``). The station's own later assessments carry no marker (its processor
      cannot know), so the status holds for ``QUESTIONED_HOLD_S`` of event time (the claim's
      window) after the last such record.
    """

    DEFAULT_INTERVAL_S: Mapping[str, int] = {"rain": 60, "water_level": 300, "geohazard": 600, "radar": 360}
    QUESTIONED_HOLD_S = 3600

    def __init__(self, stale_factor: float = 3.0, max_stations: int = 20_000) -> None:
        self.stale_factor = stale_factor
        self.max_stations = max_stations
        self.stations: dict[str, tuple[str, datetime, int, str | None, int]] = {}
        self.newest: datetime | None = None
        self.version = 0
        self.assessed: dict[str, datetime] = {}
        """station → event time of its newest assessment (out-of-order ones are ignored)."""
        self.faulty: dict[str, tuple[str, datetime, datetime]] = {}
        """station → (status, since, last marked assessment)."""
        self.questioned: dict[str, datetime] = {}
        """station → until when its unmarked assessments still read ``implausible``."""

    def question(self, station_id: str, at: datetime) -> None:
        """The rules left a claim of ``station_id`` out as implausible at ``at``."""
        if station_id not in self.questioned and len(self.questioned) >= self.max_stations:
            return
        self.questioned[station_id] = at + timedelta(seconds=self.QUESTIONED_HOLD_S)
        current = self.faulty.get(station_id)
        if current is None or current[0] != "implausible":
            self.faulty[station_id] = ("implausible", at, at)
            self.version += 1

    def assessment(self, station_id: str, at: datetime, fault: str | None) -> None:
        """One assessment of ``station_id``: ``fault`` is the suppression status, or ``None``."""
        last = self.assessed.get(station_id)
        if last is not None and at < last:
            return
        if last is None and len(self.assessed) >= self.max_stations:
            return
        self.assessed[station_id] = at
        current = self.faulty.get(station_id)
        if fault is None and station_id in self.questioned:
            if at < self.questioned[station_id]:
                fault = "implausible"
            else:
                del self.questioned[station_id]
        if fault is None:
            if current is not None:
                del self.faulty[station_id]
                self.version += 1
        elif current is None or current[0] != fault:
            self.faulty[station_id] = (fault, at, at)
            self.version += 1
        else:
            self.faulty[station_id] = (fault, current[1], at)

    def report(self, station_id: str, kind: str, at: datetime, interval_s: int | None, township: str | None) -> None:
        old = self.stations.get(station_id)
        if old is not None and old[1] >= at:
            self.stations[station_id] = (*old[:4], old[4] + 1)
            return
        if old is None and len(self.stations) >= self.max_stations:
            return
        interval = interval_s or self.DEFAULT_INTERVAL_S.get(kind, 300)
        self.stations[station_id] = (kind, at, interval, township, (old[4] if old else 0) + 1)
        if self.newest is None or at > self.newest:
            self.newest = at
        self.version += 1

    def summary(self, stale_limit: int = 25) -> Json:
        kinds: dict[str, Json] = {}
        stale: list[Json] = []
        newest = self.newest
        for station_id, (kind, at, interval, township, count) in self.stations.items():
            row = kinds.setdefault(kind, {"kind": kind, "stations": 0, "ok": 0, "stale": 0, "faulty": 0, "reports": 0})
            row["stations"] += 1
            row["reports"] += count
            behind = (newest - at).total_seconds() if newest is not None else 0.0
            if station_id in self.faulty:
                row["faulty"] += 1
            if behind > self.stale_factor * interval:
                row["stale"] += 1
                stale.append(
                    {
                        "station_id": station_id,
                        "kind": kind,
                        "last_at": iso(at),
                        "behind_s": int(behind),
                        "township_code": township,
                    }
                )
            elif station_id not in self.faulty:
                row["ok"] += 1
        stale.sort(key=lambda s: -int(s["behind_s"]))
        faulty: list[Json] = []
        for station_id, (status, since, last) in self.faulty.items():
            known = self.stations.get(station_id)
            faulty.append(
                {
                    "station_id": station_id,
                    "kind": known[0] if known else None,
                    "status": status,
                    "since": iso(since),
                    "last_at": iso(last),
                    "township_code": known[3] if known else None,
                }
            )
        faulty.sort(key=lambda f: (str(f["since"]), str(f["station_id"])))
        return {
            "newest_at": iso(newest),
            "kinds": sorted(kinds.values(), key=lambda k: str(k["kind"])),
            "stale": stale[:stale_limit],
            "stale_total": len(stale),
            "faulty": faulty[:stale_limit],
            "faulty_total": len(faulty),
            "faulty_by_status": dict(sorted(Counter(status for status, _, _ in self.faulty.values()).items())),
        }


def _claimant(raw: str) -> str | None:
    """The station whose claim the lifecycle left out (``lifecycle._flag`` writes the claim as JSON)."""
    try:
        claim = json.loads(raw)
    except ValueError:
        return None
    source = claim.get("source_id") if isinstance(claim, dict) else None
    return source if isinstance(source, str) else None


_DETAIL_WARNING = re.compile(r"^\w+ (\S+):")


class ReadModel:
    def __init__(self, keep_inactive_s: int = 24 * 3600, recent_rejects: int = 50) -> None:
        self.warnings: dict[str, WarningState] = {}
        self.township_levels: dict[str, str] = {}
        self.rejected_counts: Counter[str] = Counter()
        self.recent_rejects: deque[Json] = deque(maxlen=recent_rejects)
        self.stations = StationBook()
        self.pending: dict[str, PendingCommand] = {}
        self.keep_inactive_s = keep_inactive_s
        self._arrivals = 0
        self._last_queue: list[Json] = []
        self._by_township: dict[str, set[str]] = {}
        """township code → ids of the warnings that ever named it (for incremental colour)."""
        self._held_ids: set[str] = set()
        self._touched: set[str] = set()
        self._queue_dirty = False
        self._early_coverage: dict[str, dict[str, CoverageReport]] = {}
        self._early_receipts: dict[str, dict[str, Counter[str]]] = {}
        self._early_acks: dict[str, list[Ack]] = {}
        """Delivery news for warnings not folded yet (another consumer reads ``warnings``;
        after a restart it may be behind): kept, bounded, until the warning arrives."""
        self.max_early = 5000

    # ------------------------------------------------------------------ folding

    def fold_warning(self, msg: WarningMessage, now: datetime, *, settle: bool = True) -> Changes:
        """Fold one message; with ``settle=False`` the caller calls ``settle`` per batch."""
        changes = Changes()
        ws = self.warnings.get(msg.warning_id)
        if ws is None:
            ws = self.warnings[msg.warning_id] = WarningState(msg.warning_id, 0)
            ws.coverage = self._early_coverage.pop(msg.warning_id, {})
            ws.receipts = self._early_receipts.pop(msg.warning_id, {})
            ws.acks = self._early_acks.pop(msg.warning_id, [])
        if msg.state_key in ws.messages:
            return changes  # a redelivery: nothing new
        ws.messages[msg.state_key] = msg
        rank = (msg.version, APPROVAL_RANK[msg.approval])
        if ws.current is None or rank >= (ws.current.version, APPROVAL_RANK[ws.current.approval]):
            ws.current = msg
        if msg.disseminate and (ws.effective is None or msg.version >= ws.effective.version):
            ws.effective = msg
        self._arrivals += 1
        ws.arrival = self._arrivals
        ws.was_active = ws.is_active(now)
        for code in msg.township_codes:
            self._by_township.setdefault(code, set()).add(ws.warning_id)
        self._touched.update(msg.township_codes)
        if ws.held is not None or ws.warning_id in self._held_ids:
            self._queue_dirty = True
            if ws.held is not None:
                self._held_ids.add(ws.warning_id)
            else:
                self._held_ids.discard(ws.warning_id)
        changes.events.append(
            StreamEvent("warning", {"warning": self.summary(ws, now), "message": message_summary(msg)})
        )
        changes.audit.extend(self._applied_by(msg))
        if settle:
            changes.extend(self.settle(now))
        return changes

    def _early(self, book: dict[str, Any], warning_id: str, empty: Any) -> Any:
        if warning_id not in book and len(book) >= self.max_early:
            del book[next(iter(book))]  # the oldest: its warning never came
        return book.setdefault(warning_id, empty)

    def fold_coverage(self, report: CoverageReport) -> Changes:
        ws = self.warnings.get(report.warning_id)
        reports: dict[str, CoverageReport] = (
            ws.coverage if ws is not None else self._early(self._early_coverage, report.warning_id, {})
        )
        previous = reports.get(report.message_id)
        if previous is not None and previous.at > report.at:
            return Changes()
        reports[report.message_id] = report
        if ws is None:
            return Changes()
        return Changes([StreamEvent("coverage", {"warning_id": ws.warning_id, "coverage": coverage_summary(report)})])

    def fold_receipt_counts(self, counts: Mapping[tuple[str, str, str], int]) -> Changes:
        """``(warning id, channel, state) → receipts`` from one batch (receipts are many)."""
        touched: set[str] = set()
        for (warning_id, channel, state), n in counts.items():
            ws = self.warnings.get(warning_id)
            if ws is None:
                early: dict[str, Counter[str]] = self._early(self._early_receipts, warning_id, {})
                early.setdefault(channel, Counter())[state] += n
                continue
            ws.receipts.setdefault(channel, Counter())[state] += n
            touched.add(warning_id)
        return Changes(
            [
                StreamEvent("delivery", {"warning_id": w, "receipts": self._receipts(self.warnings[w])})
                for w in sorted(touched)
            ]
        )

    def fold_rejected(self, record: RejectedRecord) -> Changes:
        self.rejected_counts[record.reason] += 1
        command = _command_in(record) if record.reason == "command_refused" else None
        summary: Json = {
            "source": record.source,
            "reason": record.reason,
            "detail": record.detail[:300],
            "field": record.field,
            "received_at": iso(record.received_at),
            "command": command,
        }
        self.recent_rejects.appendleft(summary)
        if record.reason == "implausible_value" and record.source.startswith("rules-lifecycle:"):
            station = _claimant(record.raw)
            if station is not None:
                self.stations.question(station, record.received_at)
        changes = Changes([StreamEvent("rejected", {"record": summary, "counts": dict(self.rejected_counts)})])
        if command is not None:
            warning_id = command.get("warning_id") or _warning_in_detail(record.detail)
            ws = self.warnings.get(warning_id or "")
            if ws is not None:
                ws.refusals.append(summary)
            pending = self.pending.pop(str(command.get("command_id")), None)
            if pending is not None:
                changes.audit.append(
                    AuditFollowUp(
                        pending.command_id,
                        pending.actor,
                        pending.role,
                        pending.action,
                        pending.warning_id or "",
                        "refused",
                        record.detail[:500],
                    )
                )
        return changes

    def fold_command(self, command: OperatorCommand, now: datetime) -> Changes:
        """Commands from every console instance: acknowledgements and rejections show here."""
        changes = Changes()
        ws = self.warnings.get(command.warning_id or "")
        if command.action == "acknowledge" and ws is None and command.warning_id:
            acks: list[Ack] = self._early(self._early_acks, command.warning_id, [])
            if not any(a.actor == command.actor and a.message_id == command.message_id for a in acks):
                acks.append(Ack(command.actor, command.actor_role, command.at, command.message_id))
        elif command.action == "acknowledge" and ws is not None:
            if any(a.actor == command.actor and a.message_id == command.message_id for a in ws.acks):
                return changes
            ws.acks.append(Ack(command.actor, command.actor_role, command.at, command.message_id))
            changes.events.append(
                StreamEvent(
                    "ack",
                    {
                        "warning_id": ws.warning_id,
                        "actor": command.actor,
                        "at": iso(command.at),
                        "message_id": command.message_id,
                        "acks": len(ws.acks),
                    },
                )
            )
        elif command.action == "reject" and ws is not None:
            held = ws.held
            if held is not None and command.message_id in (None, held.message_id):
                ws.rejected_message_ids.add(held.message_id)
                self._held_ids.discard(ws.warning_id)
                self._queue_dirty = True
                changes.events.append(StreamEvent("warning", {"warning": self.summary(ws, now), "message": None}))
                changes.extend(self.settle(now))
        changes.events.append(
            StreamEvent(
                "command",
                {
                    "command_id": command.command_id,
                    "action": command.action,
                    "actor": command.actor,
                    "warning_id": command.warning_id,
                    "at": iso(command.at),
                },
            )
        )
        pending = self.pending.get(command.command_id)
        if pending is not None and pending.action == "acknowledge":
            del self.pending[command.command_id]
            changes.audit.append(
                AuditFollowUp(
                    pending.command_id,
                    pending.actor,
                    pending.role,
                    pending.action,
                    pending.warning_id or "",
                    "applied",
                    "acknowledgement recorded",
                )
            )
        return changes

    def fold_observation(
        self, station_id: str, kind: str, at: datetime, interval_s: int | None, township: str | None
    ) -> None:
        self.stations.report(station_id, kind, at, interval_s, township)

    def fold_assessment_health(self, station_id: str, at: datetime, fault: str | None) -> None:
        self.stations.assessment(station_id, at, fault)

    def expect(self, command: OperatorCommand) -> None:
        """Remember a command this console published, to audit its outcome later."""
        self.pending[command.command_id] = PendingCommand(
            command.command_id,
            command.action,
            command.actor,
            command.actor_role,
            command.warning_id,
            command.message_id,
            command.at,
        )
        if len(self.pending) > 10_000:
            oldest = min(self.pending.values(), key=lambda p: p.issued_at)
            del self.pending[oldest.command_id]

    def tick(self, now: datetime) -> Changes:
        """Expiry and pruning on the clock; call every few seconds."""
        changes = Changes()
        horizon = now - timedelta(seconds=self.keep_inactive_s)
        for ws in list(self.warnings.values()):
            active = ws.is_active(now)
            if ws.was_active and not active:
                ws.was_active = False
                changes.events.append(StreamEvent("warning", {"warning": self.summary(ws, now), "message": None}))
            if not active and ws.held is None and ws.latest.sent_at < horizon:
                del self.warnings[ws.warning_id]
                for codes in self._by_township.values():
                    codes.discard(ws.warning_id)
        self._touched.update(self._by_township)
        self._touched.update(self.township_levels)
        self._queue_dirty = True  # countdowns and deadlines move with the clock
        changes.extend(self.settle(now))
        return changes

    # ------------------------------------------------------------------ derived state

    def _applied_by(self, msg: WarningMessage) -> list[AuditFollowUp]:
        out: list[AuditFollowUp] = []
        for pending in list(self.pending.values()):
            hit = (
                (
                    pending.action == "approve"
                    and msg.approval == "approved"
                    and msg.approved_by == pending.actor
                    and msg.warning_id == pending.warning_id
                )
                or (pending.action == "cancel" and msg.msg_type == "Cancel" and msg.warning_id == pending.warning_id)
                or (
                    pending.action == "issue_manual"
                    and msg.origin == "manual"
                    and msg.version == 1
                    and pending.command_id[:12] in msg.warning_id
                )
            )
            if hit:
                del self.pending[pending.command_id]
                out.append(
                    AuditFollowUp(
                        pending.command_id,
                        pending.actor,
                        pending.role,
                        pending.action,
                        msg.warning_id,
                        "applied",
                        f"{msg.message_id} {msg.msg_type} {msg.level} {msg.approval}",
                    )
                )
        return out

    def settle(self, now: datetime) -> Changes:
        """Township colours of the townships touched since the last call, and the queue."""
        changes = Changes()
        touched, self._touched = self._touched, set()
        diff: dict[str, str] = {}
        for code in touched:
            level = self.township_level(code, now)
            if self.township_levels.get(code, "none") != level:
                diff[code] = level
                if level == "none":
                    self.township_levels.pop(code, None)
                else:
                    self.township_levels[code] = level
        if diff:
            changes.events.append(StreamEvent("townships", {"levels": diff}))
        if self._queue_dirty:
            self._queue_dirty = False
            queue = self.approval_queue(now)
            shape = [{k: q[k] for k in ("warning_id", "message_id", "deadline_at")} for q in queue]
            if shape != self._last_queue:
                self._last_queue = shape
                changes.events.append(StreamEvent("queue", {"queue": queue, "now": iso(now)}))
        return changes

    def township_level(self, code: str, now: datetime) -> str:
        """The highest level over the active warnings naming ``code`` (``none`` if none)."""
        best = "none"
        for warning_id in self._by_township.get(code, ()):
            ws = self.warnings.get(warning_id)
            if ws is None or not ws.is_active(now):
                continue
            eff = ws.effective
            assert eff is not None
            if code in eff.township_codes and LEVEL_RANK[eff.level] > LEVEL_RANK[best]:
                best = eff.level
        return best

    def compute_township_levels(self, now: datetime) -> dict[str, str]:
        """Every township's level from scratch (the reference ``settle`` must agree with)."""
        levels: dict[str, str] = {}
        for ws in self.warnings.values():
            if not ws.is_active(now):
                continue
            eff = ws.effective
            assert eff is not None
            for code in eff.township_codes:
                if LEVEL_RANK[eff.level] > LEVEL_RANK.get(levels.get(code, "none"), 0):
                    levels[code] = eff.level
        return levels

    def approval_queue(self, now: datetime) -> list[Json]:
        items: list[Json] = []
        for warning_id in list(self._held_ids):
            ws = self.warnings.get(warning_id)
            held = ws.held if ws is not None else None
            if ws is None or held is None:
                self._held_ids.discard(warning_id)
                continue
            deadline = held.hold_deadline_at
            items.append(
                {
                    "warning_id": ws.warning_id,
                    "message_id": held.message_id,
                    "msg_type": held.msg_type,
                    "hazard": held.hazard,
                    "level": held.level,
                    "township_codes": list(held.township_codes),
                    "origin": held.origin,
                    "issued_by": held.issued_by,
                    "headline": held.headline,
                    "sent_at": iso(held.sent_at),
                    "deadline_at": iso(deadline),
                    "remaining_s": None if deadline is None else round((deadline - now).total_seconds(), 1),
                }
            )
        items.sort(key=lambda q: (q["deadline_at"] is None, q["deadline_at"] or "", q["warning_id"]))
        return items

    def _receipts(self, ws: WarningState) -> Json:
        return {channel: dict(counter) for channel, counter in sorted(ws.receipts.items())}

    def summary(self, ws: WarningState, now: datetime) -> Json:
        cur = ws.latest
        eff = ws.effective
        shown = eff or cur
        return {
            "warning_id": ws.warning_id,
            "hazard": cur.hazard,
            "level": shown.level,
            "current_level": cur.level,
            "msg_type": shown.msg_type,
            "current_msg_type": cur.msg_type,
            "approval": cur.approval,
            "held": ws.held is not None,
            "active": ws.is_active(now),
            "version": cur.version,
            "township_codes": list(shown.township_codes),
            "county_codes": sorted({county_of(c) for c in shown.township_codes}),
            "headline": shown.headline,
            "origin": cur.origin,
            "issued_by": cur.issued_by,
            "sent_at": iso(cur.sent_at),
            "first_sent_at": iso(min(m.sent_at for m in ws.messages.values())),
            "expires_at": iso(shown.expires_at),
            "acks": len(ws.acks),
            "order": ws.arrival,
        }

    def detail(self, warning_id: str, now: datetime) -> Json | None:
        ws = self.warnings.get(warning_id)
        if ws is None:
            return None
        shown = ws.effective or ws.latest
        coverage = ws.coverage.get(shown.message_id)
        if coverage is None and ws.coverage:
            coverage = max(ws.coverage.values(), key=lambda r: r.at)
        return {
            "summary": self.summary(ws, now),
            "rule_id": shown.rule_id,
            "reason": shown.reason,
            "evidence": [e.model_dump(mode="json") for e in shown.evidence],
            "history": [message_summary(m) for m in ws.history()],
            "held": None
            if ws.held is None
            else message_summary(ws.held)
            | {
                "deadline_at": iso(ws.held.hold_deadline_at),
                "issued_by": ws.held.issued_by,
                "origin": ws.held.origin,
            },
            "coverage": None if coverage is None else coverage_summary(coverage),
            "receipts": self._receipts(ws),
            "acks": [{"actor": a.actor, "role": a.role, "at": iso(a.at), "message_id": a.message_id} for a in ws.acks],
            "refusals": ws.refusals[-10:],
        }

    def message(self, warning_id: str, message_id: str) -> WarningMessage | None:
        ws = self.warnings.get(warning_id)
        if ws is None:
            return None
        found = [m for m in ws.messages.values() if m.message_id == message_id]
        return max(found, key=lambda m: APPROVAL_RANK[m.approval]) if found else None

    def find_message(self, message_id: str) -> WarningMessage | None:
        warning_id = message_id.rpartition(".v")[0]
        return self.message(warning_id, message_id)

    def list_warnings(
        self,
        now: datetime,
        *,
        hazards: Iterable[str] = (),
        levels: Iterable[str] = (),
        counties: Iterable[str] = (),
        township: str | None = None,
        active_only: bool = False,
        limit: int = 500,
    ) -> list[Json]:
        hazard_set, level_set, county_set = set(hazards), set(levels), set(counties)
        out: list[Json] = []
        for ws in sorted(self.warnings.values(), key=lambda w: (w.latest.sent_at, w.arrival), reverse=True):
            cur = ws.effective or ws.latest
            if hazard_set and cur.hazard not in hazard_set:
                continue
            if level_set and cur.level not in level_set and ws.latest.level not in level_set:
                continue
            if county_set and not any(county_of(c) in county_set for c in cur.township_codes):
                continue
            if township is not None and township not in cur.township_codes:
                continue
            if active_only and not (ws.is_active(now) or ws.held is not None):
                continue
            out.append(self.summary(ws, now))
            if len(out) >= limit:
                break
        return out

    def rejected(self) -> Json:
        return {"counts": dict(self.rejected_counts), "recent": list(self.recent_rejects)}


def _command_in(record: RejectedRecord) -> Json | None:
    try:
        raw = json.loads(record.raw)
    except ValueError:
        return None
    if not isinstance(raw, dict):
        return None
    return {k: raw.get(k) for k in ("command_id", "action", "actor", "warning_id", "message_id")}


def _warning_in_detail(detail: str) -> str | None:
    match = _DETAIL_WARNING.match(detail)
    return match.group(1) if match else None
