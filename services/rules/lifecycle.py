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
   the township level is the highest.
4. A record at or before ``decided_until`` is a repeat or late: it is folded into the
   history (for later decisions) and the messages decided since its time are re-emitted
   from the outbox (same ids), so a crash between a state write and a publish loses
   nothing; consumers drop the repeats by id.

Decisions at ``τ`` (pure, ``decide``):

- no warning, level > none          → Alert (v1); id ``<hazard>-<township>-<τ>``
- level above the warning's         → Update at once (escalate)
- level below, for ≥ dwell          → Update down (de-escalate after the dwell)
- level none for ≥ quiet period     → Cancel (all-clear); the episode ends
- still active near expiry          → Update (renew ``expires_at``)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from schemas.assessment import Evidence, HazardAssessment
from schemas.common import LEVEL_RANK, RANK_LEVEL, Level
from schemas.warning import MessageRef, MsgType, WarningMessage

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


class LifecyclePolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    allowed_lateness_s: int = Field(default=600, ge=0)
    validity_s: int = Field(default=6 * 3600, ge=600, description="expires_at = sent + validity")
    renew_before_s: int = Field(default=1800, ge=0, description="renew this long before expiry")
    deescalate_dwell_s: int = Field(default=3600, ge=0)
    all_clear_quiet_s: int = Field(default=3 * 3600, ge=0)
    outbox_keep_s: int = Field(default=3600, ge=0, description="re-emit window after a repeat")


def _iso(epoch_s: int) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


def new_state() -> dict[str, Any]:
    return {"sources": {}, "decided_until": None, "warning": None, "outbox": []}


def fold(
    state: dict[str, Any],
    assessment: HazardAssessment,
    policy: LifecyclePolicy,
    expected_sources: frozenset[str] = frozenset(),
) -> tuple[list[WarningMessage], bool]:
    """Apply one assessment; return the messages to publish and whether it was late."""
    t = int(assessment.assessed_at.timestamp())
    history: list[list[Any]] = state["sources"].setdefault(assessment.source_id, [])
    entry = [t, assessment.level, [e.model_dump(mode="json") for e in assessment.evidence]]
    _insert(history, entry)
    decided_until: int | None = state["decided_until"]

    if decided_until is not None and t <= decided_until:
        replay = [m for m in state["outbox"] if m["t"] >= t]
        return [WarningMessage.model_validate(m["msg"]) for m in replay], True

    latest = {source: h[-1][0] for source, h in state["sources"].items() if h}
    newest = max(latest.values())
    if expected_sources - latest.keys():
        watermark = newest - policy.allowed_lateness_s
    else:
        watermark = max(min(latest.values()), newest - policy.allowed_lateness_s)
    if decided_until is not None and watermark <= decided_until:
        return [], False
    times = sorted(
        {
            h_t
            for h in state["sources"].values()
            for h_t, _, _ in h
            if (decided_until is None or h_t > decided_until) and h_t <= watermark
        }
    )
    emitted: list[WarningMessage] = []
    for tau in times:
        level_rank, evidence = _township_level(state["sources"], tau)
        msg = decide(state, tau, level_rank, evidence, assessment, policy)
        if msg is not None:
            emitted.append(msg)
            state["outbox"].append({"t": tau, "msg": msg.model_dump(mode="json")})
    state["decided_until"] = watermark
    _prune(state, watermark, policy)
    return emitted, False


def _insert(history: list[list[Any]], entry: list[Any]) -> None:
    for i, existing in enumerate(history):
        if existing[0] == entry[0]:
            history[i] = entry
            return
        if existing[0] > entry[0]:
            history.insert(i, entry)
            return
    history.append(entry)


def _township_level(sources: dict[str, list[list[Any]]], tau: int) -> tuple[int, list[dict[str, Any]]]:
    best_rank, best_evidence = 0, []
    for source_id in sorted(sources):
        at_tau = [h for h in sources[source_id] if h[0] <= tau]
        if not at_tau:
            continue
        _, level, evidence = at_tau[-1]
        rank = LEVEL_RANK[level]
        if rank > best_rank:
            best_rank, best_evidence = rank, evidence
    return best_rank, best_evidence


