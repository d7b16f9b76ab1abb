"""SMS segment counting and the compose check."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.command import ManualWarning
from services.console.compose import ChannelChecker, check_manual, count_segments, count_segments_local
from services.console.geo import towns_lookup
from services.console.testing import T0, small_registry


@pytest.mark.parametrize(
    ("text", "encoding", "segments"),
    [
        pytest.param("", "GSM-7", 0, id="empty"),
        pytest.param("a" * 160, "GSM-7", 1, id="gsm-single-full"),
        pytest.param("a" * 161, "GSM-7", 2, id="gsm-two"),
        pytest.param("{" * 80, "GSM-7", 1, id="gsm-escapes-cost-two"),
        pytest.param("{" * 81, "GSM-7", 2, id="gsm-escape-overflow"),
        pytest.param("暴" * 70, "UCS-2", 1, id="ucs2-single-full"),
        pytest.param("暴" * 71, "UCS-2", 2, id="ucs2-two"),
        pytest.param("暴" * 134, "UCS-2", 2, id="ucs2-two-full"),
        pytest.param("暴" * 135, "UCS-2", 3, id="ucs2-three"),
        pytest.param("暴" * 66 + "🌧", "UCS-2", 1, id="surrogate-pair-fits"),
        pytest.param("暴" * 66 + "🌧" + "雨" * 4, "UCS-2", 2, id="surrogate-pair-not-split"),
    ],
)
def test_local_counter(text: str, encoding: str, segments: int) -> None:
    found = count_segments_local(text)
    assert (found.encoding, found.segments) == (encoding, segments)


@given(st.text(alphabet=st.sampled_from(list("ab{€ 暴雨预警🌧,.\n")), max_size=400))
def test_local_counter_agrees_with_dispatch(text: str) -> None:
    assert count_segments_local(text) == count_segments(text)


def test_check_sums_population_and_checks_every_channel() -> None:
    towns = towns_lookup(small_registry())
    manual = ManualWarning(hazard="flood", level="red", township_codes=("330302006", "330304103"), headline="洪水")
    result = check_manual(manual, "li.na", T0, towns, ChannelChecker(("sms", "broadcast", "app")))
    assert result["population"] == 52000 + 28000
    assert result["renderer"] == "dispatch"
    assert [c["channel"] for c in result["channels"]] == ["sms", "broadcast", "app"]
    sms = result["channels"][0]
    assert sms["encoding"] == "UCS-2"
    assert sms["segments"] >= 1
    assert sms["ok"] is True
    assert "洪水红色预警" in sms["text"]


def test_check_reports_unknown_townships() -> None:
    towns = towns_lookup(small_registry())
    manual = ManualWarning(hazard="flood", level="red", township_codes=("330302006", "339999999"), headline="x")
    result = check_manual(manual, "li.na", T0, towns, ChannelChecker(("sms",)))
    assert result["unknown_townships"] == ["339999999"]
    assert result["population"] == 52000
    assert result["channels"] == []
