"""Forecast onsets and certainty in every rendering: CAP urgency/certainty/onset, SMS, EBM, push."""

from __future__ import annotations

from datetime import timedelta

import pytest
from lxml import etree

from schemas.cap import CAP_NAMESPACE
from schemas.warning import WarningMessage
from services.dispatch.render import render_message
from services.dispatch.render.cap import render_cap, validate_cap
from services.dispatch.render.sms import compose_sms
from services.dispatch.render.vocab import cap_time
from tests.unit.dispatch.factories import TOWNS, chain

NS = {"cap": CAP_NAMESPACE}


def forecast(lead_min: float, certainty: str = "Likely", *, versions: int = 1, **kw: object) -> WarningMessage:
    msg = chain(versions, **kw)[-1]  # type: ignore[arg-type]
    onset = msg.sent_at + timedelta(minutes=lead_min)
    return msg.model_copy(update={"onset_at": onset, "certainty": certainty, "expires_at": onset + timedelta(hours=6)})


def infos(msg: WarningMessage) -> list[etree._Element]:
    xml = render_cap(msg, TOWNS)
    validate_cap(xml)
    found = etree.fromstring(xml).findall("cap:info", NS)
    assert len(found) == 2
    return found


@pytest.mark.parametrize(
    ("lead_min", "urgency"),
    [
        pytest.param(0, "Immediate", id="observed"),
        pytest.param(10, "Immediate", id="10min"),
        pytest.param(15, "Immediate", id="15min"),
        pytest.param(40, "Expected", id="40min"),
        pytest.param(60, "Expected", id="60min"),
        pytest.param(61, "Future", id="61min"),
        pytest.param(24 * 60, "Future", id="a-day-ahead"),
    ],
)
def test_cap_urgency_from_the_lead_and_onset_element(lead_min: float, urgency: str) -> None:
    msg = forecast(lead_min, "Likely")
    for info in infos(msg):
        assert info.findtext("cap:urgency", namespaces=NS) == urgency
        assert info.findtext("cap:certainty", namespaces=NS) == "Likely"
        assert info.findtext("cap:onset", namespaces=NS) == cap_time(msg.onset_at)
        assert info.findtext("cap:effective", namespaces=NS) == cap_time(msg.sent_at)


@pytest.mark.parametrize("certainty", ["Observed", "Likely", "Possible", "Unlikely", "Unknown"])
def test_cap_certainty_is_the_messages(certainty: str) -> None:
    for info in infos(forecast(30, certainty)):
        assert info.findtext("cap:certainty", namespaces=NS) == certainty


def test_cancel_is_past_whatever_the_onset() -> None:
    msg = forecast(0, "Observed", versions=2, last="Cancel")
    for info in infos(msg):
        assert info.findtext("cap:urgency", namespaces=NS) == "Past"


def test_payload_without_certainty_keeps_the_evidence_inference() -> None:
    """Older payloads have no ``certainty``: forecast-only evidence still reads Likely."""
    data = chain(1)[0].model_dump(mode="json")
    del data["certainty"]
    data["evidence"][0]["basis"] = "forecast"
    old = WarningMessage.model_validate(data)
    assert old.certainty == "Observed"  # the schema default
    for info in infos(old):
        assert info.findtext("cap:certainty", namespaces=NS) == "Likely"
    data["evidence"] = []
    for info in infos(WarningMessage.model_validate(data)):
        assert info.findtext("cap:certainty", namespaces=NS) == "Unknown"


def test_descriptions_say_when_the_onset_is_ahead() -> None:
    msg = forecast(60)  # sent 14:30 BJT → onset 15:30 BJT
    zh, en = infos(msg)
    assert "预计15时30分起受影响" in (zh.findtext("cap:description", namespaces=NS) or "")
    assert "Onset expected from 07-25 15:30 BJT" in (en.findtext("cap:description", namespaces=NS) or "")
    zh, en = infos(forecast(0, "Observed"))
    assert "预计" not in (zh.findtext("cap:description", namespaces=NS) or "").split("。")[2]
    assert "Onset expected" not in (en.findtext("cap:description", namespaces=NS) or "")


def test_sms_says_the_predicted_onset_and_fits_one_segment() -> None:
    sms = compose_sms(forecast(60), TOWNS)
    assert "预计15时30分起" in sms.text
    assert sms.segments == 1
    assert sms.template == 1
    assert "有效至21时30分" in sms.text


def test_sms_for_many_townships_keeps_the_onset_before_the_area_detail() -> None:
    towns = ("330304108", "330304008", "330304012", "330324108", "330324110", "330328225", "330382210")
    sms = compose_sms(forecast(60, towns=towns), TOWNS)
    assert sms.segments == 1
    assert "预计15时30分起" in sms.text


def test_sms_of_observed_warnings_is_unchanged() -> None:
    msg = chain(1)[0]
    assert compose_sms(msg, TOWNS) == compose_sms(msg.model_copy(update={"certainty": "Observed"}), TOWNS)
    assert "预计" not in compose_sms(msg, TOWNS).text.split("：")[1][:8]
    assert "14时30分至20时30分" in compose_sms(msg, TOWNS).text


def test_sms_onset_on_the_next_day_names_the_day() -> None:
    sms = compose_sms(forecast(12 * 60), TOWNS)  # 14:30 BJT + 12 h = 26th 02:30
    assert "预计26日2时30分起" in sms.text


def test_broadcast_and_push_carry_the_onset() -> None:
    msg = forecast(60, "Likely")
    rendered = render_message(msg, TOWNS)
    tts = rendered.broadcast["330304"]["EBM"]["MsgContent"]["MsgDesc"]
    assert "预计七月二十五日十五时三十分起受影响" in tts
    assert rendered.broadcast["330304"]["EBM"]["MsgBasicInfo"]["StartTime"] == "2024-07-25 15:30:00"
    assert rendered.push["data"]["onset"] == cap_time(msg.onset_at)
    assert rendered.push["data"]["certainty"] == "Likely"
    assert "预计15时30分起" in rendered.push["body"]
    observed = render_message(chain(1)[0], TOWNS)
    assert "受影响" not in observed.broadcast["330304"]["EBM"]["MsgContent"]["MsgDesc"]
    assert observed.push["data"]["certainty"] == "Observed"
