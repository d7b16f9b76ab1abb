"""Warning lifecycle: properties (hypothesis) and named cases."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.assessment import HazardAssessment
from schemas.common import LEVEL_RANK
from schemas.warning import WarningMessage
from services.rules import lifecycle
from services.rules.lifecycle import LifecyclePolicy, fold, new_state

T0 = datetime(2020, 8, 3, 12, 0, tzinfo=UTC)
LEVELS = ["none", "blue", "yellow", "orange", "red"]
POLICY = LifecyclePolicy(allowed_lateness_s=86_400, deescalate_dwell_s=3600, all_clear_quiet_s=3 * 3600)
lifecycle_all_quiet = lifecycle._all_quiet


def assessment(source: str, minute: int, level: str) -> HazardAssessment:
    return HazardAssessment(
        hazard="rainstorm",
        township_code="330302006",
        source_id=source,
        assessed_at=T0 + timedelta(minutes=minute),
        level=level,
        rule_id="test",
    )


def run(stream: list[HazardAssessment], policy: LifecyclePolicy = POLICY) -> list[WarningMessage]:
    state: dict[str, Any] = new_state()
    out: list[WarningMessage] = []
    expected = frozenset(a.source_id for a in stream)
    for a in stream:
        messages, _ = fold(state, a, policy, expected)
        out.extend(messages)
    return out


def unique_by_id(messages: list[WarningMessage]) -> list[WarningMessage]:
    seen: dict[str, WarningMessage] = {}
    for m in messages:
        assert seen.setdefault(m.message_id, m) == m, "one id, two different messages"
    return list(seen.values())


source_series = st.lists(st.sampled_from(LEVELS), min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(
    series=st.lists(source_series, min_size=1, max_size=3),
    order_seed=st.randoms(use_true_random=False),
)
def test_same_warnings_whatever_the_interleaving(series: list[list[str]], order_seed: Any) -> None:
    """Sources arrive through different partitions; the result must not depend on it."""
    length = min(len(s) for s in series)
    per_source = [[assessment(f"G{i}", 10 * t, lvl) for t, lvl in enumerate(s[:length])] for i, s in enumerate(series)]
    in_time_order = [a for t in range(length) for a in (src[t] for src in per_source)]
    # random interleaving preserving each source's own order (one partition per source)
    cursors = [0] * len(per_source)
    shuffled: list[HazardAssessment] = []
    while any(c < length for c in cursors):
        candidates = [i for i, c in enumerate(cursors) if c < length]
        pick = order_seed.choice(candidates)
        shuffled.append(per_source[pick][cursors[pick]])
        cursors[pick] += 1
    assert unique_by_id(run(shuffled)) == unique_by_id(run(in_time_order))


@settings(max_examples=60, deadline=None)
@given(levels=st.lists(st.sampled_from(LEVELS), min_size=1, max_size=120))
def test_ids_unique_and_references_complete(levels: list[str]) -> None:
    messages = run([assessment("G1", 10 * i, lvl) for i, lvl in enumerate(levels)])
    assert len({m.message_id for m in messages}) == len(messages)
    by_warning: dict[str, list[WarningMessage]] = {}
    for m in messages:
        by_warning.setdefault(m.warning_id, []).append(m)
    for chain in by_warning.values():
        assert [m.version for m in chain] == list(range(1, len(chain) + 1))
        assert chain[0].msg_type == "Alert"
        for m in chain[1:]:
            assert [(r.message_id, r.sent_at) for r in m.references] == [
                (x.message_id, x.sent_at) for x in chain[: m.version - 1]
            ]
        assert all(m.msg_type != "Cancel" for m in chain[:-1]), "nothing follows a Cancel"


@settings(max_examples=40, deadline=None)
@given(
    low=st.sampled_from(["blue", "yellow", "orange"]),
    period=st.integers(min_value=1, max_value=5),
    cycles=st.integers(min_value=3, max_value=30),
)
def test_no_flapping_under_oscillating_input(low: str, period: int, cycles: int) -> None:
    """Oscillating faster than the dwell: one escalation, never a de-escalation."""
    high = LEVELS[LEVEL_RANK[low] + 1]
    levels = ([high] * period + [low] * period) * cycles
    messages = run([assessment("G1", 10 * i, lvl) for i, lvl in enumerate(levels)])
    downgrades = [m for prev, m in itertools.pairwise(messages) if LEVEL_RANK[m.level] < LEVEL_RANK[prev.level]]
    # 10-min reports, dwell 60 min: a low spell of <= 5 reports (50 min) never de-escalates
    assert downgrades == []
    assert messages[0].level == high


def test_escalates_at_once_and_cancels_after_quiet_period() -> None:
    levels = ["none", "yellow", "red"] + ["none"] * 19
    messages = run([assessment("G1", 10 * i, lvl) for i, lvl in enumerate(levels)])
    assert [(m.msg_type, m.level) for m in messages] == [("Alert", "yellow"), ("Update", "red"), ("Cancel", "red")]
    assert messages[1].sent_at == T0 + timedelta(minutes=20)
    assert messages[2].sent_at == T0 + timedelta(minutes=20 + 180)


def test_deescalates_after_dwell() -> None:
    levels = ["red"] + ["yellow"] * 8
    messages = run([assessment("G1", 10 * i, lvl) for i, lvl in enumerate(levels)])
    assert [(m.msg_type, m.level) for m in messages] == [("Alert", "red"), ("Update", "yellow")]
    assert messages[1].sent_at == T0 + timedelta(minutes=70)


def test_repeat_reemits_the_same_messages() -> None:
    stream = [assessment("G1", 10 * i, lvl) for i, lvl in enumerate(["none", "orange", "orange"])]
    state: dict[str, Any] = new_state()
    first: list[WarningMessage] = []
    for a in stream:
        first.extend(fold(state, a, POLICY)[0])
    again, late = fold(state, stream[1], POLICY)
    assert late
    assert again == first


def test_quiet_source_does_not_hold_back_forever() -> None:
    """A silent gauge delays decisions by at most the allowed lateness."""
    policy = LifecyclePolicy(allowed_lateness_s=600)
    stream = [assessment("G2", 0, "none")] + [assessment("G1", 10 * i, "orange") for i in range(1, 4)]
    messages = run(stream, policy)
    assert [m.msg_type for m in messages] == ["Alert"]
    assert messages[0].sent_at == T0 + timedelta(minutes=10)


mostly_none = st.lists(st.sampled_from(["none"] * 6 + LEVELS[1:]), min_size=1, max_size=60)


@settings(max_examples=60, deadline=None)
@given(series=st.lists(mostly_none, min_size=1, max_size=3), order_seed=st.randoms(use_true_random=False))
def test_the_quiet_fast_path_decides_as_the_full_loop(series: list[list[str]], order_seed: Any) -> None:
    """Skipping the decision times of an all-none key changes no message and no state."""
    per_source = [[assessment(f"G{i}", 10 * t, lvl) for t, lvl in enumerate(s)] for i, s in enumerate(series)]
    stream = [a for src in per_source for a in src]
    order_seed.shuffle(stream)
    stream.sort(key=lambda a: a.assessed_at)  # each source in order; ties shuffled
    policy = LifecyclePolicy(allowed_lateness_s=600, deescalate_dwell_s=1800, all_clear_quiet_s=3600)

    def fold_all(skip_quiet: bool) -> tuple[list[WarningMessage], dict[str, Any]]:
        state: dict[str, Any] = new_state()
        out: list[WarningMessage] = []
        expected = frozenset(a.source_id for a in stream)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(lifecycle, "_all_quiet", lifecycle_all_quiet if skip_quiet else lambda _s: False)
            for a in stream:
                out.extend(fold(state, a, policy, expected)[0])
        return out, state

    assert fold_all(skip_quiet=True) == fold_all(skip_quiet=False)


def test_a_source_far_behind_keeps_a_bounded_history_and_its_last_level_counts() -> None:
    """Partition skew: a radar 5 h ahead moves the decisions on, so each of the gauge's 300
    reports arrives late. Only its last entry at or before the decided time matters from then
    on; the state kept one entry, not 300 (a Kafka worker replaying a backlog wrote a
    300-kB changelog entry for one key before this, and one over the broker's 1 MB limit)."""
    policy = LifecyclePolicy(allowed_lateness_s=600)
    state: dict[str, Any] = new_state()
    fold(state, assessment("RADAR", 300, "none"), policy)
    decided = state["decided_until"]
    for minute in range(300):
        messages, late = fold(state, assessment("G1", minute, "orange" if minute == 299 else "none"), policy)
        assert late
        assert messages == []
    assert state["decided_until"] == decided
    assert len(state["sources"]["G1"]) == 1
    # the radar moves to 301, the gauge catches up at 302: the decision at 301 takes the gauge's
    # level then, its last late entry (orange at 299), kept by the trim
    assert fold(state, assessment("RADAR", 301, "none"), policy) == ([], False)
    messages, late = fold(state, assessment("G1", 302, "orange"), policy)
    assert not late
    assert [(m.msg_type, m.level, m.sent_at) for m in messages] == [("Alert", "orange", T0 + timedelta(minutes=301))]
