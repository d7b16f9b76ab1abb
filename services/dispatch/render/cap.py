"""WarningMessage → CAP 1.2 XML (Chinese profile), and validation against the OASIS XSD.

Identifier (STANDARDS §7.2): ``ZZZZZZDDDUUUXX_YYYYMMDDhhmmss_N`` — 31 characters::

    330304 416 108 02 _ 20240725143000 _ 0
    │      │   │   │    │                └ N   = (version − 1) mod 10
    │      │   │   │    └ sent_at in BJT (UTC+8), to the second
    │      │   │   └ XX  = hazard extension (§1.8 type code, else a local 9x code)
    │      │   └ UUU = township part of the code (last 3 digits) for one-county warnings, else 000
    │      └ DDD = agency (GB/T 4657; 416 = meteorological service), configurable per hazard
    └ ZZZZZZ = county code of the townships (GB/T 2260), or 330300 when they span counties

The identifier is a **pure function of the message** (townships, hazard, ``sent_at``,
``version``), so no id mapping table is stored and the identifiers of earlier messages can
be recomputed for ``references``. Why the fields are filled this way:

1. The standard's UUU ("internal sub-unit") and XX ("extension") are normally ``000``/``00``.
   Using them for the township and the hazard keeps ids unique when one tick issues warnings
   for several townships of a county or several hazards at once (the lifecycle does that:
   one warning per ``hazard:township``). Set ``subunit_from_township`` /
   ``extension_from_hazard`` to False for strict ``000``/``00``.
2. N comes from the version, so two versions sent within the same second still differ;
   versions 1 and 11 share N but are sent at different seconds (the lifecycle's sent times
   strictly increase).

``references`` lists every earlier message as ``sender,identifier,sent`` (space-separated),
recomputed from ``MessageRef.sent_at`` and the version in ``MessageRef.message_id``.
Assumption, flagged: the earlier messages had the same sender and the same township set
(true for rule-issued warnings, which are per township). ``MessageRef`` would need
``sender`` and ``township_codes`` for manual warnings that change area between versions.

Two ``info`` blocks (``zh-CN`` first, then ``en-US``) carry the same facts. Times are BJT
with ``+08:00``. Severity follows §1.1 (blue Minor … red Extreme).

``onset`` is the warning's predicted onset (``sent`` when already observed); ``urgency``
comes from the lead ``onset − sent`` (CAP 1.2 defines Expected as "responsive action
SHOULD be taken soon (within next hour)")::

    Cancel                    → Past
    lead ≤ 15 min             → Immediate   (no time to wait: less than a warning takes
                                             to reach people and for them to act)
    15 min < lead ≤ 60 min    → Expected
    lead > 60 min             → Future      (water-level projections, typhoon tracks)

``certainty`` is the message's own (the strongest among the sources at the warning's level:
Observed, Likely, Possible). A payload that does not carry it (older messages, hand-built
ones) keeps the inference from its evidence: none → Unknown, any observed → Observed, else
Likely.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from lxml import etree
from pydantic import BaseModel, ConfigDict, Field

from schemas.cap import CAP_NAMESPACE, CAP_XSD_PATH
from schemas.common import Hazard
from schemas.warning import WarningMessage
from services.dispatch.render.vocab import (
    ADVICE_EN,
    CAP_CATEGORY,
    CAP_SEVERITY,
    COLOUR_EN,
    COLOUR_ZH,
    HAZARD_EN,
    HAZARD_ZH,
    INSTRUCTION_ZH,
    LEVEL_CODE,
    NATIONAL_TYPE_CODE,
    ROMAN,
    SEVERITY_ZH,
    area_en,
    area_zh,
    bjt,
    cap_time,
    county_name_en,
    county_towns_zh,
    evidence_en,
    evidence_zh,
    group_by_county,
    level_band,
    onset_ahead,
    zh_clock,
    zh_clock_after,
    zh_window,
)
from services.dispatch.targeting import TownshipLookup, county_of

IDENTIFIER_RE = re.compile(r"^(?P<area>\d{6})(?P<agency>\d{3})(?P<unit>\d{3})(?P<ext>\d{2})_(?P<ts>\d{14})_(?P<n>\d)$")

HAZARD_EXTENSION: dict[Hazard, str] = {
    "typhoon": "01",
    "rainstorm": "02",
    "gale": "05",
    # no §1.8 code: local extension codes 9x (documented, not national codes)
    "short_heavy_rain": "91",
    "convection": "92",
    "geohazard": "93",
    "flood": "94",
    "tide": "95",
}

_VERB_ZH = {"Alert": "发布", "Update": "更新", "Cancel": "解除"}
_VERB_EN = {"Alert": "issued", "Update": "updated", "Cancel": "cancelled"}


class CapProfile(BaseModel):
    """How this deployment fills the profile's free choices."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sender_name_zh: str = "温州市气象台"
    sender_name_en: str = "Wenzhou Meteorological Observatory"
    multi_county_area_code: str = Field(default="330300", pattern=r"^\d{6}$")
    default_agency_code: str = Field(default="416", pattern=r"^\d{3}$")
    agency_codes: dict[Hazard, str] = Field(default_factory=dict, description="hazard → GB/T 4657 code")
    subunit_from_township: bool = True
    extension_from_hazard: bool = True
    county_geocode_name: str = "GB/T 2260"
    township_geocode_name: str = Field(
        default="GB/T 10114", description="9-digit township codes (GB/T 2260 county + GB/T 10114 suffix)"
    )
    national_code_name: str = "CMA_SIGNAL_TYPE_LEVEL"
    web_base_url: str | None = Field(default=None, description="if set, <web> = base + /cap/<message_id>.xml")


