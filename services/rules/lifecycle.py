"""The warning lifecycle per (hazard, township), on event time.

Input: assessments from several sources (gauges, radars) for one ``hazard:township``.
Output: CAP-shaped warning messages (Alert / Update / Cancel).

Event time and determinism
--------------------------
Sources reach the lifecycle through different partitions, so their records interleave
differently on each run. To give the same warnings whatever the interleaving:

1. Each source's assessments are kept as a short history ``[(t, level, evidence)]``.
2. The township's *watermark* is ``max(min_s latest_s, max_s latest_s - allowed_lateness)``
   over its expected sources (from the station registry) and any other source seen:
   every source has reported up to it, or it is so far behind that waiting longer is
   pointless. A source expected but not yet heard from holds the watermark at
   ``max - allowed_lateness``.
3. When the watermark advances, the lifecycle decides at each distinct report time
   ``τ`` in ``(decided_until, watermark]`` in order, using each source's level at ``τ``;
   the township level is the highest (for ``geohazard``, the monitoring-point roll-up:
   the highest point level, raised when several points are at orange or above; see
   ``detectors.geohazard.township_geohazard_rollup`` and ``LifecyclePolicy.geohazard_rollup``).
4. A record at or before ``decided_until`` is a repeat or late: it is folded into the
   history (for later decisions, which read only the source's last entry at or before
   ``decided_until`` and later ones: the rest is trimmed, so a source far behind the
   others keeps a bounded history) and the messages decided since its time are re-emitted
   from the outbox (same ids), so a crash between a state write and a publish loses
   nothing; consumers drop the repeats by id.

Decisions at ``τ`` (pure, ``decide``):

- no warning, level > none          → Alert (v1); id ``<hazard>-<township>-<τ>``
- level above the warning's         → Update at once (escalate)
- level below, for ≥ dwell          → Update down (de-escalate after the dwell)
- level none for ≥ quiet period     → Cancel (all-clear); the episode ends
- still active near expiry          → Update (renew ``expires_at``)

Approval (``HoldRule``, per hazard, level and origin): a message that needs an approver is
published with ``approval="held"`` (channels do not send it) and kept with a deadline; an
``approve`` command re-publishes the same message id as ``approved``; a ``reject`` drops it
(and, for an Alert, suppresses that level until the evidence falls back or rises); when
event time passes the deadline the rule either releases it (``released``) or drops it.
Operator commands (``schemas.command``) enter here too: manual warnings get their own
``warning_id`` and version chain, cancellations become Cancel messages referencing every
earlier message, so every warning has one history whatever its origin.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from schemas.assessment import Evidence, HazardAssessment
from schemas.command import OperatorCommand
from schemas.common import LEVEL_RANK, RANK_LEVEL, Hazard, Level
from schemas.rejected import RejectedRecord
from schemas.warning import CERTAINTY_RANK, Certainty, MessageRef, MsgType, WarningMessage
from services.common.rejects import rejection
from services.rules.detectors.field import FIELD_METRIC
from services.rules.detectors.geohazard import DEFAULT_ROLLUP, RollupPolicy, township_geohazard_rollup
from services.rules.detectors.short_heavy_rain import RULE_ID as SHR_GAUGE_RULE_ID

HAZARD_ZH: dict[str, str] = {
    "rainstorm": "暴雨",
    "short_heavy_rain": "短时强降水",
    "convection": "强对流",
    "geohazard": "地质灾害",
    "flood": "洪水",
    "tide": "风暴潮",
    "gale": "大风",
    "typhoon": "台风",
}
LEVEL_ZH: dict[str, str] = {"blue": "蓝色", "yellow": "黄色", "orange": "橙色", "red": "红色"}
_EVIDENCE: TypeAdapter[tuple[Evidence, ...]] = TypeAdapter(tuple[Evidence, ...])


class HoldRule(BaseModel):
    """Messages matching this rule wait for an approver (Cancel messages never wait)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    hazard: Hazard | Literal["*"] = "*"
    level: Level
    origin: Literal["rules", "manual", "*"] = "*"
    deadline_s: int = Field(default=900, ge=0, description="event-time seconds an approver has")
    on_deadline: Literal["release", "drop"] = "release"

    def matches(self, hazard: str, level: str, origin: str) -> bool:
        return self.hazard in ("*", hazard) and self.level == level and self.origin in ("*", origin)


