"""Warning skill of a scenario replay: scorecards, targets, and active-vs-candidate comparison.

Scoring itself (POD, FAR, CSI, lead time) lives in ``services.rules.verification``; this
module feeds it a replay's warnings and ground truth (``GroundTruth.scoring_episodes``: one
event per contiguous spell of a hazard at a township, labelled with its highest level)
and states the targets the rules are held to:

=================  =======  =====  ==========================
hazard             POD ≥    FAR ≤  mean lead over warned events
=================  =======  =====  ==========================
short_heavy_rain   0.85     0.30   ≥ 60 min
convection         0.85     0.30   ≥ 60 min
=================  =======  =====  ==========================

A quiet scenario (no truth events) is held to "no warning issued".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schemas.warning import WarningMessage
from services.rules.verification import Score, Scorecard, TruthInterval, score
from services.scenario_run import RunResult


@dataclass(frozen=True, slots=True)
class SkillTarget:
    pod_min: float = 0.85
    far_max: float = 0.30
    lead_warned_min: float = 60.0


SKILL_TARGETS: dict[str, SkillTarget] = {
    "short_heavy_rain": SkillTarget(),
    "convection": SkillTarget(),
}


@dataclass(frozen=True, slots=True)
class TargetCheck:
    hazard: str
    metric: str
    value: float | None
    target: str
    ok: bool


def scorecard_for(
    result: RunResult, messages: list[WarningMessage] | None = None, rule_set: str = "active"
) -> Scorecard:
    """Score ``messages`` (default: the active rules' warnings) against the run's truth."""
    return score(
        truth_intervals(result),
        result.messages if messages is None else messages,
        scenario=result.scenario.name,
        horizon_end=result.scenario.end,
        rule_set=rule_set,
    )


def truth_intervals(result: RunResult) -> list[TruthInterval]:
    return [TruthInterval(e.hazard, e.township_code, e.level, e.onset, e.end) for e in result.truth.scoring_episodes()]


def _any_level(card: Scorecard, hazard: str) -> Score | None:
    return next((s for s in card.scores if s.hazard == hazard and s.level == "any"), None)


def check_targets(card: Scorecard, messages: list[WarningMessage], truth_events: int) -> list[TargetCheck]:
    """The targets that apply to this scenario, each with its measured value and verdict."""
    checks: list[TargetCheck] = []
    if truth_events == 0:
        issued = sum(1 for m in messages if m.msg_type == "Alert" and m.disseminate)
        checks.append(TargetCheck("all", "warnings issued", float(issued), "= 0 (quiet scenario)", issued == 0))
        return checks
    for hazard, target in SKILL_TARGETS.items():
        row = _any_level(card, hazard)
        if row is None or row.events == 0:
            continue
        checks.append(TargetCheck(hazard, "POD", row.pod, f">= {target.pod_min}", (row.pod or 0.0) >= target.pod_min))
        far_ok = row.far is not None and row.far <= target.far_max
        checks.append(TargetCheck(hazard, "FAR", row.far, f"<= {target.far_max}", far_ok))
        lead = row.lead_time_warned_min
        lead_ok = lead is not None and lead >= target.lead_warned_min
        checks.append(TargetCheck(hazard, "lead warned (min)", lead, f">= {target.lead_warned_min:g}", lead_ok))
    return checks


def checks_markdown(checks: list[TargetCheck]) -> str:
    if not checks:
        return "No skill target applies to this scenario.\n"
    rows = [
        f"| {c.hazard} | {c.metric} | {'—' if c.value is None else f'{c.value:.2f}'} | {c.target} | "
        f"{'ok' if c.ok else 'MISSED'} |"
        for c in checks
    ]
    return "| hazard | metric | value | target | verdict |\n|---|---|---|---|---|\n" + "\n".join(rows) + "\n"


def comparison_markdown(active: Scorecard, candidate: Scorecard) -> str:
    """Side by side, per hazard at any level: POD, FAR, CSI, lead; candidate − active."""
    hazards = sorted({s.hazard for s in (*active.scores, *candidate.scores) if s.level == "any"})
    lines = [
        f"### {candidate.rule_set} vs {active.rule_set} — {active.scenario}\n",
        "| hazard | POD | FAR | CSI | lead warned (min) | false alarms |",
        "|---|---|---|---|---|---|",
    ]

    def cell(a: float | None, c: float | None, digits: int = 2) -> str:
        if a is None and c is None:
            return "—"
        fa = "—" if a is None else f"{a:.{digits}f}"
        fc = "—" if c is None else f"{c:.{digits}f}"
        delta = "" if a is None or c is None else f" ({c - a:+.{digits}f})"
        return f"{fa} → {fc}{delta}"

    def field(row: Score | None, name: str) -> float | None:
        value = None if row is None else getattr(row, name)
        return None if value is None else float(value)

    for hazard in hazards:
        a, c = _any_level(active, hazard), _any_level(candidate, hazard)
        lines.append(
            f"| {hazard} | {cell(field(a, 'pod'), field(c, 'pod'))} | {cell(field(a, 'far'), field(c, 'far'))} | "
            f"{cell(field(a, 'csi'), field(c, 'csi'))} | "
            f"{cell(field(a, 'lead_time_warned_min'), field(c, 'lead_time_warned_min'), 1)} | "
            f"{a.false_alarms if a else 0} → {c.false_alarms if c else 0} |"
        )
    return "\n".join(lines) + "\n"


def report_dict(result: RunResult, cards: list[Scorecard], checks: list[TargetCheck]) -> dict[str, Any]:
    return {
        "scenario": result.scenario.name,
        "seed": result.scenario.seed,
        "span_hours": result.scenario.span_hours,
        "observations": {
            "received": result.counts.received,
            "accepted": result.counts.accepted,
            "rejected": result.counts.rejected,
            "accepted_by_kind": result.counts.accepted_by_kind,
            "rejected_by_reason": result.counts.by_reason,
        },
        "truth_events": len(result.truth.scoring_episodes()),
        "scorecards": [card.model_dump(mode="json") for card in cards],
        "targets": [
            {"hazard": c.hazard, "metric": c.metric, "value": c.value, "target": c.target, "ok": c.ok} for c in checks
        ],
        "wall_s": round(result.wall_s, 3),
    }


def write_reports(
    result: RunResult,
    cards: list[Scorecard],
    checks: list[TargetCheck],
    json_path: Path | None,
    markdown_path: Path | None,
) -> None:
    if json_path is not None:
        json_path.write_text(json.dumps(report_dict(result, cards, checks), indent=2, sort_keys=True) + "\n")
    if markdown_path is not None:
        parts = [card.to_markdown() for card in cards]
        parts.append("### Targets\n\n" + checks_markdown(checks))
        if len(cards) > 1:
            parts.extend(comparison_markdown(cards[0], other) for other in cards[1:])
        markdown_path.write_text("\n".join(parts), encoding="utf-8")
