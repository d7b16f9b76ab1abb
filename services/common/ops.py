"""The operational endpoints every service exposes: ``/metrics`` and ``/healthz``.

Workers without an HTTP API of their own (rules, dispatch) serve them on ``--metrics-port``
with a tiny FastAPI app on uvicorn inside the worker's event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import uvicorn
from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST

from services.common.metrics import Metrics


def ops_app(metrics: Metrics, healthy: Callable[[], bool], service: str) -> FastAPI:
    app = FastAPI(title=f"earlywarn {service} ops", docs_url=None, redoc_url=None)

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz")
    def healthz() -> Response:
        ok = healthy()
        return Response(
            content='{"status":"ok"}' if ok else '{"status":"unhealthy"}',
            status_code=200 if ok else 503,
            media_type="application/json",
        )

    return app


async def serve_ops(
    metrics: Metrics, healthy: Callable[[], bool], service: str, port: int, stop: asyncio.Event
) -> None:
    """Serve until ``stop`` is set; port 0 disables it."""
    if port == 0:
        return
    config = uvicorn.Config(
        ops_app(metrics, healthy, service), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await stop.wait()
    server.should_exit = True
    await task