DEFAULT_HOLDS: tuple[HoldRule, ...] = (
    HoldRule(level="red", origin="manual", deadline_s=900),
    HoldRule(level="orange", origin="manual", deadline_s=900),
)
"""Automatic warnings go out at once (lead time is the point); a manual orange or red warning
needs a second person, and is released after 15 minutes if nobody answers."""


class LifecyclePolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    allowed_lateness_s: int = Field(default=600, ge=0)
    validity_s: int = Field(default=6 * 3600, ge=600, description="expires_at = sent + validity")
    renew_before_s: int = Field(default=1800, ge=0, description="renew this long before expiry")
    deescalate_dwell_s: int = Field(default=3600, ge=0)
    all_clear_quiet_s: int = Field(default=3 * 3600, ge=0)
    stale_after_s: int | None = Field(
        default=1800,
        gt=0,
        description="a source silent this long is stale: a level resting on stale sources only is "
        "'Possible' and names them (None: never) [A]",
    )
    outbox_keep_s: int = Field(default=3600, ge=0, description="re-emit window after a repeat")
    field_checked_rules: frozenset[str] = Field(
        default=frozenset({SHR_GAUGE_RULE_ID}),
        description="rules whose claims above none must agree with the radars' vote on the township's gauges "
        "(``detectors.field``): when every radar voting says dry, such a claim is implausible and left out",
    )
    holds: tuple[HoldRule, ...] = DEFAULT_HOLDS
    geohazard_rollup: RollupPolicy | None = Field(
        default=DEFAULT_ROLLUP,
        description="how a township's geo-hazard points combine; None: the highest point level only",
    )

    def rollup_for(self, hazard: str) -> RollupPolicy | None:
        return self.geohazard_rollup if hazard == "geohazard" else None

    def hold_for(self, hazard: str, level: str, origin: str) -> HoldRule | None:
        return next((h for h in self.holds if h.matches(hazard, level, origin)), None)


def _iso(epoch_s: int) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


def new_state() -> dict[str, Any]:
    return {
        "sources": {},
        "decided_until": None,
        "warning": None,
        "manual": {},
        "held": [],
        "suppress_rank": 0,
        "commands": [],
        "outbox": [],
        "implausible": {},
    }


def fold(
    state: dict[str, Any],
    assessment: HazardAssessment,
    policy: LifecyclePolicy,
    expected_sources: frozenset[str] = frozenset(),
    flags: list[RejectedRecord] | None = None,
) -> tuple[list[WarningMessage], bool]:
    """Apply one assessment; return the messages to publish and whether it was late.

    ``flags`` collects a ``RejectedRecord`` (``implausible_value``) each time a source's
    claim starts being left out as implausible (``_implausible``).
    """
    t = int(assessment.assessed_at.timestamp())
    sources: dict[str, list[list[Any]]] = state["sources"]
    history = sources.get(assessment.source_id)
    if history is None:
        history = sources[assessment.source_id] = []
    # A source at level none never gives the township its evidence (``_township_level``
    # takes the evidence of a source *above* the best so far), so none keeps none.
    level = assessment.level
    found = assessment.evidence
    evidence_json = _EVIDENCE.dump_python(found, mode="json") if found and level != "none" else []
    onset_s = int(assessment.onset_at.timestamp()) if assessment.onset_at and level != "none" else None
    vote = None  # the radars' vote rides on their ``none`` assessments only (``detectors.field``)
    if found and level == "none":
        vote = next((e.value >= 0.5 for e in found if e.metric == FIELD_METRIC), None)
    entry = [t, level, evidence_json, assessment.rule_id, onset_s, assessment.certainty, vote]
    if not history or history[-1][0] < t:
        history.append(entry)  # the usual case: the source's newest report
    else:
        _insert(history, entry)
    decided_until: int | None = state["decided_until"]

    if decided_until is not None and t <= decided_until:
        # only the source's last entry at or before ``decided_until`` counts for later decisions:
        # a source far behind the others (a partition replaying a backlog) must not pile up
        # entries until the watermark next moves
        _trim(history, decided_until)
        replay = [m for m in state["outbox"] if m["t"] >= t]
        return [WarningMessage.model_validate(m["msg"]) for m in replay], True

    latest = [h[-1][0] for h in sources.values() if h]  # (a history is never emptied: see _prune)
    newest, oldest = max(latest), min(latest)
    if expected_sources and not expected_sources.issubset(sources):
        watermark = newest - policy.allowed_lateness_s
    else:
        watermark = max(oldest, newest - policy.allowed_lateness_s)
    if decided_until is not None and watermark <= decided_until:
        return [], False
    if _all_quiet(state):
        # every decision up to the watermark would find level none with nothing to end,
        # hold or suppress: ``decide`` returns None and changes nothing, so skip the times
        state["decided_until"] = watermark
        _prune(state, watermark, policy)
        return [], False
    times = sorted(
        {
            h_t
            for h in sources.values()
            for h_t, *_ in h
            if (decided_until is None or h_t > decided_until) and h_t <= watermark
        }
    )
    emitted: list[WarningMessage] = []
    rollup = policy.rollup_for(assessment.hazard)
    ordered = sorted(sources)
    checked = policy.field_checked_rules
    for tau in times:
        if state["held"]:
            emitted.extend(_expire_holds(state, tau))
        left_out = _implausible(sources, tau, ordered, checked) if checked else {}
        if left_out or state.get("implausible"):
            _flag(state, left_out, tau, assessment, flags)
        considered = [s for s in ordered if s not in left_out] if left_out else ordered
        level_rank, evidence, rule_id = _township_level(sources, tau, rollup, considered)
        # the forecast only fills a message: computed when one is sent, not at every tau
        forecast = partial(_forecast_at, sources, tau, considered, policy.stale_after_s)
        msg = decide(state, tau, level_rank, evidence, assessment, policy, rule_id, forecast)
        if msg is not None:
            emitted.append(_publish(state, msg, tau, policy))
    state["decided_until"] = watermark
    _prune(state, watermark, policy)
    return emitted, False