def _prune(state: dict[str, Any], watermark: int, policy: LifecyclePolicy) -> None:
    for history in state["sources"].values():
        # keep the last entry at or before the watermark (the level "now") and later ones
        keep_from = 0
        for i, h in enumerate(history):
            if h[0] <= watermark:
                keep_from = i
        del history[:keep_from]
    horizon = watermark - max(policy.outbox_keep_s, policy.allowed_lateness_s)
    state["outbox"] = [m for m in state["outbox"] if m["t"] >= horizon]


def decide(
    state: dict[str, Any],
    tau: int,
    level_rank: int,
    evidence: list[dict[str, Any]],
    basis: HazardAssessment,
    policy: LifecyclePolicy,
) -> WarningMessage | None:
    """One decision at event time ``tau``; mutates ``state["warning"]``."""
    warning: dict[str, Any] | None = state["warning"]
    if warning is None:
        if level_rank == 0:
            return None
        warning_id = f"{basis.hazard}-{basis.township_code}-{_iso(tau):%Y%m%dT%H%M%SZ}"
        warning = {
            "warning_id": warning_id,
            "version": 0,
            "rank": level_rank,
            "last_active": tau,
            "below_since": None,
            "expires": tau,
            "rule_id": basis.rule_id,
            "sent": [],
        }
        state["warning"] = warning
        return _message(warning, "Alert", tau, level_rank, evidence, basis, policy)

    if level_rank > 0:
        warning["last_active"] = tau
    if level_rank > warning["rank"]:
        warning["below_since"] = None
        return _message(warning, "Update", tau, level_rank, evidence, basis, policy)
    if level_rank == 0 and tau - warning["last_active"] >= policy.all_clear_quiet_s:
        state["warning"] = None
        return _message(warning, "Cancel", tau, warning["rank"], evidence, basis, policy)
    if level_rank < warning["rank"]:
        if warning["below_since"] is None:
            warning["below_since"] = tau
        if level_rank > 0 and tau - warning["below_since"] >= policy.deescalate_dwell_s:
            warning["below_since"] = None
            return _message(warning, "Update", tau, level_rank, evidence, basis, policy)
    else:
        warning["below_since"] = None
    if tau >= warning["expires"] - policy.renew_before_s and level_rank > 0:
        return _message(warning, "Update", tau, warning["rank"], evidence, basis, policy)
    return None


def _message(
    warning: dict[str, Any],
    msg_type: MsgType,
    tau: int,
    level_rank: int,
    evidence: list[dict[str, Any]],
    basis: HazardAssessment,
    policy: LifecyclePolicy,
) -> WarningMessage:
    warning["version"] += 1
    warning["rank"] = level_rank
    version: int = warning["version"]
    warning_id: str = warning["warning_id"]
    level: Level = RANK_LEVEL[level_rank]  # type: ignore[assignment]  # rank >= 1 here
    sent = _iso(tau)
    expires = sent + timedelta(seconds=policy.validity_s)
    references = list(warning["sent"])
    warning["sent"] = [*references, tau]
    if msg_type != "Cancel":
        warning["expires"] = int(expires.timestamp())
    hazard_zh = HAZARD_ZH[basis.hazard]
    verb = {"Alert": "发布", "Update": "更新", "Cancel": "解除"}[msg_type]
    return WarningMessage(
        message_id=f"{warning_id}.v{version}",
        warning_id=warning_id,
        version=version,
        msg_type=msg_type,
        hazard=basis.hazard,
        level=level,
        township_codes=(basis.township_code,),
        sent_at=sent,
        onset_at=sent,
        expires_at=expires,
        references=tuple(
            MessageRef(message_id=f"{warning_id}.v{v}", sent_at=_iso(sent_s))
            for v, sent_s in enumerate(references, start=1)
        ),
        headline=f"{verb}{hazard_zh}{LEVEL_ZH[level]}预警 ({basis.hazard} {level}, {basis.township_code})",
        reason=f"{msg_type} at {sent:%Y-%m-%dT%H:%MZ} by rule {warning['rule_id']}",
        rule_id=warning["rule_id"],
        evidence=tuple(Evidence.model_validate(e) for e in evidence),
    )
