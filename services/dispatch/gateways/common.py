"""What every provider simulator shares: behaviour knobs, counters, receipts, serving.

Behaviour (``GatewayBehaviour``), applied to each request in this order::

    1. outage?      inside an outage window or switched down → 503 (counted ``outage``)
    2. throttle?    token bucket at ``tps`` (capacity ``burst``, default = tps) lacks the
                    request's targets → 429 + Retry-After (counted ``throttled``), nothing accepted
    3. latency      sleep one draw of the latency distribution (fixed/uniform/exponential/lognormal)
    4. per target   rejected with probability ``error_rate``, else accepted with a provider id
    5. receipts     after ``receipt_delay_ms`` (+ jitter), POST the accepted targets' receipts
                    to the callback URL; each fails with ``delivery_failure_rate`` and is sent
                    twice with ``duplicate_receipt_p`` (the copy arrives a little later). A POST
                    that meets a transport error or a 5xx is retried ``receipt_retries`` times
                    (backoff ``receipt_retry_backoff_ms`` doubling), as real gateways retry
                    delivery reports; a 4xx (the receiver refused it) is not retried.

Determinism: per-target outcomes (reject, delivery failure, duplicate, provider id) are
keyed hashes of ``(seed, kind, message ref, target)`` — the same for a given seed whatever
order requests arrive in. Latency and receipt delays come from a ``Random(seed)`` drawn in
arrival order (deterministic for sequential clients).

``/stats`` returns the counters; ``max_accepted_1s`` is the largest number of targets
accepted within any sliding one-second window, so a test can assert the rate directly.
``POST /control`` with ``{"down": true|false}`` switches an outage on or off at run time.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import random
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from services.dispatch.channels.pacing import TokenBucket

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


class OutageWindow(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    start_s: float = Field(ge=0, description="seconds after the gateway started")
    end_s: float = Field(gt=0)


class GatewayBehaviour(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = 0
    latency_ms: float = Field(default=2.0, ge=0, description="mean (or fixed) request latency")
    latency_jitter_ms: float = Field(default=0.0, ge=0, description="uniform ± / lognormal sigma scale")
    latency_distribution: Literal["fixed", "uniform", "exponential", "lognormal"] = "fixed"
    error_rate: float = Field(default=0.0, ge=0, le=1, description="per-target rejection probability")
    tps: float | None = Field(default=None, gt=0, description="targets/s accepted; None = unlimited")
    burst: int | None = Field(default=None, ge=1, description="bucket capacity; default = tps")
    outage_windows: tuple[OutageWindow, ...] = ()
    receipt_delay_ms: float = Field(default=50.0, ge=0)
    receipt_jitter_ms: float = Field(default=0.0, ge=0)
    delivery_failure_rate: float = Field(default=0.0, ge=0, le=1)
    duplicate_receipt_p: float = Field(default=0.0, ge=0, le=1)
    duplicate_lag_ms: float = Field(default=30.0, ge=0)
    receipt_retries: int = Field(default=3, ge=0, le=20, description="re-POSTs of a receipt batch after errors")
    receipt_retry_backoff_ms: float = Field(default=250.0, ge=0)
    callback_url: str | None = Field(default=None, description="used when a request names none")
    api_key: SecretStr | None = Field(default=None, description="if set, require 'Authorization: Bearer <key>'")


def unit_hash(*parts: object) -> float:
    """A deterministic uniform draw in [0, 1) from its key."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def provider_id(*parts: object) -> str:
    return hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=10).hexdigest()


@dataclass
class GatewayStats:
    received_requests: int = 0
    received_targets: int = 0
    accepted: int = 0
    rejected: int = 0
    throttled_requests: int = 0
    throttled_targets: int = 0
    outage_requests: int = 0
    unauthorized: int = 0
    oversize_requests: int = 0
    max_batch_seen: int = 0
    receipts_sent: int = 0
    duplicate_receipts_sent: int = 0
    receipt_post_failures: int = 0
    max_accepted_1s: int = 0
    first_accept_s: float | None = None
    last_accept_s: float | None = None


