"""HTTP push API for integrators: observations in, ``obs.*`` / ``obs.rejected`` out.

Endpoints (OpenAPI at ``/docs`` and ``/openapi.json``):

- ``POST /v1/observations``        one canonical observation → 202 with its id, or 4xx
- ``POST /v1/observations:batch``  JSON array or NDJSON of canonical observations → per-item results
- ``POST /v1/feeds/{feed}``        a vendor payload decoded by a feed adapter → per-item results
- ``GET /healthz``, ``GET /metrics``

Every request to a ``POST`` endpoint goes through these steps; the first failure answers:

1. Authenticate ``X-API-Key`` (``keys.KeyStore``)                          → 401
2. Take a token from the key's bucket (``ratelimit``)                      → 429 + Retry-After
3. Resolve the feed and check the key may use it                          → 404 / 403
4. Read the raw body, refusing it past the byte limit before any parsing  → 413
5. Check the Content-Type against the feed's ``content_types``             → 415
6. Decode it into items (``feeds.decode_payload``); past ``max_batch``     → 413
7. Pass every item through the shared ``IngestGate`` with the key's scope and publish the
   result on ``obs.<kind>`` or ``obs.rejected`` (``pipeline.publish_observations``); if the
   bus fails, undo the gate's memory of them and answer 503 so the retry is admitted.

Nothing a caller sent is dropped without a trace: from step 3 on, a refused request is
published on ``obs.rejected`` with its first bytes (steps 1-2 are refused before the body
is read: publishing them would let anyone without a key fill the topic). Each item counts
once as received and once as accepted or rejected (``IngestCounts`` on ``app.state.counts``
and the ``earlywarn_observations_*_total`` metrics), so received = accepted + rejected.

The gate and the bus calls run on the event loop only (no thread pool): the gate's
duplicate memory is not thread-safe, and a batch is one ``publish_many``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import socket
import sys
import time
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

import uvicorn
from fastapi import FastAPI, Path, Request, Response, Security
from fastapi.openapi.utils import get_openapi
from fastapi.security import APIKeyHeader
from prometheus_client import CONTENT_TYPE_LATEST, Counter
from pydantic import BaseModel, Field

from schemas import topics
from schemas.observations import OBSERVATION_ADAPTER, ObservationBase
from schemas.rejected import RejectedRecord
from services.common.bus.base import Bus, Emit
from services.common.metrics import Metrics
from services.common.rejects import rejection
from services.ingest.feeds.base import RAW_PREVIEW_BYTES, DecodeError, FeedAdapter, decode_payload, oversized_error
from services.ingest.feeds.registry import FeedRegistry, default_registry
from services.ingest.gate import IngestGate, Scope
from services.ingest.keys import IntegratorKey, KeyStore
from services.ingest.ratelimit import KeyedRateLimiter
from services.pipeline import IngestCounts, publish_observations

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
"""Per request on the observation endpoints (a 2048² radar scan is ~5.6 MB of base64)."""
DEFAULT_MAX_BATCH = 1000
"""Most items one request may carry (batch endpoint and feeds)."""
CANONICAL_FEED = "canonical"

STATUS_BY_REASON: dict[str, int] = {
    "malformed_json": 400,
    "schema": 422,
    "implausible_value": 422,
    "unknown_station": 422,
    "wrong_kind_for_station": 422,
    "forbidden_station": 403,
    "forbidden_kind": 403,
    "timestamp_future": 422,
    "timestamp_past": 422,
    "duplicate": 409,
    "oversized": 413,
    "unknown_feed": 404,
    "command_refused": 422,
}


# ---------------------------------------------------------------- response shapes (docs)


class Accepted(BaseModel):
    status: Literal["accepted"] = "accepted"
    id: str = Field(description="observation id: kind|station_id|observed_at (UTC)")
    kind: str
    station_id: str
    township_code: str | None = Field(description="filled from the station registry")


class Problem(BaseModel):
    """Every 4xx: what was refused and why."""

    status: Literal["rejected"] = "rejected"
    reason: str = Field(
        description="a RejectReason (see obs.rejected.schema.json); or unauthorized / rate_limited for "
        "refusals before the payload is read; or unavailable when the bus did not take it (503, retry)"
    )
    field: str | None = Field(description="the offending field (dotted path), or the header / feed")
    detail: str


class BatchItem(BaseModel):
    index: int = Field(description="position of the item in the payload (0-based)")
    status: Literal["accepted", "rejected"]
    id: str | None = None
    reason: str | None = None
    field: str | None = None
    detail: str | None = None


class BatchResult(BaseModel):
    """HTTP 200: the request was processed; look at each item (207-style)."""

    feed: str
    received: int
    accepted: int
    rejected: int
    items: list[BatchItem]


class Health(BaseModel):
    status: Literal["ok"]
    feeds: list[str]
    keys: int


# ---------------------------------------------------------------- the request's view of the gate


class RequestGate(IngestGate):
    """The shared gate seen through one request: the key's scope, outcomes kept in order.

    ``publish_observations`` takes a gate but no scope and returns no per-item outcome; this
    view adds both without a second gate: it delegates to the shared one (same registry,
    clock and duplicate memory) and deliberately does not call ``IngestGate.__init__``.
    Accepted observations get ``source`` = ``<key id>/<feed>``: provenance comes from
    authentication, not from what the payload claims.
    """

    def __init__(self, inner: IngestGate, scope: Scope | None, source: str) -> None:
        self._inner = inner
        self._scope = scope
        self._source = source
        self.outcomes: list[ObservationBase | RejectedRecord] = []

    def admit(self, raw: bytes | str, source: str, scope: Scope | None = None) -> ObservationBase | RejectedRecord:
        return self._record(self._inner.admit(raw, source, scope or self._scope), owned=True)

    def admit_model(
        self,
        obs: ObservationBase,
        source: str,
        raw: bytes | str | None = None,
        scope: Scope | None = None,
        received_at: datetime | None = None,
    ) -> ObservationBase | RejectedRecord:
        return self._record(self._inner.admit_model(obs, source, raw, scope or self._scope, received_at), owned=False)

    def _record(self, result: ObservationBase | RejectedRecord, owned: bool) -> ObservationBase | RejectedRecord:
        """Keep the outcome; stamp ``source`` on an accepted observation.

        ``owned``: the gate parsed ``result`` from bytes just now and nobody else holds it, so
        the stamp is set in place (as the gate sets the township); a model the caller passed
        in is copied instead.
        """
        if not isinstance(result, RejectedRecord) and result.source != self._source:
            if owned:
                object.__setattr__(result, "source", self._source)
                result.__pydantic_fields_set__.add("source")
            else:
                result = result.model_copy(update={"source": self._source})
        self.outcomes.append(result)
        return result


# ---------------------------------------------------------------- metrics of the HTTP edge


class ApiMetrics:
    """Request counts by route and status, on the injected registry (once per registry)."""

    _by_metrics: ClassVar[weakref.WeakKeyDictionary[Metrics, ApiMetrics]] = weakref.WeakKeyDictionary()

    def __init__(self, metrics: Metrics) -> None:
        self.requests = Counter(
            "earlywarn_ingest_requests_total",
            "HTTP requests to the ingest API by route and status",
            ["route", "status"],
            registry=metrics.registry,
        )

    @classmethod
    def of(cls, metrics: Metrics) -> ApiMetrics:
        found = cls._by_metrics.get(metrics)
        if found is None:
            found = cls(metrics)
            cls._by_metrics[metrics] = found
        return found


# ---------------------------------------------------------------- the app


@dataclass(frozen=True, slots=True)
class _Oversized:
    head: bytes
    size: int
    at_least: bool
    """True when the body was cut off while reading (no Content-Length to tell its size)."""


class _Refusal(Exception):  # noqa: N818  (control flow inside this module, not an error type)
    """A request refused as a whole; with ``raw`` it is also published on ``obs.rejected``."""

    def __init__(
        self,
        status: int,
        reason: str,
        field: str | None,
        detail: str,
        raw: bytes | None = None,
        headers: tuple[tuple[str, str], ...] = (),
        source: str = "",
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.field = field
        self.detail = detail
        self.raw = raw
        self.headers = headers
        self.source = source


_JSON = "application/json"
_API_KEY_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False, description="`<key id>.<secret>`")
ApiKey = Annotated[str | None, Security(_API_KEY_HEADER)]


def _json(status: int, body: dict[str, Any], headers: Sequence[tuple[str, str]] = ()) -> Response:
    return Response(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        status_code=status,
        media_type=_JSON,
        headers=dict(headers),
    )


def create_app(
    bus: Bus,
    gate: IngestGate,
    keys: KeyStore,
    metrics: Metrics,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_batch: int = DEFAULT_MAX_BATCH,
    *,
    feeds: FeedRegistry | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> FastAPI:
    """The ingest API over ``bus`` and ``gate``; keys, limits and feeds are checked here, at start-up.

    ``clock`` (monotonic seconds) drives the rate limits. Raises ``FeedPluginError`` for a
    broken feed plug-in and ``KeyFileError`` for a key naming an unknown feed.
    """
    if max_body_bytes < 1 or max_batch < 1:
        msg = f"max_body_bytes and max_batch must be positive, got {max_body_bytes}, {max_batch}"
        raise ValueError(msg)
    registry = feeds or default_registry()
    adapters: dict[str, FeedAdapter] = {name: cls() for name, cls in registry.load_all().items()}
    if CANONICAL_FEED not in adapters:
        msg = f"the {CANONICAL_FEED!r} feed must be registered (it serves /v1/observations)"
        raise ValueError(msg)
    keys.check_feeds(adapters)
    limiter = KeyedRateLimiter(clock)
    counts = IngestCounts()
    api_metrics = ApiMetrics.of(metrics)

    app = FastAPI(
        title="earlywarn ingest",
        version="1",
        summary="Push observations (canonical or vendor feeds) into the early-warning pipeline.",
        description=(
            "Authenticate with `X-API-Key: <key id>.<secret>`. Canonical observations follow "
            "`schemas/json/observation.schema.json`; vendor payloads go to `/v1/feeds/{feed}`. "
            "Every refused item is also recorded on `obs.rejected` with its reason. "
            "See docs/integrators.md."
        ),
    )
    app.state.counts = counts
    app.state.adapters = adapters

    def received_now() -> datetime:
        return gate.now()

    async def publish_refusal(refusal: _Refusal, feed: str) -> None:
        if refusal.raw is None:
            return
        record = rejection(
            source=refusal.source,
            reason=refusal.reason,  # type: ignore[arg-type]  # published refusals carry RejectReason literals
            detail=refusal.detail,
            field=refusal.field,
            raw=refusal.raw[:RAW_PREVIEW_BYTES],
            received_at=received_now(),
        )
        await publish_rejections(bus, [record], refusal.source, counts, metrics, feed)

    def authorise(api_key: str | None) -> IntegratorKey:
        key = keys.authenticate(api_key)
        if key is None:
            detail = "missing X-API-Key header" if not api_key else "unknown, disabled or wrong API key"
            raise _Refusal(401, "unauthorized", "X-API-Key", detail, headers=(("WWW-Authenticate", "ApiKey"),))
        wait_s = limiter.take(key.id, key.rate_per_s, key.burst)
        if wait_s > 0:
            retry = "3600" if math.isinf(wait_s) else str(max(1, math.ceil(wait_s)))
            detail = (
                f"key {key.id!r} is limited to {key.rate_per_s:g} requests/s (burst {key.burst}); retry in {retry} s"
            )
            raise _Refusal(429, "rate_limited", "X-API-Key", detail, headers=(("Retry-After", retry),))
        return key

    async def read_body(request: Request, limit: int) -> bytes | _Oversized:
        """The raw body, or its first bytes once it is known to exceed ``limit`` (no parsing)."""
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            return _Oversized(await read_head(request), int(declared), at_least=False)
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            chunks.append(chunk)
            if size > limit:
                return _Oversized(b"".join(chunks)[:RAW_PREVIEW_BYTES], size, at_least=True)
        return b"".join(chunks)

    async def read_head(request: Request) -> bytes:
        head = b""
        async for chunk in request.stream():
            head += chunk
            if len(head) >= RAW_PREVIEW_BYTES:
                break
        return head[:RAW_PREVIEW_BYTES]

    def check_media_type(request: Request, adapter: FeedAdapter, body_head: bytes, source: str) -> None:
        media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        accepted = type(adapter).content_types
        if media and media not in accepted:
            raise _Refusal(
                415,
                "schema",
                "Content-Type",
                f"feed {adapter.name!r} accepts Content-Type {', '.join(accepted)}; got {media!r}",
                body_head,
                source=source,
            )

    async def prepare(
        request: Request, api_key: str | None, feed: str, limit: int | None
    ) -> tuple[IntegratorKey, FeedAdapter, bytes]:
        """Steps 1-5 of the module docstring; raises ``_Refusal``."""
        key = authorise(api_key)
        source = f"{key.id}/{feed}"[:128]
        adapter = adapters.get(feed)
        if adapter is None:
            known = ", ".join(sorted(adapters))
            detail = f"no feed {feed!r} (known: {known})"
            raise _Refusal(404, "unknown_feed", "feed", detail, await read_head(request), source=source)
        if not key.may_use_feed(feed):
            detail = f"key {key.id!r} may not send feed {feed!r} (allowed: {', '.join(key.feeds or ())})"
            raise _Refusal(403, "forbidden_kind", "feed", detail, await read_head(request), source=source)
        cap = type(adapter).max_payload_bytes if limit is None else limit
        body = await read_body(request, cap)
        if isinstance(body, _Oversized):
            error = oversized_error(body.size, cap, body.head, body.at_least)
            raise _Refusal(413, "oversized", None, error.detail, body.head, source=source)
        check_media_type(request, adapter, body, source)
        return key, adapter, body

    async def publish_or_undo(view: RequestGate, items: list[bytes | ObservationBase], source: str) -> None:
        """``publish_observations``; if the bus fails, undo what the gate and the counts remembered.

        The sender gets a 503 and retries; without the undo its retry would be refused as a
        duplicate of observations that were never published. Records the bus did take before
        failing are published again by the retry (at-least-once; consumers are idempotent).
        """
        before = (counts.received, counts.accepted, counts.rejected, dict(counts.by_reason))
        try:
            await publish_observations(bus, view, items, source, counts, metrics)
        except Exception as exc:  # any bus failure: the request is answered, not crashed
            for outcome in view.outcomes:
                if not isinstance(outcome, RejectedRecord):
                    gate.forget(outcome)
            counts.received, counts.accepted, counts.rejected, counts.by_reason = before
            detail = f"could not publish ({type(exc).__name__}: {exc}); nothing was accepted, retry"
            raise _Refusal(503, "unavailable", None, detail, headers=(("Retry-After", "1"),)) from exc

    async def answer(route: str, request: Request, work: Callable[[], Any]) -> Response:
        feed = str(request.path_params.get("feed", CANONICAL_FEED))
        try:
            response: Response = await work()
        except _Refusal as refusal:
            # The metrics label must stay a bounded set: a feed name nobody registered is "unknown".
            await publish_refusal(refusal, feed if feed in adapters else "unknown")
            response = _json(
                refusal.status,
                {"status": "rejected", "reason": refusal.reason, "field": refusal.field, "detail": refusal.detail},
                refusal.headers,
            )
        api_metrics.requests.labels(route, str(response.status_code)).inc()
        return response

    problem_responses: dict[int | str, dict[str, Any]] = {
        401: {"model": Problem, "description": "missing or wrong X-API-Key"},
        403: {"model": Problem, "description": "the key may not send this feed, kind or station"},
        413: {"model": Problem, "description": "payload over the byte limit, or more than max_batch items"},
        415: {"model": Problem, "description": "Content-Type not accepted by the feed"},
        429: {"model": Problem, "description": "rate limit of the key; see Retry-After"},
        503: {"model": Problem, "description": "the bus did not take the observations; retry after Retry-After"},
    }

    @app.post(
        "/v1/observations",
        status_code=202,
        response_model=Accepted,
        responses={
            **problem_responses,
            400: {"model": Problem, "description": "malformed JSON"},
            409: {"model": Problem, "description": "duplicate: this reading was already received"},
            422: {"model": Problem, "description": "schema, implausible value, unknown station, bad timestamp"},
        },
        summary="Send one canonical observation",
        openapi_extra={"requestBody": _request_body(("application/json",), "Observation", _single_examples(adapters))},
    )
    async def post_observation(request: Request, api_key: ApiKey = None) -> Response:
        async def work() -> Response:
            key, _, body = await prepare(request, api_key, CANONICAL_FEED, max_body_bytes)
            source = f"{key.id}/{CANONICAL_FEED}"
            view = RequestGate(gate, keys.scope(key), source)
            await publish_or_undo(view, [body], source)
            metrics.observations_received.labels(CANONICAL_FEED).inc()
            outcome = view.outcomes[0]
            if isinstance(outcome, RejectedRecord):
                return _json(
                    STATUS_BY_REASON.get(outcome.reason, 422),
                    {"status": "rejected", "reason": outcome.reason, "field": outcome.field, "detail": outcome.detail},
                )
            return _json(
                202,
                {
                    "status": "accepted",
                    "id": outcome.dedup_key,
                    "kind": outcome.kind,
                    "station_id": outcome.station_id,
                    "township_code": outcome.township_code,
                },
            )

        return await answer("/v1/observations", request, work)

    async def ingest_items(request: Request, api_key: str | None, feed: str, limit: int | None) -> Response:
        key, adapter, body = await prepare(request, api_key, feed, limit)
        source = f"{key.id}/{feed}"
        gate_items: list[bytes | ObservationBase] = []
        slots: list[int | DecodeError] = []
        for item in decode_payload(adapter, body):
            if len(slots) == max_batch:
                detail = f"payload holds more than {max_batch} items (max_batch); split it"
                raise _Refusal(413, "oversized", None, detail, body, source=source)
            if isinstance(item, DecodeError):
                slots.append(item)
            else:
                slots.append(len(gate_items))
                gate_items.append(item)
        received_at = received_now()
        decode_errors = [
            rejection(
                source=source, reason=s.reason, detail=s.detail, field=s.field, raw=s.raw, received_at=received_at
            )
            for s in slots
            if isinstance(s, DecodeError)
        ]
        if len(slots) == 1 and decode_errors and isinstance(slots[0], DecodeError) and slots[0].fatal:
            # Nothing in the payload could be read as items: a 4xx for the request as a whole.
            await publish_rejections(bus, decode_errors, source, counts, metrics, feed)
            error = decode_errors[0]
            return _json(
                STATUS_BY_REASON.get(error.reason, 422),
                {"status": "rejected", "reason": error.reason, "field": error.field, "detail": error.detail},
            )
        view = RequestGate(gate, keys.scope(key), source)
        if gate_items:
            await publish_or_undo(view, gate_items, source)
            metrics.observations_received.labels(feed).inc(len(gate_items))
        if decode_errors:
            await publish_rejections(bus, decode_errors, source, counts, metrics, feed)
        results: list[dict[str, Any]] = []
        accepted = 0
        errors = iter(decode_errors)
        for index, slot in enumerate(slots):
            outcome = next(errors) if isinstance(slot, DecodeError) else view.outcomes[slot]
            if isinstance(outcome, RejectedRecord):
                results.append(
                    {
                        "index": index,
                        "status": "rejected",
                        "reason": outcome.reason,
                        "field": outcome.field,
                        "detail": outcome.detail,
                    }
                )
            else:
                accepted += 1
                results.append({"index": index, "status": "accepted", "id": outcome.dedup_key})
        return _json(
            200,
            {
                "feed": feed,
                "received": len(slots),
                "accepted": accepted,
                "rejected": len(slots) - accepted,
                "items": results,
            },
        )

    @app.post(
        "/v1/observations:batch",
        response_model=BatchResult,
        responses={**problem_responses, 400: {"model": Problem, "description": "the payload is not an array/NDJSON"}},
        summary=f"Send up to {max_batch} canonical observations (JSON array or NDJSON)",
        openapi_extra={
            "requestBody": _request_body(
                ("application/json", "application/x-ndjson"), "ObservationBatch", _batch_examples(adapters)
            )
        },
    )
    async def post_batch(request: Request, api_key: ApiKey = None) -> Response:
        return await answer(
            "/v1/observations:batch", request, lambda: ingest_items(request, api_key, CANONICAL_FEED, max_body_bytes)
        )

    @app.post(
        "/v1/feeds/{feed}",
        response_model=BatchResult,
        responses={
            **problem_responses,
            400: {"model": Problem, "description": "the payload cannot be read at all"},
            404: {"model": Problem, "description": "no such feed"},
        },
        summary="Send a vendor payload through a feed adapter",
        description=_feeds_description(adapters),
        openapi_extra={"requestBody": _feed_request_body(adapters)},
    )
    async def post_feed(
        request: Request,
        feed: Annotated[str, Path(description="feed kind, e.g. rain_csv (see GET /healthz for the list)")],
        api_key: ApiKey = None,
    ) -> Response:
        return await answer("/v1/feeds/{feed}", request, lambda: ingest_items(request, api_key, feed, None))

    @app.get("/healthz", response_model=Health)
    async def healthz() -> Response:
        return _json(200, {"status": "ok", "feeds": sorted(adapters), "keys": len(keys)})

    @app.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(_observation_components())
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend the schema
    return app


@contextlib.asynccontextmanager
async def serve_in_background(app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn in the running event loop; yields the base URL.

    ``port=0`` binds an ephemeral port (tests, benchmarks). The server stops on exit.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                await task  # re-raises why it could not start
                msg = "uvicorn stopped before it started"
                raise RuntimeError(msg)
            await asyncio.sleep(0.005)
        yield f"http://{host}:{bound_port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


async def publish_rejections(
    bus: Bus,
    records: Sequence[RejectedRecord],
    source: str,
    counts: IngestCounts,
    metrics: Metrics | None,
    feed: str,
) -> None:
    """Publish rejections found before the gate (decode errors, refused payloads) on ``obs.rejected``.

    Counted like ``publish_observations`` counts the gate's: received and rejected by reason.
    """
    emits: list[Emit] = []
    for record in records:
        counts.received += 1
        counts.rejected += 1
        counts.by_reason[record.reason] = counts.by_reason.get(record.reason, 0) + 1
        if metrics:
            metrics.observations_received.labels(feed).inc()
            metrics.observations_rejected.labels(record.reason).inc()
        emits.append(Emit(topics.OBS_REJECTED, source, record.model_dump_json().encode()))
    await bus.publish_many(emits)


# ---------------------------------------------------------------- OpenAPI request bodies


def _observation_components() -> dict[str, Any]:
    """The canonical observation schemas as OpenAPI components (the same as schemas/json/)."""
    schema = OBSERVATION_ADAPTER.json_schema(mode="validation", ref_template="#/components/schemas/{model}")
    components: dict[str, Any] = dict(schema.pop("$defs", {}))
    components["Observation"] = schema
    components["ObservationBatch"] = {
        "description": "A JSON array of observations, or NDJSON (one observation per line)",
        "type": "array",
        "items": {"$ref": "#/components/schemas/Observation"},
    }
    return components


def _request_body(media_types: Sequence[str], component: str, examples: dict[str, Any]) -> dict[str, Any]:
    content: dict[str, Any] = {}
    for media in media_types:
        entry: dict[str, Any] = {"schema": {"$ref": f"#/components/schemas/{component}"}}
        if media == "application/json":
            entry["examples"] = examples
        else:
            entry["schema"] = {"type": "string", "description": "one observation per line"}
        content[media] = entry
    return {"required": True, "content": content}


def sample_payload(adapter: FeedAdapter) -> bytes | None:
    """The ``SAMPLE_PAYLOAD`` constant of the adapter's module, if it has one (shown in the API docs)."""
    sample = getattr(sys.modules.get(type(adapter).__module__), "SAMPLE_PAYLOAD", None)
    return sample if isinstance(sample, bytes) else None


