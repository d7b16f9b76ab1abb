"""A receipt sink: a tiny HTTP server that collects the callbacks gateways POST.

The dispatch service will own the real receipt endpoint; this one lets tests and
integrators see receipts on loopback without it. ``POST /<anything>`` stores the JSON body;
``sink.take()`` returns and clears what arrived (thread-safe: the sink runs in its own
thread under ``run_gateway``).
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from fastapi import FastAPI, Request


class ReceiptSink:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._payloads: list[tuple[str, dict[str, Any]]] = []
        self.total_posts = 0

    def put(self, path: str, payload: dict[str, Any]) -> None:
        with self._lock:
            self._payloads.append((path, payload))
            self.total_posts += 1

    def take(self) -> list[tuple[str, dict[str, Any]]]:
        with self._lock:
            out, self._payloads = self._payloads, []
        return out

    async def wait_for_posts(self, n: int, timeout_s: float = 5.0) -> bool:
        """Wait (polling) until ``total_posts`` ≥ n; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.total_posts >= n:
                return True
            await asyncio.sleep(0.01)
        return self.total_posts >= n


def create_receipt_sink() -> tuple[FastAPI, ReceiptSink]:
    sink = ReceiptSink()
    app = FastAPI(title="earlywarn receipt sink")

    @app.post("/{path:path}")
    async def collect(path: str, request: Request) -> dict[str, bool]:
        body = await request.json()
        sink.put(path, body if isinstance(body, dict) else {"body": body})
        return {"ok": True}

    return app, sink
