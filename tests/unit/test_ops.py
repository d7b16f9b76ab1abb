"""/metrics and /healthz of a worker."""

from __future__ import annotations

from fastapi.testclient import TestClient

from services.common.metrics import Metrics
from services.common.ops import ops_app


def test_metrics_and_health() -> None:
    metrics = Metrics()
    metrics.observations_rejected.labels("schema").inc(3)
    state = {"ok": True}
    client = TestClient(ops_app(metrics, lambda: state["ok"], "rules"))
    body = client.get("/metrics").text
    assert 'earlywarn_observations_rejected_total{reason="schema"} 3.0' in body
    assert client.get("/healthz").status_code == 200
    state["ok"] = False
    assert client.get("/healthz").status_code == 503


def test_the_live_heap_gauge_follows_allocations() -> None:
    import re

    def blocks() -> float:
        found = re.search(r"^earlywarn_python_heap_blocks (\S+)$", Metrics().render().decode(), re.MULTILINE)
        assert found is not None
        return float(found.group(1))

    before = blocks()
    held = [object() for _ in range(200_000)]
    during = blocks()
    del held
    after = blocks()
    assert during - before >= 150_000  # one block per object (and the list's own buffer)
    assert during - after >= 150_000
