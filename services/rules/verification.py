"""Warning skill against a replay's ground truth: POD, FAR, CSI and lead time.

Definitions (domain standards §4.5, NWS practice):

1. An *event* is a truth interval ``[onset, end]`` of one hazard at one township at or above
   a level. A *warning episode* is one ``warning_id``: disseminated from its first sendable
   message (not a held one) until its Cancel or expiry.
2. An event is *hit* when a warning episode for the same hazard and township, at or above
   the event's level at some point, was sendable before the event ended; otherwise it is a
   *miss*. Lead time = onset − first sendable time at that level (clipped at 0: a warning
   after onset gives no lead time). Misses count 0 in the all-events mean.
3. A warning episode that overlaps no event of its hazard and township (within a grace
   period after its end) is a *false alarm*.
4. POD = hits / (hits + misses); FAR = false alarms / (hits + false alarms);
   CSI = hits / (hits + misses + false alarms). Undefined ratios are reported as ``None``.

Scores are given per hazard for "any level" and per level threshold.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict

from schemas.common import LEVEL_RANK
from schemas.warning import WarningMessage


@dataclass(frozen=True, slots=True)
class TruthInterval:
    hazard: str
    township_code: str
    level: str
    onset: datetime
    end: datetime


@dataclass
class _Episode:
    hazard: str
    towns: tuple[str, ...]
    start: datetime | None = None
    end: datetime | None = None
    first_at_rank: dict[int, datetime] | None = None


class Score(BaseModel):
    model_config = ConfigDict(frozen=True)

    hazard: str
    level: str
    events: int
    hits: int
    misses: int
    false_alarms: int
    pod: float | None
    far: float | None
    csi: float | None
    lead_time_all_min: float | None
    lead_time_warned_min: float | None


class Scorecard(BaseModel):
    model_config = ConfigDict(frozen=True)

    scenario: str
    rule_set: str
    scores: tuple[Score, ...]

    def to_markdown(self) -> str:
        head = (
            f"### Warning skill — {self.scenario} (rules: {self.rule_set})\n\n"
            "| hazard | level ≥ | events | hits | misses | false alarms | POD | FAR | CSI "
            "| lead all (min) | lead warned (min) |\n|---|---|---|---|---|---|---|---|---|---|---|\n"
        )
        rows = [
            f"| {s.hazard} | {s.level} | {s.events} | {s.hits} | {s.misses} | {s.false_alarms} | "
            f"{_fmt(s.pod)} | {_fmt(s.far)} | {_fmt(s.csi)} | {_fmt(s.lead_time_all_min, 1)} | "
            f"{_fmt(s.lead_time_warned_min, 1)} |"
            for s in self.scores
        ]
        return head + "\n".join(rows) + "\n"


def _fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _ratio(num: int, den: int) -> float | None:
    return None if den == 0 else num / den


def episodes(messages: Iterable[WarningMessage], horizon_end: datetime) -> dict[str, _Episode]:
    """Fold messages into episodes: when each became sendable at each level, and when it ended."""
    out: dict[str, _Episode] = {}
    for msg in sorted(messages, key=lambda m: (m.sent_at, m.version)):
        ep = out.setdefault(msg.warning_id, _Episode(msg.hazard, msg.township_codes, first_at_rank={}))
        assert ep.first_at_rank is not None
        if not msg.disseminate:
            continue
        if msg.msg_type == "Cancel":
            ep.end = msg.sent_at
            continue
        when = msg.sent_at if msg.approval == "auto" else max(msg.sent_at, msg.hold_deadline_at or msg.sent_at)
        ep.start = when if ep.start is None else min(ep.start, when)
        for rank in range(1, LEVEL_RANK[msg.level] + 1):
            ep.first_at_rank.setdefault(rank, when)
        ep.end = max(ep.end or msg.expires_at, msg.expires_at)
    for ep in out.values():
        if ep.end is None or ep.end > horizon_end:
            ep.end = horizon_end
    return {wid: ep for wid, ep in out.items() if ep.start is not None}


def score(
    truth: Iterable[TruthInterval],
    messages: Iterable[WarningMessage],
    *,
    scenario: str,
    horizon_end: datetime,
    rule_set: str = "active",
    false_alarm_grace: timedelta = timedelta(hours=1),
) -> Scorecard:
    events = list(truth)
    eps = episodes(messages, horizon_end)
    hazards = sorted({e.hazard for e in events} | {ep.hazard for ep in eps.values()})
    scores: list[Score] = []
    for hazard in hazards:
        for level in ("any", "blue", "yellow", "orange", "red"):
            rank = 1 if level == "any" else LEVEL_RANK[level]
            scored = _score_level(hazard, rank, events, eps, false_alarm_grace)
            if level != "any" and scored[0] == 0 and scored[3] == 0:
                continue
            total, hits, misses, false_alarms, leads = scored
            scores.append(
                Score(
                    hazard=hazard,
                    level=level,
                    events=total,
                    hits=hits,
                    misses=misses,
                    false_alarms=false_alarms,
                    pod=_ratio(hits, hits + misses),
                    far=_ratio(false_alarms, hits + false_alarms),
                    csi=_ratio(hits, hits + misses + false_alarms),
                    lead_time_all_min=(sum(leads) / total / 60) if total else None,
                    lead_time_warned_min=(sum(leads) / hits / 60) if hits else None,
                )
            )
    return Scorecard(scenario=scenario, rule_set=rule_set, scores=tuple(scores))


def _score_level(
    hazard: str,
    rank: int,
    events: list[TruthInterval],
    eps: dict[str, _Episode],
    grace: timedelta,
) -> tuple[int, int, int, int, list[float]]:
    relevant = [e for e in events if e.hazard == hazard and LEVEL_RANK[e.level] >= rank]
    candidates = [ep for ep in eps.values() if ep.hazard == hazard and ep.first_at_rank and rank in ep.first_at_rank]
    by_town: dict[str, list[_Episode]] = defaultdict(list)
    for ep in candidates:
        for town in ep.towns:
            by_town[town].append(ep)
    hits, leads, used = 0, [], set()
    for event in relevant:
        best: float | None = None
        for ep in by_town.get(event.township_code, []):
            assert ep.first_at_rank is not None
            assert ep.end is not None
            sendable = ep.first_at_rank[rank]
            if sendable <= event.end and ep.end >= event.onset - grace:
                lead = max(0.0, (event.onset - sendable).total_seconds())
                best = lead if best is None else max(best, lead)
                used.add(id(ep))
        if best is not None:
            hits += 1
            leads.append(best)
    misses = len(relevant) - hits
    hazard_events = [e for e in events if e.hazard == hazard]
    false_alarms = 0
    for ep in candidates:
        if id(ep) in used:
            continue
        assert ep.start is not None
        assert ep.end is not None
        overlaps = any(
            e.township_code in ep.towns and e.onset <= ep.end + grace and e.end >= ep.start for e in hazard_events
        )
        if not overlaps:
            false_alarms += 1
    return len(relevant), hits, misses, false_alarms, leads