def _implausible(
    sources: dict[str, list[list[Any]]], tau: int, ordered: list[str], checked: frozenset[str]
) -> dict[str, list[Any]]:
    """The claims the field contradicts at ``tau``: source → its entry.

    A claim is an entry above none of a rule in ``checked`` (a gauge's observed SHR). A vote
    is an entry carrying the radar's ``echo_free_near_gauges`` (``detectors.field``; entry
    index 6: True = dry). When at least one radar votes and every vote is dry, no radar saw
    rain near the township's gauges for the whole window, and every claim is implausible.
    """
    claims: dict[str, list[Any]] = {}
    voted = False
    for source_id in ordered:
        entry = _at(sources[source_id], tau)
        if entry is None:
            continue
        vote = entry[6] if len(entry) > 6 else None
        if vote is not None:
            if not vote:
                return {}
            voted = True
        elif entry[1] != "none" and entry[3] in checked:
            claims[source_id] = entry
    return claims if voted else {}


def _flag(
    state: dict[str, Any],
    left_out: dict[str, list[Any]],
    tau: int,
    basis: HazardAssessment,
    flags: list[RejectedRecord] | None,
) -> None:
    """Keep ``state["implausible"]`` (source → since) and record each claim newly left out."""
    flagged: dict[str, int] = state.setdefault("implausible", {})  # states from before it existed
    for source_id in [s for s in flagged if s not in left_out]:
        del flagged[source_id]
    for source_id, entry in left_out.items():
        if source_id in flagged:
            continue
        flagged[source_id] = tau
        if flags is None:
            continue
        values = ", ".join(f"{e['metric']} {e['value']:g}" for e in entry[2]) or "no evidence"
        claim = {
            "source_id": source_id,
            "hazard": basis.hazard,
            "township_code": basis.township_code,
            "assessed_at": _iso(int(entry[0])).isoformat().replace("+00:00", "Z"),
            "level": entry[1],
            "rule_id": entry[3],
            "evidence": entry[2],
        }
        flags.append(
            rejection(
                source=f"rules-lifecycle:{basis.hazard}:{basis.township_code}",
                reason="implausible_value",
                detail=f"{source_id} claims {basis.hazard} {entry[1]} ({values}) but every radar voting saw no "
                f"echo near the township's gauges for the whole window ({FIELD_METRIC}): the claim is left out",
                field="level",
                raw=json.dumps(claim, separators=(",", ":")),
                received_at=_iso(tau),
            )
        )


def _all_quiet(state: dict[str, Any]) -> bool:
    """No warning, hold or suppression, and every kept source entry at level none."""
    if state["warning"] is not None or state["held"] or state["suppress_rank"]:
        return False
    return all(entry[1] == "none" for history in state["sources"].values() for entry in history)


