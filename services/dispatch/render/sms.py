"""SMS text: signature + body, with an exact segment counter.

Segment rules (STANDARDS §7.3, 3GPP TS 23.038/23.040)
------------------------------------------------------
- **GSM-7** if every character is in the GSM 03.38 default alphabet or its extension
  table (``^{}\\[~]|€`` and form feed cost 2 septets: escape + char). 160 septets in a
  single message, 153 per part when concatenated (the 6-octet UDH eats 7 septets).
- **UCS-2** otherwise (any Chinese text): 70 UTF-16 code units single, 67 per part.
  Characters outside the BMP (emoji) are surrogate pairs: 2 units, never split.
- Parts are packed greedily without splitting an escape pair or a surrogate pair, so the
  count is what an operator bills, not ``ceil(len / 67)``.

Composition (``compose_sms``)
-----------------------------
The message is tried against templates from richest to barest::

    1. 【温州市气象台】发布瓯海区泽雅镇、…暴雨红色预警：15时至21时，过去3小时降雨量已达105毫米，请立即转移避险。
    2.   … without the time window
    3.   … without the evidence clause
    4.   … area at county level (瓯海区3个乡镇（街道）)
    5.   … area as one name (瓯海区 / 温州市部分地区)
    6.   … without the advice

When the predicted onset is still ahead (a forecast warning), the onset matters more than
the validity window and the area detail, so templates carrying it come first::

    1. 【温州市气象台】泽雅镇暴雨红色预警：预计15时30分起，有效至21时30分，预计…，请立即转移避险。
    2.   … without the validity end
    3.   … without the evidence clause
    4.   … area at county level     5. … area as one name     6. … without the advice
    7. 【温州市气象台】温州市部分地区暴雨红色预警。  (the barest, without the onset)

The first template with the fewest segments wins (so a warning fits one 70-char segment
whenever any template does, and otherwise keeps the most information for the same cost).
``SmsTooLong`` is raised when even the best exceeds ``max_segments``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.warning import WarningMessage
from services.dispatch.render.vocab import (
    ADVICE_ZH,
    COLOUR_ZH,
    HAZARD_ZH,
    AreaDetail,
    area_zh,
    evidence_zh,
    level_band,
    onset_ahead,
    zh_clock,
    zh_clock_after,
    zh_window,
)
from services.dispatch.targeting import TownshipLookup

SmsEncoding = Literal["GSM-7", "UCS-2"]

GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = "\f^{}\\[~]|€"
_GSM7_BASIC_SET = frozenset(GSM7_BASIC) - {"\x1b"}
_GSM7_EXT_SET = frozenset(GSM7_EXTENSION)

SINGLE_LIMIT: dict[SmsEncoding, int] = {"GSM-7": 160, "UCS-2": 70}
PART_LIMIT: dict[SmsEncoding, int] = {"GSM-7": 153, "UCS-2": 67}


@dataclass(frozen=True, slots=True)
class SegmentCount:
    encoding: SmsEncoding
    units: int
    """Septets (GSM-7) or UTF-16 code units (UCS-2)."""
    segments: int
    per_segment: int
    """Capacity of each segment at this count: 160/70 single, 153/67 concatenated."""

    @property
    def free_in_last(self) -> int:
        return self.per_segment * self.segments - self.units


def sms_encoding(text: str) -> SmsEncoding:
    return "GSM-7" if all(ch in _GSM7_BASIC_SET or ch in _GSM7_EXT_SET for ch in text) else "UCS-2"


def _unit_cost(ch: str, encoding: SmsEncoding) -> int:
    if encoding == "GSM-7":
        return 2 if ch in _GSM7_EXT_SET else 1
    return 2 if ord(ch) > 0xFFFF else 1


def count_segments(text: str) -> SegmentCount:
    """Exact segment count of ``text`` (0 segments for the empty string)."""
    encoding = sms_encoding(text)
    costs = [_unit_cost(ch, encoding) for ch in text]
    units = sum(costs)
    if units == 0:
        return SegmentCount(encoding, 0, 0, SINGLE_LIMIT[encoding])
    if units <= SINGLE_LIMIT[encoding]:
        return SegmentCount(encoding, units, 1, SINGLE_LIMIT[encoding])
    part = PART_LIMIT[encoding]
    segments, used = 1, 0
    for cost in costs:
        if used + cost > part:
            segments += 1
            used = 0
        used += cost
    return SegmentCount(encoding, units, segments, part)


class SmsTooLong(ValueError):  # noqa: N818  (the brief's name; it is an error)
    def __init__(self, text: str, segments: int, max_segments: int) -> None:
        super().__init__(f"SMS needs {segments} segments, the channel allows {max_segments}: {text!r}")
        self.text = text
        self.segments = segments
        self.max_segments = max_segments


class SmsStyle(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    signature: str = "【温州市气象台】"
    max_segments: int | None = Field(default=None, ge=1, description="None: report, never raise")


@dataclass(frozen=True, slots=True)
class SmsText:
    text: str
    count: SegmentCount
    template: int
    """Index (1-based) of the template used; 1 is the richest."""

    @property
    def segments(self) -> int:
        return self.count.segments


def _templates(msg: WarningMessage, towns: TownshipLookup, signature: str) -> list[Callable[[], str]]:
    hazard = HAZARD_ZH[msg.hazard]
    colour = COLOUR_ZH[msg.level]
    advice = ADVICE_ZH[msg.hazard][level_band(msg.level)]
    facts = evidence_zh(msg.evidence)
    window = zh_window(msg.onset_at, msg.expires_at)

    def area(detail: AreaDetail) -> str:
        return area_zh(msg.township_codes, towns, detail)

    if msg.msg_type == "Cancel":
        when = zh_clock(msg.sent_at, with_day=False)
        return [
            lambda: f"{signature}{when}解除{area('full')}{hazard}{colour}预警。",
            lambda: f"{signature}解除{area('full')}{hazard}{colour}预警。",
            lambda: f"{signature}解除{area('county')}{hazard}{colour}预警。",
            lambda: f"{signature}解除{area('city')}{hazard}{colour}预警。",
        ]

    def head(detail: AreaDetail) -> str:
        if msg.msg_type == "Update":
            return f"{signature}{area(detail)}{hazard}预警更新为{colour}"
        return f"{signature}{area(detail)}{hazard}{colour}预警"

    with_facts = f"，{facts}" if facts else ""
    onset = onset_ahead(msg)
    if onset is not None:
        lead = f"预计{zh_clock_after(onset, msg.sent_at)}起"
        until = zh_clock_after(msg.expires_at, onset)
        return [
            lambda: f"{head('full')}：{lead}，有效至{until}{with_facts}，{advice}。",
            lambda: f"{head('full')}：{lead}{with_facts}，{advice}。",
            lambda: f"{head('full')}：{lead}，{advice}。",
            lambda: f"{head('county')}：{lead}，{advice}。",
            lambda: f"{head('city')}：{lead}，{advice}。",
            lambda: f"{head('city')}：{lead}。",
            lambda: f"{head('city')}。",
        ]
    return [
        lambda: f"{head('full')}：{window}{with_facts}，{advice}。",
        lambda: f"{head('full')}：{facts}，{advice}。" if facts else f"{head('full')}：{window}，{advice}。",
        lambda: f"{head('full')}，{advice}。",
        lambda: f"{head('county')}，{advice}。",
        lambda: f"{head('city')}，{advice}。",
        lambda: f"{head('city')}。",
    ]


def compose_sms(msg: WarningMessage, towns: TownshipLookup, style: SmsStyle | None = None) -> SmsText:
    """The richest text with the fewest segments; ``SmsTooLong`` above ``style.max_segments``."""
    style = style or SmsStyle()
    best: SmsText | None = None
    for index, template in enumerate(_templates(msg, towns, style.signature), start=1):
        text = template()
        count = count_segments(text)
        if best is None or count.segments < best.segments:
            best = SmsText(text, count, index)
        if best.segments == 1:
            break
    assert best is not None  # there is always at least one template
    if style.max_segments is not None and best.segments > style.max_segments:
        raise SmsTooLong(best.text, best.segments, style.max_segments)
    return best
