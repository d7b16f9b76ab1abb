"""Shared wording and code tables for every rendering (CAP, SMS, broadcast, push).

Sources (STANDARDS.md): colours and Chinese severity §1.1 [S]; colour ↔ CAP severity §1.1
[A]; national type/level codes §1.8 [S]; EBM severity 1–4 §7.4 [K]. Instructions are
[A] wording for the simulator, written to be short enough for one SMS segment.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Literal

from schemas.assessment import Evidence
from schemas.common import Hazard, Level
from schemas.warning import WarningMessage
from services.dispatch.targeting import COUNTY_NAMES_EN, COUNTY_NAMES_ZH, TownshipLookup, county_of

BJT = timezone(timedelta(hours=8), "BJT")

HAZARD_ZH: dict[Hazard, str] = {
    "rainstorm": "暴雨",
    "short_heavy_rain": "短时强降水",
    "convection": "强对流",
    "geohazard": "地质灾害气象风险",
    "flood": "洪水",
    "tide": "风暴潮",
    "gale": "大风",
    "typhoon": "台风",
}
HAZARD_EN: dict[Hazard, str] = {
    "rainstorm": "Rainstorm",
    "short_heavy_rain": "Short-duration heavy rain",
    "convection": "Severe convection",
    "geohazard": "Geological hazard risk",
    "flood": "Flood",
    "tide": "Storm surge",
    "gale": "Gale",
    "typhoon": "Typhoon",
}

CapCategory = Literal["Met", "Geo"]
CAP_CATEGORY: dict[Hazard, CapCategory] = {
    "rainstorm": "Met",
    "short_heavy_rain": "Met",
    "convection": "Met",
    "geohazard": "Geo",  # CAP: "Geo - Geophysical (inc. landslide)"
    "flood": "Met",  # CAP: "Met - Meteorological (inc. flood)"
    "tide": "Met",
    "gale": "Met",
    "typhoon": "Met",
}

NATIONAL_TYPE_CODE: dict[Hazard, str] = {"typhoon": "01", "rainstorm": "02", "gale": "05"}
"""§1.8 type codes. The other hazards have no code in the national signal list; they get
no national ``eventCode`` rather than an invented one."""

LEVEL_CODE: dict[Level, str] = {"blue": "01", "yellow": "02", "orange": "03", "red": "04"}
COLOUR_ZH: dict[Level, str] = {"blue": "蓝色", "yellow": "黄色", "orange": "橙色", "red": "红色"}
COLOUR_EN: dict[Level, str] = {"blue": "Blue", "yellow": "Yellow", "orange": "Orange", "red": "Red"}
ROMAN: dict[Level, str] = {"blue": "Ⅳ", "yellow": "Ⅲ", "orange": "Ⅱ", "red": "Ⅰ"}
SEVERITY_ZH: dict[Level, str] = {"blue": "一般", "yellow": "较重", "orange": "严重", "red": "特别严重"}

CapSeverity = Literal["Minor", "Moderate", "Severe", "Extreme"]
CAP_SEVERITY: dict[Level, CapSeverity] = {
    "blue": "Minor",
    "yellow": "Moderate",
    "orange": "Severe",
    "red": "Extreme",
}
EBM_SEVERITY: dict[Level, int] = {"red": 1, "orange": 2, "yellow": 3, "blue": 4}

# Short advice (SMS / push) by hazard, for (blue|yellow) and (orange|red).
ADVICE_ZH: dict[Hazard, tuple[str, str]] = {
    "rainstorm": ("请注意防范", "请立即转移避险"),
    "short_heavy_rain": ("请注意防范", "请远离低洼地带"),
    "convection": ("请注意防范雷电大风", "请留在室内避险"),
    "geohazard": ("请注意防范", "请立即撤离危险区"),
    "flood": ("请注意防范", "请立即转移避险"),
    "tide": ("请注意防范", "请远离海堤岸边"),
    "gale": ("请注意防风", "请停止户外活动"),
    "typhoon": ("请做好防台准备", "请留在安全场所"),
}
ADVICE_EN: dict[Hazard, tuple[str, str]] = {
    "rainstorm": ("Take precautions against heavy rain.", "Move to safety now; avoid low-lying areas and slopes."),
    "short_heavy_rain": ("Take precautions against heavy rain.", "Keep away from low-lying areas and streams."),
    "convection": ("Beware of lightning and strong wind.", "Stay indoors; avoid open ground and tall structures."),
    "geohazard": ("Watch slopes for signs of movement.", "Leave hazard areas below slopes now."),
    "flood": ("Take precautions against rising water.", "Move to higher ground now."),
    "tide": ("Keep away from sea walls.", "Keep away from sea walls and the shore; move inland."),
    "gale": ("Secure loose objects outdoors.", "Stop outdoor work and stay in sturdy buildings."),
    "typhoon": ("Prepare for the typhoon.", "Stay in a safe building; follow evacuation orders."),
}
INSTRUCTION_ZH: dict[Hazard, str] = {
    "rainstorm": "注意防范城乡积涝和山洪、地质灾害，危险地带人员及时转移，停止户外作业。",
    "short_heavy_rain": "远离低洼路段、地下通道和河道溪流，驾车勿涉水。",
    "convection": "留在室内，远离孤立高大物体，切断危险室外电源，暂停户外活动。",
    "geohazard": "隐患点及危险区内人员立即撤离，发现山体异常及时报告，不要返回危险区。",
    "flood": "沿河低洼地带人员及时转移，远离河道，注意堤防安全。",
    "tide": "远离海堤、码头和海边，船只回港避风，沿海低洼地带人员做好转移准备。",
    "gale": "加固临时搭建物，停止高空和户外作业，远离广告牌和大树。",
    "typhoon": "做好防台风准备，船只回港，危旧房屋及低洼地带人员转移，非必要不外出。",
}


def level_band(level: Level) -> int:
    """0 for blue/yellow, 1 for orange/red: picks the short advice."""
    return 1 if level in ("orange", "red") else 0


def bjt(dt: datetime) -> datetime:
    return dt.astimezone(BJT)


def cap_time(dt: datetime) -> str:
    """CAP date-time in BJT, ``YYYY-MM-DDThh:mm:ss+08:00`` (the XSD pattern: no fraction)."""
    return bjt(dt).strftime("%Y-%m-%dT%H:%M:%S+08:00")


def zh_clock(dt: datetime, *, with_day: bool) -> str:
    """``25日15时30分`` / ``15时`` style BJT clock time for Chinese text."""
    t = bjt(dt)
    minute = f"{t.minute}分" if t.minute else ""
    day = f"{t.day}日" if with_day else ""
    return f"{day}{t.hour}时{minute}"


def onset_ahead(msg: WarningMessage) -> datetime | None:
    """The predicted onset when it is still ahead at sending (never for a Cancel), else None.

    Texts then say "预计15时30分起" / "expected from 15:30"; an observed warning (onset =
    sent) reads as before.
    """
    if msg.msg_type == "Cancel" or msg.onset_at <= msg.sent_at:
        return None
    return msg.onset_at


def zh_clock_after(dt: datetime, ref: datetime) -> str:
    """``zh_clock`` with the day only when ``dt`` falls on another BJT day than ``ref``."""
    return zh_clock(dt, with_day=bjt(dt).date() != bjt(ref).date())


def zh_window(start: datetime, end: datetime) -> str:
    """``15时至21时`` or ``25日22时至26日4时`` when the window crosses a BJT day."""
    crosses = bjt(start).date() != bjt(end).date()
    return f"{zh_clock(start, with_day=crosses)}至{zh_clock(end, with_day=crosses)}"


def group_by_county(codes: Sequence[str]) -> list[tuple[str, list[str]]]:
    """Township codes grouped by county, both in order of first appearance."""
    groups: dict[str, list[str]] = {}
    for code in dict.fromkeys(codes):
        groups.setdefault(county_of(code), []).append(code)
    return list(groups.items())


def county_name_zh(county: str, towns: TownshipLookup, codes: Sequence[str]) -> str:
    for code in codes:
        info = towns.get(code)
        if info is not None and info.county_name_zh:
            return info.county_name_zh
    return COUNTY_NAMES_ZH.get(county, county)


def county_name_en(county: str) -> str:
    return COUNTY_NAMES_EN.get(county, county)


def township_name_zh(code: str, towns: TownshipLookup) -> str:
    """The township's name, or its code when the lookup does not know it (never invented)."""
    info = towns.get(code)
    return info.name_zh if info is not None else code