def _insert(history: list[list[Any]], entry: list[Any]) -> None:
    for i, existing in enumerate(history):
        if existing[0] == entry[0]:
            history[i] = entry
            return
        if existing[0] > entry[0]:
            history.insert(i, entry)
            return
    history.append(entry)


def _at(history: list[list[Any]], tau: int) -> list[Any] | None:
    """The source's last entry at or before ``tau`` (histories are sorted by time)."""
    for entry in reversed(history):
        if entry[0] <= tau:
            found: list[Any] = entry
            return found
    return None


def _township_level(
    sources: dict[str, list[list[Any]]],
    tau: int,
    rollup: RollupPolicy | None = None,
    ordered: list[str] | None = None,
) -> tuple[int, list[dict[str, Any]], str | None]:
    """The township's level at ``tau`` (the highest source level, or the roll-up), its
    evidence and the rule that found it (``None`` for entries stored before rules were kept).

    Sources are visited in id order (``ordered``: ``sorted(sources)``); a tie keeps the first,
    so which source's rule and evidence a warning carries never depends on arrival order.
    """
    best_rank, best_evidence, best_rule = 0, [], None
    levels: list[str] = []
    for source_id in ordered if ordered is not None else sorted(sources):
        entry = _at(sources[source_id], tau)
        if entry is None:
            continue
        level, evidence = entry[1], entry[2]
        rank = LEVEL_RANK[level]
        if rollup is not None:
            levels.append(level)
        if rank > best_rank:
            best_rank, best_evidence = rank, evidence
            best_rule = entry[3] if len(entry) > 3 else None
    if rollup is None:
        return best_rank, best_evidence, best_rule
    rolled = LEVEL_RANK[township_geohazard_rollup(levels, rollup)]
    if rolled <= best_rank:
        return best_rank, best_evidence, best_rule
    # escalated: several points at once; the evidence is every one of them, plus the count
    floor = LEVEL_RANK[rollup.escalate_from]
    escalating = [
        (source_id, entry[2])
        for source_id in sorted(sources)
        if (entry := _at(sources[source_id], tau)) is not None and LEVEL_RANK[entry[1]] >= floor
    ]
    count = {
        "station_id": escalating[0][0],
        "metric": f"points_at_or_above_{rollup.escalate_from}",
        "value": float(len(escalating)),
        "threshold": float(rollup.escalate_min_points),
        "window_s": None,
        "basis": "observed",
    }
    return rolled, [count, *(e for _, evidence in escalating for e in evidence)], best_rule


class Forecast(NamedTuple):
    """Onset and certainty of the sources that set a township's level."""

    onset_s: int
    certainty: Certainty
    stale: tuple[tuple[str, int], ...] = ()
    """(source, seconds since its last report) when every source at the level is stale"""


def _forecast_at(
    sources: dict[str, list[list[Any]]], tau: int, ordered: list[str], stale_after_s: int | None = None
) -> Forecast | None:
    """The earliest onset and the strongest certainty among the sources at the highest source
    level at ``tau`` (``None`` when every source is at none).

    An observed source (no predicted onset) counts as onset = its report time, so the result
    is never later than ``tau`` when one source at that level has already observed it;
    ``_message`` clamps the onset to the sent time. ``min``/``max`` make it independent of
    the visiting order. Entries stored before onsets were kept read as observed.

    Staleness (``stale_after_s``, ``LifecyclePolicy.stale_after_s``): a source whose last
    report is more than that before ``tau`` is stale. When every source at the level is
    stale, the level rests on readings nobody has confirmed since: the certainty falls to
    ``Possible`` (``detectors.health.downgrade``'s rule for a stale sensor) and ``stale``
    lists them, so the message says which sensors went silent and for how long.
    """
    top, onset = 0, 0
    certainty: Certainty = "Observed"
    at_top: list[tuple[str, int]] = []
    for source_id in ordered:
        entry = _at(sources[source_id], tau)
        if entry is None:
            continue
        rank = LEVEL_RANK[entry[1]]
        if rank == 0 or rank < top:
            continue
        src_onset: int = entry[4] if len(entry) > 4 and entry[4] is not None else entry[0]
        src_certainty: Certainty = entry[5] if len(entry) > 5 else "Observed"
        if rank > top:
            top, onset, certainty = rank, src_onset, src_certainty
            at_top = []
        else:
            onset = min(onset, src_onset)
            certainty = max(certainty, src_certainty, key=lambda c: CERTAINTY_RANK.get(c, 0))
        at_top.append((source_id, tau - int(entry[0])))
    if not top:
        return None
    if stale_after_s is not None and all(silent > stale_after_s for _, silent in at_top):
        if CERTAINTY_RANK.get(certainty, 0) > CERTAINTY_RANK["Possible"]:
            certainty = "Possible"
        return Forecast(onset, certainty, tuple(at_top))
    return Forecast(onset, certainty)


