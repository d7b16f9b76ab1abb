"""A real ingest API on loopback (uvicorn, ephemeral port) over a MemoryBus, per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from schemas import topics
from services.common.bus.base import Record
from services.common.bus.memory import MemoryBus
from services.common.metrics import Metrics
from services.ingest.api import create_app, serve_in_background
from services.ingest.feeds.testing import SAMPLE_NOW, sample_lookup
from services.ingest.gate import IngestGate
from services.ingest.keys import IntegratorKey, KeyStore, hash_secret
from services.pipeline import IngestCounts

NOW = SAMPLE_NOW
MAX_BODY_BYTES = 64 * 1024
MAX_BATCH = 50
EXTRA_STATIONS: dict[str, tuple[tuple[str, ...], str | None]] = {"RIVER-X1": (("water_level",), "330302023")}
"""A water-level station outside the hydro key's scope."""

KEYS = {
    "full": "full.s3cret-full",
    "hydro": "hydro.s3cret-hydro",
    "slow": "slow.s3cret-slow",
    "off": "off.s3cret-off",
}


def _key(key_id: str, **fields: object) -> IntegratorKey:
    secret = KEYS[key_id].split(".", 1)[1]
    return IntegratorKey.model_validate(
        {"id": key_id, "integrator": f"{key_id} integrator", "secret_sha256": hash_secret(secret), **fields}
    )


def key_store() -> KeyStore:
    return KeyStore(
        [
            _key("full", rate_per_s=10_000, burst=10_000),
            _key(
                "hydro",
                stations=["WL-*", "TIDE-WZ-01"],
                feeds=["canonical", "water_level_csv"],
                kinds=["water_level"],
                rate_per_s=10_000,
                burst=10_000,
            ),
            _key("slow", rate_per_s=0.5, burst=2),
            _key("off", enabled=False),
        ]
    )


@dataclass
class Ingest:
    url: str
    bus: MemoryBus
    metrics: Metrics
    counts: IngestCounts
    client: httpx.AsyncClient

    def headers(self, key: str = "full", content_type: str = "application/json") -> dict[str, str]:
        return {"X-API-Key": KEYS[key], "Content-Type": content_type}

    async def records(self, group: str = "check") -> tuple[list[Record], list[Record]]:
        """Everything on obs.<kind> and on obs.rejected so far."""
        obs_topics = sorted(set(topics.OBS_TOPIC_BY_KIND.values()))
        sub = await self.bus.subscribe([*obs_topics, topics.OBS_REJECTED], group=group)
        out: list[Record] = []
        while batch := await sub.getmany(timeout_s=0.05, max_records=100_000):
            out.extend(batch)
        await sub.commit()
        await sub.close()
        rejected = [r for r in out if r.topic == topics.OBS_REJECTED]
        accepted = [r for r in out if r.topic != topics.OBS_REJECTED]
        return accepted, rejected


@pytest.fixture
async def ingest() -> AsyncIterator[Ingest]:
    bus = MemoryBus(default_partitions=4, retention_records=1_000_000)
    metrics = Metrics()
    gate = IngestGate(sample_lookup(EXTRA_STATIONS), lambda: NOW)
    app = create_app(bus, gate, key_store(), metrics, max_body_bytes=MAX_BODY_BYTES, max_batch=MAX_BATCH)
    async with serve_in_background(app) as url, httpx.AsyncClient(base_url=url, timeout=10.0) as client:
        yield Ingest(url, bus, metrics, app.state.counts, client)