def county_towns_zh(county: str, codes: Sequence[str], towns: TownshipLookup) -> str:
    """``瓯海区泽雅镇、瞿溪街道``; a unit named like its county (龙港市) is not repeated."""
    county_name = county_name_zh(county, towns, codes)
    names = [n for n in (township_name_zh(c, towns) for c in codes) if n != county_name]
    return county_name + "、".join(names)


AreaDetail = Literal["full", "county", "city"]


def area_zh(codes: Sequence[str], towns: TownshipLookup, detail: AreaDetail = "full", city_zh: str = "温州市") -> str:
    """Area wording at three levels of detail.

    - ``full``:   ``瓯海区泽雅镇、瞿溪街道，永嘉县岩头镇``
    - ``county``: ``瓯海区``, ``瓯海区2个乡镇（街道）`` or ``瓯海区、永嘉县3个乡镇（街道）``
    - ``city``:   ``瓯海区`` for one county, else ``温州市部分地区``
    """
    groups = group_by_county(codes)
    n_towns = sum(len(g) for _, g in groups)
    if detail == "full":
        return "，".join(county_towns_zh(c, g, towns) for c, g in groups)
    counties = "、".join(county_name_zh(c, towns, g) for c, g in groups)
    if detail == "county":
        if n_towns == 1:
            return county_towns_zh(groups[0][0], groups[0][1], towns)
        return f"{counties}{n_towns}个乡镇（街道）"
    return counties if len(groups) == 1 else f"{city_zh}部分地区"