def _trim(history: list[list[Any]], watermark: int) -> None:
    """Keep the last entry at or before the watermark (the level "now") and later ones."""
    for keep_from in range(len(history) - 1, 0, -1):
        if history[keep_from][0] <= watermark:
            del history[:keep_from]
            break


def _prune(state: dict[str, Any], watermark: int, policy: LifecyclePolicy) -> None:
    for history in state["sources"].values():
        _trim(history, watermark)
    if state["outbox"]:
        horizon = watermark - max(policy.outbox_keep_s, policy.allowed_lateness_s)
        state["outbox"] = [m for m in state["outbox"] if m["t"] >= horizon]


def _publish(state: dict[str, Any], msg: WarningMessage, tau: int, policy: LifecyclePolicy) -> WarningMessage:
    """Apply the approval policy and record the message in the outbox."""
    rule = None if msg.msg_type == "Cancel" else policy.hold_for(msg.hazard, msg.level, msg.origin)
    if rule is not None:
        deadline = tau + rule.deadline_s
        msg = msg.model_copy(update={"approval": "held", "hold_deadline_at": _iso(deadline)})
        state["held"].append(
            {"deadline": deadline, "on_deadline": rule.on_deadline, "msg": msg.model_dump(mode="json")}
        )
    state["outbox"].append({"t": tau, "msg": msg.model_dump(mode="json")})
    return msg


def _expire_holds(state: dict[str, Any], tau: int) -> list[WarningMessage]:
    released: list[WarningMessage] = []
    keep = []
    for held in state["held"]:
        if held["deadline"] > tau:
            keep.append(held)
            continue
        if held["on_deadline"] == "release":
            msg = WarningMessage.model_validate(held["msg"]).model_copy(update={"approval": "released"})
            state["outbox"].append({"t": tau, "msg": msg.model_dump(mode="json")})
            released.append(msg)
    state["held"] = keep
    return released


def decide(
    state: dict[str, Any],
    tau: int,
    level_rank: int,
    evidence: list[dict[str, Any]],
    basis: HazardAssessment,
    policy: LifecyclePolicy,
    rule_id: str | None = None,
    forecast_of: Callable[[], Forecast | None] | None = None,
) -> WarningMessage | None:
    """One decision at event time ``tau`` for the rules warning; mutates ``state``.

    ``rule_id``: the rule of the source that sets the township level (default: the basis's).
    ``forecast_of``: onset and certainty of the sources at that level (``_forecast_at``),
    asked only when a message is made; they fill it, never change a decision (a new onset
    alone is no Update).
    """

    def forecast() -> Forecast | None:  # at most one message per decision: asked at most once
        return None if forecast_of is None else forecast_of()

    if level_rank <= state["suppress_rank"]:
        if level_rank == 0:
            state["suppress_rank"] = 0
        level_rank = 0 if state["warning"] is None else level_rank
    else:
        state["suppress_rank"] = 0
    warning: dict[str, Any] | None = state["warning"]
    if warning is None:
        if level_rank == 0:
            return None
        warning_id = f"{basis.hazard}-{basis.township_code}-{_iso(tau):%Y%m%dT%H%M%SZ}"
        rule = rule_id or basis.rule_id
        warning = _new_warning(warning_id, basis.hazard, (basis.township_code,), rule, "rules", None)
        warning["last_active"] = tau
        state["warning"] = warning
        return _message(warning, "Alert", tau, level_rank, evidence, policy, forecast=forecast())

    if level_rank > 0:
        warning["last_active"] = tau
    if level_rank > warning["rank"]:
        warning["below_since"] = None
        return _message(warning, "Update", tau, level_rank, evidence, policy, forecast=forecast())
    if level_rank == 0 and tau - warning["last_active"] >= policy.all_clear_quiet_s:
        state["warning"] = None
        return _message(warning, "Cancel", tau, warning["rank"], evidence, policy)
    if level_rank < warning["rank"]:
        if warning["below_since"] is None:
            warning["below_since"] = tau
        if level_rank > 0 and tau - warning["below_since"] >= policy.deescalate_dwell_s:
            warning["below_since"] = None
            return _message(warning, "Update", tau, level_rank, evidence, policy, forecast=forecast())
    else:
        warning["below_since"] = None
    if tau >= warning["expires"] - policy.renew_before_s and level_rank > 0:
        return _message(warning, "Update", tau, warning["rank"], evidence, policy, forecast=forecast())
    return None


