"""Emergency-broadcast messages: one EBD/EBM per county platform, with TTS text.

Structure (STANDARDS §7.4, from a public Zhejiang platform adapter [S]; MsgType, EventType
and Severity in MsgBasicInfo are [K] per GD/J 082)::

    EBD
     ├─ EBDVersion   "1.0"
     ├─ EBDID        deterministic, see ``ebm_id``
     ├─ EBDType      "EBM"
     ├─ SRC/EBRID    this platform's resource id (configured)
     ├─ EBDTime      "yyyy-MM-dd HH:mm:ss" (BJT)
     └─ EBM
         ├─ EBMVersion, EBMID
         ├─ MsgBasicInfo: MsgType (1 play, 2 cancel), SenderName, SenderCode, SentTime,
         │                EventType, Severity (1 red … 4 blue), StartTime, EndTime
         └─ MsgContent:   LanguageCode "zho", MsgTitle, MsgDesc (= the TTS text),
                          AreaCode (township codes, comma-separated), PlayMode "TTS",
                          RepeatTimes

The TTS text is written to be read aloud: clock times as "十五时三十分", numbers spelled in
Chinese ("一百零五毫米"), no brackets or symbols a speech engine would read literally.

EBM ids are a pure function of the message and the county: ``county(6) + agency(3) +
BJT sent time(14) + version(4, zero-padded)`` — 27 digits, unique per (message, county)
because versions of a warning never share a sent second with the same version number.
GY/T 385-2023's exact id layout was not available ([A], STANDARDS §8 gap 5).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, TypedDict

from lxml import etree
from pydantic import BaseModel, ConfigDict

from schemas.warning import WarningMessage
from services.dispatch.render.vocab import (
    COLOUR_ZH,
    EBM_SEVERITY,
    HAZARD_ZH,
    INSTRUCTION_ZH,
    bjt,
    county_towns_zh,
    evidence_zh,
    group_by_county,
    onset_ahead,
)
from services.dispatch.targeting import TownshipLookup


class BroadcastStyle(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    sender_name: str = "温州市气象台"
    sender_code: str = "330300416000"
    platform_resource_id: str = "010333030000000000"
    """EBRID of this platform (18 digits; a placeholder value, set per deployment)."""
    agency_code: str = "416"
    repeat_times: int = 2


class MsgBasicInfo(TypedDict):
    MsgType: int
    SenderName: str
    SenderCode: str
    SentTime: str
    EventType: str
    Severity: int
    StartTime: str
    EndTime: str


class MsgContent(TypedDict):
    LanguageCode: str
    MsgTitle: str
    MsgDesc: str
    AreaCode: str
    PlayMode: str
    RepeatTimes: int


class Ebm(TypedDict):
    EBMVersion: str
    EBMID: str
    MsgBasicInfo: MsgBasicInfo
    MsgContent: MsgContent


class Ebd(TypedDict):
    EBDVersion: str
    EBDID: str
    EBDType: str
    SRC: dict[str, str]
    EBDTime: str
    EBM: Ebm


_DIGITS = "零一二三四五六七八九"


def _zh_int(n: int) -> str:
    """0–99,999,999 as read aloud (十五, 一百零五, 两千, 两万)."""
    if n < 0:
        return "负" + _zh_int(-n)
    if n < 10:
        return _DIGITS[n]
    if n >= 10**4:
        high, low = divmod(n, 10**4)
        tail = "" if low == 0 else ("零" if low < 1000 else "") + _zh_int(low)
        head = "两" if high == 2 else _zh_int(high)
        return head + "万" + tail
    out = ""
    zero = False
    for value, unit in ((1000, "千"), (100, "百"), (10, "十"), (1, "")):
        digit, n = divmod(n, value)
        if digit:
            if zero:
                out += "零"
                zero = False
            spoken = "两" if digit == 2 and unit == "千" and not out else _DIGITS[digit]
            out += spoken + unit
        elif out:
            zero = True
    if out.startswith("一十"):
        out = out[1:]
    return out


def spell_numbers(text: str) -> str:
    """Replace Arabic numerals (incl. decimals) with their Chinese reading."""

    def one(match: re.Match[str]) -> str:
        whole, _, frac = match.group(0).partition(".")
        spoken = _zh_int(int(whole))
        return spoken + ("点" + "".join(_DIGITS[int(d)] for d in frac) if frac else "")

    return re.sub(r"\d+(?:\.\d+)?", one, text)


def _spoken_clock(when: datetime) -> str:
    t = bjt(when)
    minute = f"{_zh_int(t.minute)}分" if t.minute else ""
    return f"{_zh_int(t.month)}月{_zh_int(t.day)}日{_zh_int(t.hour)}时{minute}"


def tts_text(msg: WarningMessage, towns: TownshipLookup, county: str, codes: list[str], style: BroadcastStyle) -> str:
    """Natural spoken text for one county's terminals."""
    area = county_towns_zh(county, codes, towns)
    signal = f"{HAZARD_ZH[msg.hazard]}{COLOUR_ZH[msg.level]}预警"
    when = _spoken_clock(msg.sent_at)
    if msg.msg_type == "Cancel":
        return f"{style.sender_name}{when}解除{area}{signal}。"
    verb = "发布" if msg.msg_type == "Alert" else "更新"
    facts = evidence_zh(msg.evidence)
    fact_sentence = f"{spell_numbers(facts)}。" if facts else ""
    until = _spoken_clock(msg.expires_at)
    onset = onset_ahead(msg)
    ahead = f"预计{_spoken_clock(onset)}起受影响，" if onset else ""
    instruction = INSTRUCTION_ZH[msg.hazard]
    return (
        f"各位居民请注意，{style.sender_name}{when}{verb}{signal}。"
        f"{area}，{fact_sentence}{ahead}预警有效至{until}。{instruction}"
    )