@dataclass
class GatewaySim:
    """Runtime state of one simulator (lives on ``app.state.sim``)."""

    behaviour: GatewayBehaviour
    kind: str
    stats: GatewayStats = field(default_factory=GatewayStats)
    down: bool = False

    def __post_init__(self) -> None:
        self.started = time.monotonic()
        self._rng = random.Random(self.behaviour.seed)
        b = self.behaviour
        self._bucket = TokenBucket(b.tps, float(b.burst or b.tps)) if b.tps else None
        self._window: deque[tuple[float, int]] = deque()
        self._window_sum = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None

    # -- request gates -------------------------------------------------------------

    def in_outage(self) -> bool:
        if self.down:
            return True
        t = time.monotonic() - self.started
        return any(w.start_s <= t < w.end_s for w in self.behaviour.outage_windows)

    def authorized(self, request: Request) -> bool:
        key = self.behaviour.api_key
        if key is None:
            return True
        return request.headers.get("authorization") == f"Bearer {key.get_secret_value()}"

    def throttle(self, n: int) -> float | None:
        """None if ``n`` targets may pass now (tokens taken), else seconds to wait."""
        if self._bucket is None:
            return None
        n_eff = min(float(n), self._bucket.capacity)
        wait = self._bucket.time_until(n_eff)
        if wait > 0:
            return wait
        self._bucket.take(n_eff)
        return None

    def gate(self, request: Request, n: int, max_batch: int | None = None) -> JSONResponse | None:
        """Steps 1–2 of the module docstring (plus auth and size); a response means "stop here"."""
        s = self.stats
        s.received_requests += 1
        s.received_targets += n
        s.max_batch_seen = max(s.max_batch_seen, n)
        if not self.authorized(request):
            s.unauthorized += 1
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        if self.in_outage():
            s.outage_requests += 1
            return JSONResponse({"error": "service unavailable (simulated outage)"}, status_code=503)
        if max_batch is not None and n > max_batch:
            s.oversize_requests += 1
            return JSONResponse({"error": f"batch of {n} exceeds {max_batch}"}, status_code=413)
        wait = self.throttle(n)
        if wait is not None:
            s.throttled_requests += 1
            s.throttled_targets += n
            return JSONResponse(
                {"error": "throttled"}, status_code=429, headers={"Retry-After": str(max(1, math.ceil(wait)))}
            )
        return None

    # -- latency and outcomes ---------------------------------------------------

    def draw_ms(self, mean: float, jitter: float, dist: str) -> float:
        if dist == "fixed" or mean <= 0:
            return mean
        if dist == "uniform":
            return max(0.0, self._rng.uniform(mean - jitter, mean + jitter))
        if dist == "exponential":
            return self._rng.expovariate(1.0 / mean)
        sigma = jitter / mean if mean else 0.5
        return self._rng.lognormvariate(math.log(mean) - sigma * sigma / 2, sigma)

    async def latency(self) -> None:
        b = self.behaviour
        ms = self.draw_ms(b.latency_ms, b.latency_jitter_ms, b.latency_distribution)
        if ms > 0:
            await asyncio.sleep(ms / 1000)

    def rejected(self, ref: str, target: str) -> bool:
        return unit_hash(self.behaviour.seed, "reject", ref, target) < self.behaviour.error_rate

    def delivery_fails(self, ref: str, target: str) -> bool:
        return unit_hash(self.behaviour.seed, "undeliv", ref, target) < self.behaviour.delivery_failure_rate

    def duplicated(self, ref: str, target: str) -> bool:
        return unit_hash(self.behaviour.seed, "dup", ref, target) < self.behaviour.duplicate_receipt_p

    def record_accepted(self, n: int) -> None:
        if n <= 0:
            return
        now = time.monotonic() - self.started
        s = self.stats
        s.accepted += n
        s.first_accept_s = now if s.first_accept_s is None else s.first_accept_s
        s.last_accept_s = now
        self._window.append((now, n))
        self._window_sum += n
        while self._window and self._window[0][0] <= now - 1.0:
            self._window_sum -= self._window.popleft()[1]
        s.max_accepted_1s = max(s.max_accepted_1s, self._window_sum)

    # -- receipts ------------------------------------------------------------------

    def schedule_receipts(
        self, callback_url: str | None, receipts: list[dict[str, Any]], duplicates: list[dict[str, Any]]
    ) -> None:
        url = callback_url or self.behaviour.callback_url
        if not url or not receipts:
            return
        b = self.behaviour
        delay = self.draw_ms(b.receipt_delay_ms, b.receipt_jitter_ms, "uniform" if b.receipt_jitter_ms else "fixed")
        self._spawn(self._post_later(url, receipts, delay / 1000, duplicate=False))
        if duplicates:
            self._spawn(self._post_later(url, duplicates, (delay + b.duplicate_lag_ms) / 1000, duplicate=True))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post_later(self, url: str, receipts: list[dict[str, Any]], delay_s: float, *, duplicate: bool) -> None:
        await asyncio.sleep(delay_s)
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=10.0)
        for start in range(0, len(receipts), 500):
            chunk = receipts[start : start + 500]
            if not await self._post_receipts(url, chunk):
                self.stats.receipt_post_failures += 1
                continue
            if duplicate:
                self.stats.duplicate_receipts_sent += len(chunk)
            else:
                self.stats.receipts_sent += len(chunk)

    async def _post_receipts(self, url: str, chunk: list[dict[str, Any]]) -> bool:
        assert self._client is not None
        b = self.behaviour
        for attempt in range(b.receipt_retries + 1):
            if attempt:
                await asyncio.sleep(b.receipt_retry_backoff_ms / 1000 * 2 ** (attempt - 1))
            try:
                response = await self._client.post(url, json={"receipts": chunk})
            except httpx.HTTPError:
                continue
            if response.status_code < 500:
                return response.is_success
        return False

    async def drain(self, timeout_s: float = 5.0) -> None:
        """Wait for scheduled receipts to be posted (used at shutdown)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._client is not None:
            await self._client.aclose()


def gateway_app(kind: str, behaviour: GatewayBehaviour) -> tuple[FastAPI, GatewaySim]:
    """A FastAPI app with ``/stats``, ``/healthz`` and ``/control``; routes are added by the caller."""
    sim = GatewaySim(behaviour, kind)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await sim.drain(timeout_s=1.0)
        await sim.aclose()

    app = FastAPI(title=f"earlywarn {kind} gateway simulator", lifespan=lifespan)
    app.state.sim = sim

    @app.get("/stats")
    async def stats() -> dict[str, Any]:
        return {"kind": kind, "down": sim.in_outage(), **sim.stats.__dict__}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "down" if sim.in_outage() else "ok"}

    @app.post("/control")
    async def control(request: Request) -> dict[str, Any]:
        body = await request.json()
        sim.down = bool(body.get("down", sim.down))
        return {"down": sim.down}

    return app, sim


# --------------------------------------------------------------------------- serving


def run_gateway(
    app: FastAPI, host: str = "127.0.0.1", port: int = 0, *, timeout_s: float = 10.0
) -> tuple[str, Callable[[], None]]:
    """Serve ``app`` with uvicorn on loopback in a background thread.

    Returns ``(base_url, stop)``; ``port=0`` binds an ephemeral port. ``stop()`` shuts the
    server down (connections are then refused — the "hard outage") and is idempotent.
    """
    if host not in LOOPBACK_HOSTS:
        raise ValueError(f"gateway simulators bind to loopback only, not {host!r}")
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"gateway-{app.title}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError("gateway failed to start")
        time.sleep(0.005)
    sockname = server.servers[0].sockets[0].getsockname()
    bound_port = int(sockname[1])
    url_host = f"[{host}]" if ":" in host else host

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=timeout_s)

    return f"http://{url_host}:{bound_port}", stop