DEFAULT_PROFILE = CapProfile()


class CapRenderError(ValueError):
    """The message cannot be expressed in CAP (e.g. a sender with a space or comma)."""


class CapValidationError(ValueError):
    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


# --------------------------------------------------------------------------- identifier


@dataclass(frozen=True, slots=True)
class IdentifierParts:
    area: str
    agency: str
    unit: str
    ext: str
    timestamp: str
    n: int

    def __str__(self) -> str:
        return f"{self.area}{self.agency}{self.unit}{self.ext}_{self.timestamp}_{self.n}"


def area_code(township_codes: Sequence[str], profile: CapProfile = DEFAULT_PROFILE) -> str:
    counties = {county_of(c) for c in township_codes}
    return counties.pop() if len(counties) == 1 else profile.multi_county_area_code


def identifier_for(
    township_codes: Sequence[str],
    hazard: Hazard,
    sent_at: datetime,
    version: int,
    profile: CapProfile = DEFAULT_PROFILE,
) -> str:
    area = area_code(township_codes, profile)
    single_county = area != profile.multi_county_area_code
    unit = township_codes[0][6:9] if (profile.subunit_from_township and single_county) else "000"
    ext = HAZARD_EXTENSION[hazard] if profile.extension_from_hazard else "00"
    agency = profile.agency_codes.get(hazard, profile.default_agency_code)
    return str(IdentifierParts(area, agency, unit, ext, bjt(sent_at).strftime("%Y%m%d%H%M%S"), (version - 1) % 10))


def cap_identifier(msg: WarningMessage, profile: CapProfile = DEFAULT_PROFILE) -> str:
    """The CAP identifier of ``msg`` (pure; see the module docstring)."""
    return identifier_for(msg.township_codes, msg.hazard, msg.sent_at, msg.version, profile)


def parse_identifier(identifier: str) -> IdentifierParts:
    match = IDENTIFIER_RE.match(identifier)
    if match is None:
        raise ValueError(f"not a profile identifier: {identifier!r}")
    return IdentifierParts(match["area"], match["agency"], match["unit"], match["ext"], match["ts"], int(match["n"]))


def _version_of(message_id: str) -> int:
    _, _, tail = message_id.rpartition(".v")
    return int(tail)


def cap_references(msg: WarningMessage, profile: CapProfile = DEFAULT_PROFILE) -> str:
    """``sender,identifier,sent`` for every earlier message, oldest first, space-separated."""
    triples = []
    for ref in msg.references:
        ident = identifier_for(msg.township_codes, msg.hazard, ref.sent_at, _version_of(ref.message_id), profile)
        triples.append(f"{msg.sender},{ident},{cap_time(ref.sent_at)}")
    return " ".join(triples)


def cap_path(message_id: str) -> str:
    """Where the console serves the CAP file of a message."""
    return f"/cap/{message_id}.xml"


# --------------------------------------------------------------------------- rendering

_NS = "{" + CAP_NAMESPACE + "}"


def _sub(parent: etree._Element, tag: str, text: str | None = None) -> etree._Element:
    el = etree.SubElement(parent, _NS + tag)
    if text is not None:
        el.text = text
    return el


