"""Ops endpoints, OpenAPI, the static UI (all local), CAP and geometry."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from services.console.app import STATIC_DIR
from services.console.testing import make_warning, publish_all
from tests.integration.console.conftest import RunningConsole, read_sse


async def test_healthz_and_openapi(running: RunningConsole) -> None:
    client = running.client()
    health = await client.get("/healthz")
    assert (health.status_code, health.json()["status"]) == (200, "ok")
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert {"/api/stream", "/api/warnings/{warning_id}/{action}", "/api/compose/check", "/api/replay"} <= set(paths)
    assert (await client.get("/docs")).status_code == 404  # the Swagger UI would load from a CDN
    undocumented = [
        f"{method.upper()} {path}"
        for path, ops in paths.items()
        for method, op in ops.items()
        if not op.get("description")
    ]
    assert undocumented == []


async def test_metrics_count_stream_clients_events_and_actions(running: RunningConsole) -> None:
    warning = make_warning("rainstorm-330302006-9", sent_at=datetime.now(UTC))
    client, csrf = await running.signed_in("li.na")

    async def during_stream() -> None:
        metrics = (await running.client().get("/metrics")).text
        assert "earlywarn_console_sse_clients 1.0" in metrics
        await publish_all(running.bus, [warning])

    await read_sse(client, lambda evs: any(e.event == "warning" for e in evs), on_open=during_stream)
    await client.post(f"/api/warnings/{warning.warning_id}/acknowledge", json={}, headers={"X-CSRF-Token": csrf})
    await asyncio.sleep(0.1)
    metrics = (await running.client().get("/metrics")).text
    assert re.search(r"earlywarn_console_sse_events_sent_total [1-9]", metrics)
    assert 'earlywarn_console_actions_total{action="acknowledge",outcome="published"} 1.0' in metrics
    assert 'earlywarn_console_stream_events_total{type="warning"}' in metrics


async def test_the_ui_is_served_with_a_strict_policy(running: RunningConsole) -> None:
    client = running.client()
    page = await client.get("/")
    assert page.status_code == 200
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    for asset in ("/static/js/main.js", "/static/css/console.css", "/static/i18n.json"):
        assert (await client.get(asset)).status_code == 200


def test_every_asset_is_local() -> None:
    for path in Path(STATIC_DIR).rglob("*"):
        if path.suffix in {".html", ".js", ".css", ".json"}:
            text = path.read_text(encoding="utf-8")
            assert not re.search(r"(src|href)=[\"']https?://", text), path
            assert not re.search(r"url\(\s*['\"]?https?://", text), path
            assert not re.search(r"import[^;]*from\s+[\"']https?://", text), path


def test_every_label_exists_in_both_languages() -> None:
    import json

    strings = json.loads((Path(STATIC_DIR) / "i18n.json").read_text(encoding="utf-8"))
    assert set(strings["zh"]) == set(strings["en"])
    used = set()
    for path in Path(STATIC_DIR).rglob("*"):
        if path.suffix in {".html", ".js"}:
            text = path.read_text(encoding="utf-8")
            used |= set(re.findall(r'data-i18n(?:-placeholder)?="([\w.]+)"', text))
            used |= set(re.findall(r'\bt\("([\w.]+)"', text))
    assert used - set(strings["zh"]) == set()


async def test_geo_and_cap(running: RunningConsole) -> None:
    warning = make_warning("rainstorm-330302006-7", level="red", sent_at=datetime.now(UTC))
    await publish_all(running.bus, [warning])
    client, _ = await running.signed_in("zhao.viewer")
    geo = (await client.get("/api/geo")).json()
    assert len(geo["counties"]) == 3
    assert all(t["cell"].startswith("M") for t in geo["townships"])
    for _ in range(100):
        if warning.warning_id in running.console.model.warnings:
            break
        await asyncio.sleep(0.02)
    detail = (await client.get(f"/api/warnings/{warning.warning_id}")).json()
    cap_url = detail["history"][0]["cap_url"]
    assert cap_url == f"/cap/{warning.message_id}.xml"
    cap = await client.get(cap_url)
    assert cap.status_code == 200
    assert cap.headers["content-type"].startswith("application/cap+xml")
    from services.dispatch.render.cap import cap_errors

    assert cap_errors(cap.content) == []
    as_json = (await client.get(detail["history"][0]["json_url"])).json()
    assert as_json["message_id"] == warning.message_id
    assert (await client.get("/cap/nope.v1.xml")).status_code == 404


async def test_detail_has_evidence_history_cap_and_coverage(running: RunningConsole) -> None:
    from schemas.assessment import Evidence
    from schemas.coverage import CoverageReport, TownshipCoverage
    from services.dispatch.render.cap import render_cap

    now = datetime.now(UTC)
    wid = "rainstorm-330302006-11"
    alert = make_warning(wid, level="yellow", sent_at=now - timedelta(minutes=10), townships=("330302006", "330302023"))
    update = make_warning(
        wid, version=2, level="orange", sent_at=now, townships=("330302006", "330302023"), previous_sent=[alert.sent_at]
    ).model_copy(
        update={
            "evidence": (
                Evidence(station_id="G5801", metric="rain_3h_mm", value=62.5, threshold=50.0, window_s=10800),
                Evidence(station_id="Z9001", metric="rain_1h_mm", value=41.0, threshold=30.0, basis="forecast"),
            )
        }
    )
    cancel = make_warning(
        wid,
        version=3,
        msg_type="Cancel",
        level="orange",
        sent_at=now + timedelta(minutes=1),
        townships=("330302006", "330302023"),
        previous_sent=[alert.sent_at, update.sent_at],
    )
    await publish_all(running.bus, [alert, update])
    coverage = CoverageReport(
        warning_id=wid,
        message_id=update.message_id,
        at=now,
        townships=tuple(
            TownshipCoverage(
                township_code=code,
                channel=channel,
                targeted_population=1000,
                reached_population=reached,
                targets=10,
                delivered=reached // 100,
                failed=10 - reached // 100,
            )
            for code, reached in (("330302006", 1000), ("330302023", 0))
            for channel in ("sms", "broadcast")
        ),
        unreached_townships=("330302023",),
    )
    await running.bus.publish("coverage", wid, coverage.model_dump_json().encode())
    client, _ = await running.signed_in("zhao.viewer")
    for _ in range(100):
        ws = running.console.model.warnings.get(wid)
        if ws is not None and ws.coverage:
            break
        await asyncio.sleep(0.02)
    detail = (await client.get(f"/api/warnings/{wid}")).json()
    assert (detail["rule_id"], detail["reason"]) == ("rain_3h", "3 h rain above threshold")
    assert [(e["station_id"], e["value"], e["threshold"], e["basis"]) for e in detail["evidence"]] == [
        ("G5801", 62.5, 50.0, "observed"),
        ("Z9001", 41.0, 30.0, "forecast"),
    ]
    sms = next(c for c in detail["coverage"]["channels"] if c["channel"] == "sms")
    assert (sms["targeted_population"], sms["reached_population"], sms["reached_share"]) == (2000, 1000, 0.5)
    assert detail["coverage"]["unreached_townships"] == ["330302023"]
    assert [t["code"] for t in detail["townships"]] == ["330302006", "330302023"]

    await publish_all(running.bus, [cancel])
    for _ in range(100):
        detail = (await client.get(f"/api/warnings/{wid}")).json()
        if len(detail["history"]) == 3:
            break
        await asyncio.sleep(0.02)
    assert [m["msg_type"] for m in detail["history"]] == ["Alert", "Update", "Cancel"]
    for item, msg in zip(detail["history"], (alert, update, cancel), strict=True):
        cap = await client.get(item["cap_url"])
        # the very bytes dispatch's renderer makes for this message (not a copy of it)
        assert cap.content == render_cap(msg, running.console.towns)
    assert b"<msgType>Cancel</msgType>" in cap.content
    assert detail["summary"]["active"] is False


async def test_station_health_stale_and_faulty_and_rejected_counts(running: RunningConsole) -> None:
    from schemas.assessment import HazardAssessment
    from schemas.observations import RainObservation
    from schemas.rejected import RejectedRecord
    from services.rules.detectors.health import SensorHealth, downgrade

    now = datetime.now(UTC).replace(microsecond=0)
    for station, at in (("G1", now - timedelta(minutes=30)), ("G2", now), ("G3", now)):
        obs = RainObservation(station_id=station, observed_at=at, rain_mm=1.0, township_code="330302006")
        await running.bus.publish("obs.rain", station, obs.model_dump_json().encode())
    sound = HazardAssessment(
        hazard="rainstorm", township_code="330302006", source_id="G2", assessed_at=now, level="yellow", rule_id="r"
    )
    flat = downgrade(sound, SensorHealth(station_id="G2", status="flatline", checked_at=now))
    await running.bus.publish("hazard.assessments", sound.key, flat.model_dump_json().encode())
    bad = RejectedRecord(
        source="obs.rain[0]@1", reason="implausible_value", detail="rain_mm 900", received_at=now, raw="{}"
    )
    await running.bus.publish("obs.rejected", "x", bad.model_dump_json().encode())
    client, _ = await running.signed_in("zhao.viewer")
    events = await read_sse(client, lambda evs: any(e.event == "health" and e.data["faulty_total"] for e in evs))
    health = next(e.data for e in events if e.event == "health" and e.data["faulty_total"])
    [rain] = health["kinds"]
    assert (rain["stations"], rain["ok"], rain["stale"], rain["faulty"]) == (3, 1, 1, 1)
    assert [(s["station_id"]) for s in health["stale"]] == ["G1"]
    assert [(f["station_id"], f["status"]) for f in health["faulty"]] == [("G2", "flatline")]
    assert (await client.get("/api/stations")).json()["faulty_total"] == 1
    assert (await client.get("/api/rejected")).json()["counts"] == {"implausible_value": 1}
