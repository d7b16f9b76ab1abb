"""Ops endpoints, OpenAPI, the static UI (all local), CAP and geometry."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
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