def _pair(parent: etree._Element, tag: str, name: str, value: str) -> None:
    el = _sub(parent, tag)
    _sub(el, "valueName", name)
    _sub(el, "value", value)


IMMEDIATE_LEAD_S = 900
"""Onset at most this far ahead of ``sent``: urgency Immediate."""
EXPECTED_LEAD_S = 3600
"""Onset at most this far ahead: Expected (CAP: "within next hour"); later: Future."""


def cap_urgency(msg: WarningMessage) -> str:
    if msg.msg_type == "Cancel":
        return "Past"
    lead_s = (msg.onset_at - msg.sent_at).total_seconds()
    if lead_s <= IMMEDIATE_LEAD_S:
        return "Immediate"
    return "Expected" if lead_s <= EXPECTED_LEAD_S else "Future"


def cap_certainty(msg: WarningMessage) -> str:
    if "certainty" in msg.model_fields_set:
        return msg.certainty
    if not msg.evidence:
        return "Unknown"
    return "Observed" if any(e.basis == "observed" for e in msg.evidence) else "Likely"


def _response_type(msg: WarningMessage) -> str:
    if msg.msg_type == "Cancel":
        return "AllClear"
    if level_band(msg.level) == 0:
        return "Prepare"
    return "Shelter" if msg.hazard in ("convection", "gale", "typhoon") else "Evacuate"


def headline_zh(msg: WarningMessage, towns: TownshipLookup, profile: CapProfile = DEFAULT_PROFILE) -> str:
    if msg.origin == "manual" and msg.headline:
        return msg.headline
    area = area_zh(msg.township_codes, towns, "county")
    return f"{profile.sender_name_zh}{_VERB_ZH[msg.msg_type]}{area}{HAZARD_ZH[msg.hazard]}{COLOUR_ZH[msg.level]}预警"


def description_zh(msg: WarningMessage, towns: TownshipLookup, profile: CapProfile = DEFAULT_PROFILE) -> str:
    area = area_zh(msg.township_codes, towns, "full")
    signal = f"{HAZARD_ZH[msg.hazard]}{COLOUR_ZH[msg.level]}预警"
    when = zh_clock(msg.sent_at, with_day=True)
    if msg.msg_type == "Cancel":
        return f"{profile.sender_name_zh}{when}解除{area}{signal}。"
    clause = evidence_zh(msg.evidence)
    facts = f"{clause}。" if clause else ""
    window = zh_window(msg.sent_at, msg.expires_at)  # in effect from sent; onset = sent unless ahead
    onset = onset_ahead(msg)
    ahead = f"预计{zh_clock_after(onset, msg.sent_at)}起受影响。" if onset else ""
    return (
        f"{profile.sender_name_zh}{when}{_VERB_ZH[msg.msg_type]}{signal}（{ROMAN[msg.level]}级/"
        f"{SEVERITY_ZH[msg.level]}）。预警区域：{area}。{ahead}有效时段：{window}。{facts}"
    )


def _description_en(msg: WarningMessage, profile: CapProfile) -> str:
    signal = f"{COLOUR_EN[msg.level]} {HAZARD_EN[msg.hazard].lower()} warning"
    when = bjt(msg.sent_at).strftime("%Y-%m-%d %H:%M BJT")
    area = area_en(msg.township_codes)
    if msg.msg_type == "Cancel":
        return f"{profile.sender_name_en} cancelled the {signal} for {area} at {when}."
    clause = evidence_en(msg.evidence)
    facts = f" Evidence: {clause}." if clause else ""
    valid = f"{bjt(msg.sent_at):%m-%d %H:%M} to {bjt(msg.expires_at):%m-%d %H:%M} BJT"
    onset = onset_ahead(msg)
    ahead = f" Onset expected from {bjt(onset):%m-%d %H:%M} BJT." if onset else ""
    verb = _VERB_EN[msg.msg_type]
    return f"{profile.sender_name_en} {verb} a {signal} for {area} at {when}, valid {valid}.{ahead}{facts}"