def ebm_id(msg: WarningMessage, county: str, style: BroadcastStyle) -> str:
    return f"{county}{style.agency_code}{bjt(msg.sent_at):%Y%m%d%H%M%S}{msg.version % 10000:04d}"


def render_ebd(msg: WarningMessage, towns: TownshipLookup, county: str, codes: list[str], style: BroadcastStyle) -> Ebd:
    fmt = "%Y-%m-%d %H:%M:%S"
    ident = ebm_id(msg, county, style)
    title = f"{HAZARD_ZH[msg.hazard]}{COLOUR_ZH[msg.level]}预警" + ("解除" if msg.msg_type == "Cancel" else "")
    return {
        "EBDVersion": "1.0",
        "EBDID": f"{style.platform_resource_id}{ident}",
        "EBDType": "EBM",
        "SRC": {"EBRID": style.platform_resource_id},
        "EBDTime": bjt(msg.sent_at).strftime(fmt),
        "EBM": {
            "EBMVersion": "1.0",
            "EBMID": ident,
            "MsgBasicInfo": {
                "MsgType": 2 if msg.msg_type == "Cancel" else 1,
                "SenderName": style.sender_name,
                "SenderCode": style.sender_code,
                "SentTime": bjt(msg.sent_at).strftime(fmt),
                "EventType": msg.hazard,
                "Severity": EBM_SEVERITY[msg.level],
                "StartTime": bjt(msg.onset_at).strftime(fmt),
                "EndTime": bjt(msg.expires_at).strftime(fmt),
            },
            "MsgContent": {
                "LanguageCode": "zho",
                "MsgTitle": title,
                "MsgDesc": tts_text(msg, towns, county, codes, style),
                "AreaCode": ",".join(codes),
                "PlayMode": "TTS",
                "RepeatTimes": style.repeat_times,
            },
        },
    }


def render_broadcast(msg: WarningMessage, towns: TownshipLookup, style: BroadcastStyle | None = None) -> dict[str, Ebd]:
    """county code → EBD for that county's platform."""
    style = style or BroadcastStyle()
    return {
        county: render_ebd(msg, towns, county, codes, style) for county, codes in group_by_county(msg.township_codes)
    }


def _to_xml(parent: etree._Element, value: Any) -> None:
    for key, child in value.items():
        el = etree.SubElement(parent, key)
        if isinstance(child, dict):
            _to_xml(el, child)
        else:
            el.text = str(child)


def ebd_xml(ebd: Ebd) -> bytes:
    """The EBD as XML (element per key, in the order above)."""
    root = etree.Element("EBD")
    _to_xml(root, ebd)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


__all__ = ["BroadcastStyle", "Ebd", "Ebm", "ebd_xml", "ebm_id", "render_broadcast", "spell_numbers", "tts_text"]
