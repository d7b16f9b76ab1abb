"""When the bus fails, the sender gets a 503 and its retry is admitted (not a 'duplicate')."""

from __future__ import annotations

from collections.abc import Sequence

import httpx

from services.common.bus.base import Emit
from services.common.bus.memory import MemoryBus
from services.common.metrics import Metrics
from services.ingest.api import create_app, serve_in_background
from services.ingest.feeds.testing import SAMPLE_NOW, SAMPLE_PAYLOADS, canonical_rain, sample_lookup
from services.ingest.gate import IngestGate
from tests.integration.ingest.conftest import KEYS, key_store


class FlakyBus(MemoryBus):
    """Refuses the next ``failures`` publications, like a broker that is briefly away."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 0

    async def publish_many(self, emits: Sequence[Emit]) -> None:
        if self.failures:
            self.failures -= 1
            msg = "broker not available"
            raise ConnectionError(msg)
        await super().publish_many(emits)


async def test_bus_failure_is_a_503_and_the_retry_is_accepted() -> None:
    bus = FlakyBus()
    app = create_app(bus, IngestGate(sample_lookup(), lambda: SAMPLE_NOW), key_store(), Metrics())
    headers = {"X-API-Key": KEYS["full"], "Content-Type": "application/json"}
    body = canonical_rain("RAIN-A0001", SAMPLE_NOW)
    async with serve_in_background(app) as url, httpx.AsyncClient(base_url=url) as client:
        bus.failures = 1
        failed = await client.post("/v1/observations", content=body, headers=headers)
        assert failed.status_code == 503
        assert failed.headers["Retry-After"] == "1"
        assert "broker not available" in failed.json()["detail"]
        retried = await client.post("/v1/observations", content=body, headers=headers)
        assert retried.status_code == 202, retried.text

        bus.failures = 1
        csv_headers = {**headers, "Content-Type": "text/csv"}
        failed_batch = await client.post("/v1/feeds/rain_csv", content=SAMPLE_PAYLOADS["rain_csv"], headers=csv_headers)
        assert failed_batch.status_code == 503
        retried_batch = await client.post(
            "/v1/feeds/rain_csv", content=SAMPLE_PAYLOADS["rain_csv"], headers=csv_headers
        )
        assert retried_batch.json()["accepted"] == 3, retried_batch.text
    counts = app.state.counts
    assert (counts.received, counts.accepted, counts.rejected) == (4, 4, 0)