def _new_warning(
    warning_id: str,
    hazard: str,
    township_codes: tuple[str, ...],
    rule_id: str,
    origin: str,
    issued_by: str | None,
) -> dict[str, Any]:
    return {
        "warning_id": warning_id,
        "hazard": hazard,
        "township_codes": list(township_codes),
        "version": 0,
        "rank": 0,
        "last_active": 0,
        "below_since": None,
        "expires": 0,
        "rule_id": rule_id,
        "origin": origin,
        "issued_by": issued_by,
        "sent": [],
    }


class CommandRefusedError(ValueError):
    """An operator command that cannot be applied; the reason is shown to the operator."""


def apply_command(state: dict[str, Any], command: OperatorCommand, policy: LifecyclePolicy) -> list[WarningMessage]:
    """Apply an operator command at its own time; raise ``CommandRefusedError`` with the reason."""
    tau = int(command.at.timestamp())
    if command.command_id in state["commands"]:
        return [WarningMessage.model_validate(m["msg"]) for m in state["outbox"] if m["t"] >= tau]
    out = _expire_holds(state, tau)
    if command.action == "acknowledge":
        pass
    elif command.action in ("approve", "reject"):
        out.extend(_decide_held(state, command, tau))
    elif command.action == "cancel":
        out.append(_cancel(state, command, tau, policy))
    elif command.action == "issue_manual":
        out.append(_issue_manual(state, command, tau, policy))
    state["commands"] = [*state["commands"][-99:], command.command_id]
    return out


def _decide_held(state: dict[str, Any], command: OperatorCommand, tau: int) -> list[WarningMessage]:
    if command.actor_role not in ("approver", "admin"):
        raise CommandRefusedError(f"role {command.actor_role!r} may not {command.action} warnings")
    wanted = [
        h
        for h in state["held"]
        if h["msg"]["warning_id"] == command.warning_id
        and (command.message_id is None or h["msg"]["message_id"] == command.message_id)
    ]
    if not wanted:
        raise CommandRefusedError(f"no message of {command.warning_id} is waiting for approval")
    out: list[WarningMessage] = []
    for held in wanted:
        msg = WarningMessage.model_validate(held["msg"])
        if command.action == "approve":
            if msg.origin == "manual" and msg.level == "red" and msg.issued_by == command.actor:
                raise CommandRefusedError("a manual red warning needs a second person: no self-approval")
            approved = msg.model_copy(update={"approval": "approved", "approved_by": command.actor})
            state["outbox"].append({"t": tau, "msg": approved.model_dump(mode="json")})
            out.append(approved)
        elif msg.msg_type == "Alert" and state["warning"] and state["warning"]["warning_id"] == msg.warning_id:
            state["suppress_rank"] = LEVEL_RANK[msg.level]
            state["warning"] = None
        elif msg.msg_type == "Alert":
            state["manual"].pop(msg.warning_id, None)
    state["held"] = [h for h in state["held"] if h not in wanted]
    return out


def _cancel(state: dict[str, Any], command: OperatorCommand, tau: int, policy: LifecyclePolicy) -> WarningMessage:
    if command.actor_role == "viewer":
        raise CommandRefusedError("a viewer may not cancel warnings")
    warning: dict[str, Any] | None
    if state["warning"] is not None and state["warning"]["warning_id"] == command.warning_id:
        warning = state["warning"]
        state["warning"] = None
        state["suppress_rank"] = warning["rank"]
    else:
        warning = state["manual"].pop(command.warning_id or "", None)
    if warning is None:
        raise CommandRefusedError(f"no active warning {command.warning_id}")
    state["held"] = [h for h in state["held"] if h["msg"]["warning_id"] != warning["warning_id"]]
    msg = _message(
        warning, "Cancel", tau, warning["rank"], [], policy, reason=f"cancelled by {command.actor}: {command.reason}"
    )
    return _publish(state, msg, tau, policy)


