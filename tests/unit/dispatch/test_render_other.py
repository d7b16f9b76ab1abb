"""Broadcast EBM (structure, severity, TTS) and app push payloads."""

from __future__ import annotations

import re

import pytest
from lxml import etree

from services.dispatch.render import render_message
from services.dispatch.render.broadcast import ebd_xml, render_broadcast, spell_numbers
from services.dispatch.render.vocab import EBM_SEVERITY
from tests.unit.dispatch.factories import TOWNS, chain


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        pytest.param("0", "零", id="zero"),
        pytest.param("10", "十", id="ten"),
        pytest.param("15", "十五", id="fifteen"),
        pytest.param("105", "一百零五", id="hundred-five"),
        pytest.param("110", "一百一十", id="hundred-ten"),
        pytest.param("2000", "两千", id="two-thousand"),
        pytest.param("20000", "两万", id="twenty-thousand"),
        pytest.param("22", "二十二", id="twenty-two"),
        pytest.param("1005", "一千零五", id="thousand-five"),
        pytest.param("30000", "三万", id="ten-thousands"),
        pytest.param("12.5毫米", "十二点五毫米", id="decimal"),
    ],
)
def test_spell_numbers(text: str, spoken: str) -> None:
    assert spell_numbers(text) == spoken


def test_one_ebd_per_county_with_severity_and_tts() -> None:
    msg = chain(1, levels=["orange"], towns=("330304108", "330304008", "330324108"))[0]
    ebds = render_broadcast(msg, TOWNS)
    assert list(ebds) == ["330304", "330324"]
    ebm = ebds["330304"]["EBM"]
    assert ebm["MsgBasicInfo"]["Severity"] == EBM_SEVERITY["orange"] == 2
    assert ebm["MsgBasicInfo"]["MsgType"] == 1
    assert ebm["MsgContent"]["AreaCode"] == "330304108,330304008"
    tts = ebm["MsgContent"]["MsgDesc"]
    assert not re.search(r"\d", tts), "TTS text reads numbers in Chinese"
    assert "泽雅镇" in tts
    assert "暴雨橙色预警" in tts
    assert ebds["330304"]["EBM"]["EBMID"] != ebds["330324"]["EBM"]["EBMID"]
    root = etree.fromstring(ebd_xml(ebds["330304"]))
    assert root.tag == "EBD"
    assert root.findtext("EBM/MsgBasicInfo/Severity") == "2"


def test_cancel_ebm_and_push_payload() -> None:
    msgs = chain(2, last="Cancel")
    assert render_broadcast(msgs[1], TOWNS)["330304"]["EBM"]["MsgBasicInfo"]["MsgType"] == 2
    rendered = render_message(msgs[0], TOWNS)
    push = rendered.push
    assert push["data"]["cap_path"] == f"/cap/{msgs[0].message_id}.xml"
    assert push["data"]["township_codes"] == ["330304108"]
    assert push["priority"] == "high"
    assert "暴雨红色预警" in push["title"]
    assert not push["body"].startswith("【")
    assert rendered.priority == 4


def test_longgang_is_not_named_twice() -> None:
    msg = chain(1, towns=("330383000",))[0]
    rendered = render_message(msg, TOWNS)
    assert "龙港市龙港市" not in rendered.sms.text
    assert "龙港市暴雨红色预警" in rendered.sms.text
    assert "龙港市龙港市" not in rendered.cap_xml.decode("utf-8")
    assert "龙港市龙港市" not in rendered.broadcast["330383"]["EBM"]["MsgContent"]["MsgDesc"]
