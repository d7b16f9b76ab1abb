"""Every warning message of a replayed scenario is valid CAP 1.2 and fits every channel.

Replays five hours of the shipped ``convective-afternoon`` scenario (30 % of the stations,
lockstep) through ingest, rules and the lifecycle, then renders every message it issued —
Alerts, Updates and Cancels — the way dispatch does (``render_message`` over the geography
registry) and checks:

1. the CAP XML validates against the vendored OASIS CAP 1.2 XSD, and its identifier, sent
   time and msgType are the message's;
2. CAP identifiers and message ids are unique over the whole replay;
3. reference chains are complete: message ``v<n>`` of a warning is an Update/Cancel (``v1``
   the only Alert), lists every earlier message of its warning in version order with their
   exact sent times, and its CAP ``references`` are ``sender,identifier,sent`` of exactly
   those earlier messages as they were themselves rendered; nothing follows a Cancel;
4. the SMS, emergency-broadcast and app-push renderings respect the channels' limits (the
   channels' own ``check``), the SMS segment count is the exact GSM/UCS-2 count.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter, defaultdict

import pytest
from lxml import etree

from schemas.cap import CAP_NAMESPACE
from schemas.warning import WarningMessage
from services.common.geo.registry import GeoRegistry, default_registry
from services.common.metrics import Metrics
from services.dispatch.channels.app import AppPushChannel
from services.dispatch.channels.broadcast import BroadcastChannel
from services.dispatch.channels.sms import SmsChannel
from services.dispatch.render import RenderedMessage, render_message
from services.dispatch.render.cap import cap_errors
from services.dispatch.render.sms import count_segments
from services.dispatch.render.vocab import cap_time
from services.dispatch.targeting import RegistryLookup
from services.ingest.simulate.scenario import find_scenario, load_scenario
from services.scenario_run import ScenarioRun, scenario_processors, trim

NS = {"cap": CAP_NAMESPACE}
SCENARIO = "convective-afternoon"
HOURS = 5.0
SAMPLE_FRACTION = 0.3


@pytest.fixture(scope="module")
def registry() -> GeoRegistry:
    return default_registry()


@pytest.fixture(scope="module")
def messages(registry: GeoRegistry) -> list[WarningMessage]:
    """The replay's messages (run once for the module, on its own event loop)."""
    sc = trim(load_scenario(find_scenario(SCENARIO, None)), HOURS)
    sc = sc.model_copy(update={"stations": sc.stations.model_copy(update={"sample_fraction": SAMPLE_FRACTION})})
    run = ScenarioRun(sc, registry, scenario_processors(registry, Metrics()), speed=None)
    return asyncio.run(run.run()).messages


@pytest.fixture(scope="module")
def rendered(messages: list[WarningMessage], registry: GeoRegistry) -> dict[str, RenderedMessage]:
    towns = RegistryLookup(registry)
    return {m.message_id: render_message(m, towns) for m in messages}


def _text(doc: etree._Element, path: str) -> str:
    value = doc.findtext(path, namespaces=NS)
    assert value is not None, path
    return value


def test_the_replay_issues_every_message_type(messages: list[WarningMessage]) -> None:
    kinds = Counter(m.msg_type for m in messages)
    assert kinds["Alert"] >= 50, kinds
    assert kinds["Update"] >= 50, kinds
    assert kinds["Cancel"] >= 5, kinds
    assert len({m.hazard for m in messages}) >= 3


def test_every_message_renders_to_xsd_valid_cap(
    messages: list[WarningMessage], rendered: dict[str, RenderedMessage]
) -> None:
    invalid = {}
    for msg in messages:
        r = rendered[msg.message_id]
        errors = cap_errors(r.cap_xml)
        if errors:
            invalid[msg.message_id] = errors[:3]
            continue
        doc = etree.fromstring(r.cap_xml)
        assert _text(doc, "cap:identifier") == r.cap_identifier
        assert _text(doc, "cap:sender") == msg.sender
        assert _text(doc, "cap:sent") == cap_time(msg.sent_at)
        assert _text(doc, "cap:msgType") == msg.msg_type
        assert [i.findtext("cap:language", namespaces=NS) for i in doc.findall("cap:info", NS)] == ["zh-CN", "en-US"]
    assert invalid == {}, f"{len(invalid)} of {len(messages)} messages are not valid CAP: {list(invalid.items())[:3]}"


def test_identifiers_and_message_ids_are_unique(
    messages: list[WarningMessage], rendered: dict[str, RenderedMessage]
) -> None:
    ids = Counter(m.message_id for m in messages)
    assert [k for k, n in ids.items() if n > 1] == []
    identifiers = Counter(r.cap_identifier for r in rendered.values())
    assert [k for k, n in identifiers.items() if n > 1] == []


def test_reference_chains_are_complete_and_in_order(
    messages: list[WarningMessage], rendered: dict[str, RenderedMessage]
) -> None:
    by_warning: dict[str, list[WarningMessage]] = defaultdict(list)
    for msg in messages:
        by_warning[msg.warning_id].append(msg)
    chained = 0
    for warning_id, chain in by_warning.items():
        chain.sort(key=lambda m: m.version)
        assert [m.version for m in chain] == list(range(1, len(chain) + 1)), f"{warning_id}: versions missing"
        assert chain[0].msg_type == "Alert"
        assert all(m.msg_type != "Alert" for m in chain[1:]), warning_id
        assert all(m.msg_type != "Cancel" for m in chain[:-1]), f"{warning_id}: a message after its Cancel"
        assert all(a.sent_at < b.sent_at for a, b in itertools.pairwise(chain)), warning_id
        for i, msg in enumerate(chain):
            earlier = chain[:i]
            assert [(r.message_id, r.sent_at) for r in msg.references] == [
                (e.message_id, e.sent_at) for e in earlier
            ], msg.message_id
            doc = etree.fromstring(rendered[msg.message_id].cap_xml)
            refs = doc.findtext("cap:references", namespaces=NS)
            if not earlier:
                assert refs is None, msg.message_id
                continue
            chained += 1
            assert refs is not None, msg.message_id
            expected = [f"{e.sender},{rendered[e.message_id].cap_identifier},{cap_time(e.sent_at)}" for e in earlier]
            assert refs.split(" ") == expected, msg.message_id
    assert chained >= 50


async def test_sms_broadcast_and_push_renderings_respect_the_channel_limits(
    messages: list[WarningMessage], rendered: dict[str, RenderedMessage]
) -> None:
    sms, broadcast, app = SmsChannel(), BroadcastChannel(), AppPushChannel()
    violations: dict[str, list[str]] = {}
    for msg in messages:
        r = rendered[msg.message_id]
        found = [
            f"{ch.name}: {v.limit} {v.actual:g} > {v.allowed:g}" for ch in (sms, broadcast, app) for v in ch.check(r)
        ]
        if found:
            violations[msg.message_id] = found
        assert count_segments(r.sms.text).segments == r.sms.segments
        assert r.sms.segments <= sms.config.max_segments
        assert r.push["title"]
        assert r.push["body"]
        counties = {code[:6] for code in msg.township_codes}
        assert set(r.broadcast) == counties, msg.message_id
        for ebd in r.broadcast.values():
            assert 0 < len(ebd["EBM"]["MsgContent"]["MsgDesc"]) <= broadcast.max_text_chars
    assert violations == {}, f"{len(violations)} messages break channel limits: {list(violations.items())[:3]}"
