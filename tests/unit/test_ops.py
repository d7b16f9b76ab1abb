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
