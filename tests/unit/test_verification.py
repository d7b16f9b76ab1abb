"""Warning skill scoring: hits, misses, false alarms and lead time on hand-made cases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from schemas.warning import MessageRef, WarningMessage
from services.rules.verification import TruthInterval, score

T0 = datetime(2019, 8, 9, 12, 0, tzinfo=UTC)
END = T0 + timedelta(hours=24)


def h(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def msg(
    wid: str, version: int, kind: str, level: str, minute: float, town: str = "330302006", **kw: object
) -> WarningMessage:
    return WarningMessage(
        message_id=f"{wid}.v{version}",
        warning_id=wid,
        version=version,
        msg_type=kind,
        hazard="short_heavy_rain",
        level=level,
        township_codes=(town,),
        sent_at=h(minute),
        onset_at=h(minute),
        expires_at=h(minute + 360),
        references=tuple(MessageRef(message_id=f"{wid}.v{v}", sent_at=h(minute)) for v in range(1, version)),
        headline="t",
        **kw,
    )


def test_hit_with_lead_time_miss_and_false_alarm() -> None:
    truth = [
        TruthInterval("short_heavy_rain", "330302006", "yellow", h(90), h(150)),  # warned 60 min ahead
        TruthInterval("short_heavy_rain", "330302023", "yellow", h(100), h(120)),  # never warned
    ]
    messages = [
        msg("w1", 1, "Alert", "yellow", 30),
        msg("w1", 2, "Cancel", "yellow", 300),
        msg("w2", 1, "Alert", "yellow", 600, town="330303001"),  # nothing happened there
    ]
    card = score(truth, messages, scenario="t", horizon_end=END)
    (any_level,) = [s for s in card.scores if s.level == "any"]
    assert (any_level.events, any_level.hits, any_level.misses, any_level.false_alarms) == (2, 1, 1, 1)
    assert any_level.pod == 0.5
    assert any_level.far == 0.5
    assert any_level.csi == 1 / 3
    assert any_level.lead_time_warned_min == 60.0
    assert any_level.lead_time_all_min == 30.0
    assert "| short_heavy_rain | any | 2 | 1 | 1 | 1 |" in card.to_markdown()


def test_warning_after_onset_has_zero_lead_and_held_waits_for_release() -> None:
    truth = [TruthInterval("short_heavy_rain", "330302006", "orange", h(60), h(120))]
    late = [msg("w1", 1, "Alert", "orange", 75)]
    card = score(truth, late, scenario="t", horizon_end=END)
    (s,) = [x for x in card.scores if x.level == "any"]
    assert (s.hits, s.lead_time_warned_min) == (1, 0.0)
    held_forever = [msg("w2", 1, "Alert", "orange", 0, approval="held")]
    card = score(truth, held_forever, scenario="t", horizon_end=END)
    (s,) = [x for x in card.scores if x.level == "any"]
    assert (s.hits, s.misses) == (0, 1), "a held message reached nobody"


def test_level_threshold_requires_the_level() -> None:
    truth = [TruthInterval("short_heavy_rain", "330302006", "red", h(60), h(120))]
    messages = [msg("w1", 1, "Alert", "yellow", 0), msg("w1", 2, "Update", "red", 50)]
    card = score(truth, messages, scenario="t", horizon_end=END)
    red = next(s for s in card.scores if s.level == "red")
    assert (red.hits, red.lead_time_warned_min) == (1, 10.0)
    anyl = next(s for s in card.scores if s.level == "any")
    assert anyl.lead_time_warned_min == 60.0


def test_quiet_day_scores_nothing() -> None:
    card = score([], [], scenario="quiet", horizon_end=END)
    assert card.scores == ()