def area_en(codes: Sequence[str]) -> str:
    groups = group_by_county(codes)
    parts = [f"{county_name_en(c)} ({len(g)} township{'s' if len(g) > 1 else ''})" for c, g in groups]
    return "Wenzhou: " + "; ".join(parts)


_RAIN_METRIC = re.compile(r"^rain_(\d+)(h|min)_mm$")


def evidence_zh(evidence: Sequence[Evidence]) -> str:
    """One factual Chinese clause from the strongest evidence item, or "" when none fits.

    Only rain accumulations (``rain_<n>h_mm``) are phrased; other metrics are left out
    rather than paraphrased into something the evidence does not say.
    """
    best: tuple[float, str] | None = None
    for item in evidence:
        match = _RAIN_METRIC.match(item.metric)
        if match is None:
            continue
        span = f"{match.group(1)}小时" if match.group(2) == "h" else f"{match.group(1)}分钟"
        amount = f"{item.value:.0f}毫米"
        clause = f"预计未来{span}降雨量达{amount}" if item.basis == "forecast" else f"过去{span}降雨量已达{amount}"
        strength = item.value / item.threshold if item.threshold else item.value
        if best is None or strength > best[0]:
            best = (strength, clause)
    return best[1] if best else ""


def evidence_en(evidence: Sequence[Evidence]) -> str:
    best: tuple[float, str] | None = None
    for item in evidence:
        match = _RAIN_METRIC.match(item.metric)
        if match is None:
            continue
        unit = "h" if match.group(2) == "h" else "min"
        clause = (
            f"{item.value:.0f} mm of rain expected in the next {match.group(1)} {unit}"
            if item.basis == "forecast"
            else f"{item.value:.0f} mm of rain in the past {match.group(1)} {unit}"
        )
        strength = item.value / item.threshold if item.threshold else item.value
        if best is None or strength > best[0]:
            best = (strength, clause)
    return best[1] if best else ""