def _canonical_samples(adapters: dict[str, FeedAdapter]) -> list[Any]:
    """Canonical observations from the built-in samples (the canonical and radar feeds speak our schema)."""
    samples: list[Any] = []
    for name in ("canonical", "radar_grid"):
        adapter = adapters.get(name)
        payload = sample_payload(adapter) if adapter is not None else None
        for line in (payload or b"").splitlines():
            with contextlib.suppress(ValueError):
                samples.append(json.loads(line))
    return samples


def _single_examples(adapters: dict[str, FeedAdapter]) -> dict[str, Any]:
    return {
        str(sample.get("kind", "observation")): {"summary": f"one {sample.get('kind')} observation", "value": sample}
        for sample in _canonical_samples(adapters)
        if isinstance(sample, dict)
    }


def _batch_examples(adapters: dict[str, FeedAdapter]) -> dict[str, Any]:
    return {"mixed": {"summary": "several kinds in one batch", "value": _canonical_samples(adapters)}}


def _feed_request_body(adapters: dict[str, FeedAdapter]) -> dict[str, Any]:
    content: dict[str, Any] = {}
    for name, adapter in sorted(adapters.items()):
        sample = sample_payload(adapter)
        if sample is None:
            continue
        media = type(adapter).content_types[0]
        entry = content.setdefault(media, {"schema": {"type": "string"}, "examples": {}})
        entry["examples"][name] = {"summary": type(adapter).description, "value": sample.decode("utf-8", "replace")}
    return {"required": True, "content": content}


def _feeds_description(adapters: dict[str, FeedAdapter]) -> str:
    rows = [
        f"- `{name}`: {type(a).description} Content-Type: {', '.join(type(a).content_types)}; "
        f"at most {type(a).max_payload_bytes} bytes."
        for name, a in sorted(adapters.items())
    ]
    return "Decode a vendor payload with the named feed adapter, then admit each item.\n\n" + "\n".join(rows)
