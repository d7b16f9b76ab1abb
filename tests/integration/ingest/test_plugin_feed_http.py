"""A feed plug-in (the guide's worked example), registered by entry point, served over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from importlib.metadata import EntryPoint

import httpx

from services.common.bus.memory import MemoryBus
from services.common.metrics import Metrics
from services.ingest.api import create_app, serve_in_background
from services.ingest.feeds import FeedRegistry
from services.ingest.feeds.testing import SAMPLE_NOW, sample_lookup
from services.ingest.gate import IngestGate
from tests.integration.ingest.conftest import KEYS, key_store
from tests.unit.ingest.guide_example import ENTRY_POINT, load_guide_module


async def test_plugin_feed_is_served_and_listed() -> None:
    module = load_guide_module()
    feeds = FeedRegistry(discover=lambda group: [EntryPoint("tipping_bucket", ENTRY_POINT, "earlywarn.feeds")])
    gate = IngestGate(
        sample_lookup({"TB-0042": (("rain",), "330302006"), "TB-0043": (("rain",), None)}), lambda: SAMPLE_NOW
    )
    app = create_app(MemoryBus(), gate, key_store(), Metrics(), feeds=feeds)

    async def session() -> AsyncIterator[httpx.Response]:
        async with serve_in_background(app) as url, httpx.AsyncClient(base_url=url) as client:
            yield await client.post(
                "/v1/feeds/tipping_bucket",
                content=module.SAMPLE_PAYLOAD,
                headers={"X-API-Key": KEYS["full"], "Content-Type": "text/plain"},
            )
            yield await client.get("/healthz")
            yield await client.get("/openapi.json")

    posted, health, spec = [r async for r in session()]
    assert posted.status_code == 200, posted.text
    assert (posted.json()["accepted"], posted.json()["rejected"]) == (2, 0)
    assert "tipping_bucket" in health.json()["feeds"]
    assert "tipping_bucket" in spec.json()["paths"]["/v1/feeds/{feed}"]["post"]["description"]
