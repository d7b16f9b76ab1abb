"""CAP 1.2 rendering: XSD-valid for every message type, profile identifiers, references."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from schemas.cap import CAP_NAMESPACE
from schemas.common import Hazard, Level
from services.dispatch.render.cap import (
    IDENTIFIER_RE,
    CapProfile,
    CapValidationError,
    cap_errors,
    cap_identifier,
    parse_identifier,
    render_cap,
    validate_cap,
)
from tests.unit.dispatch.factories import TOWNS, chain

NS = {"cap": CAP_NAMESPACE}
HAZARDS: list[Hazard] = ["rainstorm", "short_heavy_rain", "convection", "geohazard", "flood", "tide", "gale", "typhoon"]
LEVELS: list[Level] = ["blue", "yellow", "orange", "red"]
AREAS = [
    ("330304108",),
    ("330304108", "330304008", "330304012"),
    ("330324108", "330304108"),  # two counties → 330300
    ("330383000",),  # Longgang: one unit for the whole city
    ("330328225", "330382210", "330324110"),
]


def _doc(xml: bytes) -> etree._Element:
    return etree.fromstring(xml)


def _text(el: etree._Element, path: str) -> str:
    value = el.findtext(path, namespaces=NS)
    assert value is not None, path
    return value


def _find(el: etree._Element, path: str) -> etree._Element:
    found = el.find(path, NS)
    assert found is not None, path
    return found


@settings(max_examples=60, deadline=None)
@given(
    versions=st.integers(min_value=1, max_value=23),
    hazard=st.sampled_from(HAZARDS),
    levels=st.lists(st.sampled_from(LEVELS), min_size=1, max_size=5),
    towns=st.sampled_from(AREAS),
    last=st.sampled_from(["Update", "Cancel"]),
    gaps=st.lists(st.integers(min_value=1, max_value=7200), min_size=22, max_size=22),
)
def test_every_message_of_a_chain_is_valid_cap_with_complete_references(
    versions: int, hazard: Hazard, levels: list[Level], towns: tuple[str, ...], last: str, gaps: list[int]
) -> None:
    msgs = chain(versions, hazard=hazard, levels=levels, towns=towns, last=last, gaps_s=gaps)  # type: ignore[arg-type]
    identifiers = [cap_identifier(m) for m in msgs]
    assert len(set(identifiers)) == len(identifiers), "identifiers must be unique per message"
    for msg, ident in zip(msgs, identifiers, strict=True):
        xml = render_cap(msg, TOWNS)
        assert cap_errors(xml) == []
        doc = _doc(xml)
        assert doc.findtext("cap:identifier", namespaces=NS) == ident
        assert IDENTIFIER_RE.match(ident)
        assert len(ident) == 31
        assert doc.findtext("cap:msgType", namespaces=NS) == msg.msg_type
        assert _text(doc, "cap:sent").endswith("+08:00")
        earlier = msgs[: msg.version - 1]
        if not earlier:
            assert doc.find("cap:references", NS) is None
            continue
        triples = [t.split(",") for t in _text(doc, "cap:references").split(" ")]
        assert [t[1] for t in triples] == identifiers[: msg.version - 1]
        assert [t[2] for t in triples] == [
            (m.sent_at + timedelta(hours=8)).strftime("%Y-%m-%dT%H:%M:%S+08:00") for m in earlier
        ]
        assert {t[0] for t in triples} == {msg.sender}


@pytest.mark.parametrize(
    ("towns", "expected_area", "expected_unit"),
    [
        pytest.param(("330304108",), "330304", "108", id="one-township"),
        pytest.param(("330304108", "330304008"), "330304", "108", id="one-county-first-township"),
        pytest.param(("330324108", "330304108"), "330300", "000", id="multi-county"),
        pytest.param(("330383000",), "330383", "000", id="longgang"),
    ],
)
def test_identifier_fields(towns: tuple[str, ...], expected_area: str, expected_unit: str) -> None:
    msg = chain(2, towns=towns)[1]
    parts = parse_identifier(cap_identifier(msg))
    assert parts.area == expected_area
    assert parts.agency == "416"
    assert parts.unit == expected_unit
    assert parts.ext == "02"  # rainstorm's §1.8 type code
    assert parts.timestamp == "20240725144000"  # T0 + 600 s, in BJT
    assert parts.n == 1  # version 2


def test_strict_profile_reproduces_the_standards_example() -> None:
    msg = chain(1, towns=("330324108", "330304108"))[0]
    strict = CapProfile(subunit_from_township=False, extension_from_hazard=False)
    assert cap_identifier(msg, strict) == "33030041600000_20240725143000_0"


def test_agency_code_per_hazard_is_configurable() -> None:
    msg = chain(1, hazard="geohazard")[0]
    profile = CapProfile(agency_codes={"geohazard": "417"})
    assert parse_identifier(cap_identifier(msg, profile)).agency == "417"
    assert parse_identifier(cap_identifier(chain(1)[0], profile)).agency == "416"


def test_same_tick_townships_and_hazards_get_distinct_identifiers() -> None:
    a = chain(1, towns=("330304108",))[0]
    b = chain(1, towns=("330304008",))[0]
    c = chain(1, towns=("330304108",), hazard="short_heavy_rain")[0]
    assert len({cap_identifier(a), cap_identifier(b), cap_identifier(c)}) == 3


def test_version_digit_wraps_but_sent_time_keeps_ids_unique() -> None:
    msgs = chain(12, gaps_s=[1] * 11)
    ids = [cap_identifier(m) for m in msgs]
    assert [parse_identifier(i).n for i in ids] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    assert len(set(ids)) == 12


def test_info_blocks_severity_codes_and_area() -> None:
    msg = chain(1, levels=["orange"], towns=("330304108", "330304008", "330324108"))[0]
    doc = _doc(render_cap(msg, TOWNS))
    infos = doc.findall("cap:info", NS)
    assert [i.findtext("cap:language", namespaces=NS) for i in infos] == ["zh-CN", "en-US"]
    for info in infos:
        assert info.findtext("cap:severity", namespaces=NS) == "Severe"
        assert info.findtext("cap:category", namespaces=NS) == "Met"
        codes = {
            e.findtext("cap:valueName", namespaces=NS): e.findtext("cap:value", namespaces=NS)
            for e in info.findall("cap:eventCode", NS)
        }
        assert codes["CMA_SIGNAL_TYPE_LEVEL"] == "0203"
        areas = info.findall("cap:area", NS)
        assert len(areas) == 2  # one per county
        geocodes = [g.findtext("cap:value", namespaces=NS) for a in areas for g in a.findall("cap:geocode", NS)]
        assert geocodes == ["330304", "330304108", "330304008", "330324", "330324108"]
    assert "泽雅镇" in _text(infos[0], "cap:area/cap:areaDesc")


def test_geohazard_is_geo_and_has_no_invented_national_code() -> None:
    doc = _doc(render_cap(chain(1, hazard="geohazard")[0], TOWNS))
    info = _find(doc, "cap:info")
    assert info.findtext("cap:category", namespaces=NS) == "Geo"
    names = [e.findtext("cap:valueName", namespaces=NS) for e in info.findall("cap:eventCode", NS)]
    assert "CMA_SIGNAL_TYPE_LEVEL" not in names


def test_cancel_is_all_clear_and_past() -> None:
    msg = chain(3, last="Cancel")[-1]
    info = _find(_doc(render_cap(msg, TOWNS)), "cap:info")
    assert info.findtext("cap:responseType", namespaces=NS) == "AllClear"
    assert info.findtext("cap:urgency", namespaces=NS) == "Past"


def test_unknown_township_is_named_by_its_code_not_invented() -> None:
    msg = chain(1, towns=("330302006",))[0]
    desc = _doc(render_cap(msg, TOWNS)).findtext("cap:info/cap:area/cap:areaDesc", namespaces=NS)
    assert desc == "温州市鹿城区330302006"


def test_validation_rejects_a_broken_document() -> None:
    xml = render_cap(chain(1)[0], TOWNS).replace(b"<severity>Extreme</severity>", b"<severity>Apocalyptic</severity>")
    with pytest.raises(CapValidationError) as info:
        validate_cap(xml)
    assert "severity" in str(info.value)
    assert cap_errors(b"<alert")
    assert cap_errors(b"<alert") != []