def _info(root: etree._Element, msg: WarningMessage, towns: TownshipLookup, profile: CapProfile, lang: str) -> None:
    zh = lang == "zh-CN"
    info = _sub(root, "info")
    _sub(info, "language", lang)
    _sub(info, "category", CAP_CATEGORY[msg.hazard])
    _sub(info, "event", HAZARD_ZH[msg.hazard] if zh else HAZARD_EN[msg.hazard])
    _sub(info, "responseType", _response_type(msg))
    _sub(info, "urgency", cap_urgency(msg))
    _sub(info, "severity", CAP_SEVERITY[msg.level])
    _sub(info, "certainty", cap_certainty(msg))
    national = NATIONAL_TYPE_CODE.get(msg.hazard)
    if national is not None:
        _pair(info, "eventCode", profile.national_code_name, national + LEVEL_CODE[msg.level])
    _pair(info, "eventCode", "earlywarn:hazard", msg.hazard)
    _sub(info, "effective", cap_time(msg.sent_at))
    _sub(info, "onset", cap_time(msg.onset_at))
    _sub(info, "expires", cap_time(msg.expires_at))
    _sub(info, "senderName", profile.sender_name_zh if zh else profile.sender_name_en)
    if zh:
        _sub(info, "headline", headline_zh(msg, towns, profile))
        _sub(info, "description", description_zh(msg, towns, profile))
        if msg.msg_type != "Cancel":
            _sub(info, "instruction", INSTRUCTION_ZH[msg.hazard])
    else:
        verb = _VERB_EN[msg.msg_type].capitalize()
        _sub(info, "headline", f"{verb}: {COLOUR_EN[msg.level]} {HAZARD_EN[msg.hazard].lower()} warning, Wenzhou")
        _sub(info, "description", _description_en(msg, profile))
        if msg.msg_type != "Cancel":
            _sub(info, "instruction", ADVICE_EN[msg.hazard][level_band(msg.level)])
    if profile.web_base_url:
        _sub(info, "web", profile.web_base_url.rstrip("/") + cap_path(msg.message_id))
    _pair(info, "parameter", "colour", COLOUR_ZH[msg.level] if zh else msg.level)
    _pair(info, "parameter", "level_code", LEVEL_CODE[msg.level])
    _pair(
        info, "parameter", "signal_grade", f"{ROMAN[msg.level]}级/{SEVERITY_ZH[msg.level]}" if zh else ROMAN[msg.level]
    )
    _pair(info, "parameter", "earlywarn:warning_id", msg.warning_id)
    _pair(info, "parameter", "earlywarn:message_id", msg.message_id)
    for county, codes in group_by_county(msg.township_codes):
        area = _sub(info, "area")
        if zh:
            _sub(area, "areaDesc", f"温州市{county_towns_zh(county, codes, towns)}")
        else:
            _sub(area, "areaDesc", f"{county_name_en(county)}, Wenzhou: {len(codes)} township-level unit(s)")
        _pair(area, "geocode", profile.county_geocode_name, county)
        for code in codes:
            _pair(area, "geocode", profile.township_geocode_name, code)


def render_cap(msg: WarningMessage, towns: TownshipLookup, profile: CapProfile = DEFAULT_PROFILE) -> bytes:
    """CAP 1.2 XML (UTF-8, with declaration) for one warning message."""
    if re.search(r"[\s,<&]", msg.sender):
        raise CapRenderError(f"CAP sender must not contain whitespace, ',' '<' or '&': {msg.sender!r}")
    nsmap = {None: CAP_NAMESPACE}  # None = the default namespace (no prefix), as CAP examples use
    root = etree.Element(_NS + "alert", nsmap=nsmap)  # type: ignore[arg-type]  # lxml-stubs omit the None key
    _sub(root, "identifier", cap_identifier(msg, profile))
    _sub(root, "sender", msg.sender)
    _sub(root, "sent", cap_time(msg.sent_at))
    _sub(root, "status", msg.status)
    _sub(root, "msgType", msg.msg_type)
    _sub(root, "scope", "Public")
    if msg.references:
        _sub(root, "references", cap_references(msg, profile))
    _info(root, msg, towns, profile, "zh-CN")
    _info(root, msg, towns, profile, "en-US")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


@cache
def _schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(CAP_XSD_PATH)))


def cap_errors(xml_bytes: bytes) -> list[str]:
    """Every XSD violation (empty when valid). Parsing errors are reported, not raised."""
    try:
        doc = etree.fromstring(xml_bytes, parser=etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError as exc:
        return [f"not well-formed XML: {exc}"]
    schema = _schema()
    if schema.validate(doc):
        return []
    return str(schema.error_log).splitlines()


def validate_cap(xml_bytes: bytes) -> None:
    """Raise ``CapValidationError`` unless ``xml_bytes`` is valid CAP 1.2 (the vendored XSD,
    loaded once per process)."""
    errors = cap_errors(xml_bytes)
    if errors:
        raise CapValidationError(errors)