def _issue_manual(state: dict[str, Any], command: OperatorCommand, tau: int, policy: LifecyclePolicy) -> WarningMessage:
    manual = command.manual
    if manual is None:  # guaranteed by the contract; kept for the type checker
        raise CommandRefusedError("issue_manual needs 'manual'")
    if command.actor_role == "viewer":
        raise CommandRefusedError("a viewer may not issue warnings")
    warning_id = f"manual-{manual.hazard}-{manual.township_codes[0]}-{command.command_id[:12]}"
    warning = _new_warning(warning_id, manual.hazard, manual.township_codes, "manual", "manual", command.actor)
    state["manual"][warning_id] = warning
    msg = _message(
        warning,
        "Alert",
        tau,
        LEVEL_RANK[manual.level],
        [],
        policy,
        reason=manual.description or f"manual warning by {command.actor}",
        headline=manual.headline,
        validity_s=manual.valid_for_s,
    )
    return _publish(state, msg, tau, policy)


def _stale_evidence(source_id: str, silent_s: int, policy: LifecyclePolicy) -> dict[str, Any]:
    return {
        "station_id": source_id,
        "metric": "sensor_stale_s",
        "value": float(silent_s),
        "threshold": float(policy.stale_after_s) if policy.stale_after_s is not None else None,
        "window_s": None,
        "basis": "observed",
    }


def _message(
    warning: dict[str, Any],
    msg_type: MsgType,
    tau: int,
    level_rank: int,
    evidence: list[dict[str, Any]],
    policy: LifecyclePolicy,
    reason: str | None = None,
    headline: str | None = None,
    validity_s: int | None = None,
    forecast: Forecast | None = None,
) -> WarningMessage:
    """The next message of ``warning``. ``forecast``: onset and certainty of the sources at the
    level (none: observed now, or ``Unknown`` for an operator's manual warning).

    The onset is never before ``sent_at``; the message stays valid ``validity`` from its onset
    (so a typhoon warning a day ahead does not expire before its onset), while the renewal
    clock (``warning["expires"]``) stays ``sent + validity``: an onset never changes when
    messages are issued, nor their ids and versions.
    """
    warning["version"] += 1
    warning["rank"] = level_rank
    version: int = warning["version"]
    warning_id: str = warning["warning_id"]
    hazard: str = warning["hazard"]
    towns: tuple[str, ...] = tuple(warning["township_codes"])
    level: Level = RANK_LEVEL[level_rank]  # type: ignore[assignment]  # rank >= 1 here
    sent = _iso(tau)
    validity = timedelta(seconds=validity_s or policy.validity_s)
    expires = sent + validity
    onset = _iso(max(tau, forecast.onset_s)) if forecast is not None else sent
    certainty: Certainty = "Unknown" if warning["origin"] == "manual" else "Observed"
    if forecast is not None:
        certainty = forecast.certainty
        evidence = [*evidence, *(_stale_evidence(source, silent, policy) for source, silent in forecast.stale)]
    references = list(warning["sent"])
    warning["sent"] = [*references, tau]
    if msg_type != "Cancel":
        warning["expires"] = int(expires.timestamp())
    verb = {"Alert": "发布", "Update": "更新", "Cancel": "解除"}[msg_type]
    default_headline = f"{verb}{HAZARD_ZH[hazard]}{LEVEL_ZH[level]}预警 ({hazard} {level}, {','.join(towns)})"
    return WarningMessage(
        message_id=f"{warning_id}.v{version}",
        warning_id=warning_id,
        version=version,
        msg_type=msg_type,
        hazard=hazard,
        level=level,
        township_codes=towns,
        sent_at=sent,
        onset_at=onset,
        certainty=certainty,
        expires_at=onset + validity,
        references=tuple(
            MessageRef(message_id=f"{warning_id}.v{v}", sent_at=_iso(sent_s))
            for v, sent_s in enumerate(references, start=1)
        ),
        headline=(headline if msg_type == "Alert" and headline else default_headline)[:200],
        reason=(reason or f"{msg_type} at {sent:%Y-%m-%dT%H:%MZ} by rule {warning['rule_id']}")[:500],
        rule_id=warning["rule_id"],
        evidence=tuple(Evidence.model_validate(e) for e in evidence),
        origin=warning["origin"],
        issued_by=warning["issued_by"],
    )
