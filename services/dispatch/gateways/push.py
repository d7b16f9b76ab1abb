"""Push gateway simulator: ``POST /push`` with ≤ 500 device tokens → per-token results.

Request::

    {"tokens": ["tok_…", …], "payload": {"title": …, "body": …, "data": {…}},
     "ref": "<message_id>", "callback_url": "…"}

Response 200: ``{"results": [{"token": …, "status": "ok", "id": …} | {"token": …,
"status": "invalid_token", "reason": "unregistered"}]}``; 413 above ``max_tokens``
(counted in ``oversize_requests``; ``max_batch_seen`` records the largest request).
Receipts: ``{"receipts": [{"id": …, "token": …, "ref": …, "status": "delivered" | "failed",
"at": …}]}`` — "delivered" means the device fetched it.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from schemas.common import utc_now
from services.dispatch.gateways.common import GatewayBehaviour, gateway_app, provider_id


class PushGatewayConfig(GatewayBehaviour):
    max_tokens: int = Field(default=500, ge=1)


def create_push_gateway(config: PushGatewayConfig | None = None) -> FastAPI:
    config = config or PushGatewayConfig()
    app, sim = gateway_app("push", config)

    @app.post("/push")
    async def push(request: Request) -> JSONResponse:
        body: dict[str, Any] = await request.json()
        tokens = [str(t) for t in body.get("tokens", [])]
        stop = sim.gate(request, len(tokens), config.max_tokens)
        if stop is not None:
            return stop
        ref = str(body.get("ref", ""))
        await sim.latency()
        results: list[dict[str, Any]] = []
        receipts: list[dict[str, Any]] = []
        duplicates: list[dict[str, Any]] = []
        for token in tokens:
            if sim.rejected(ref, token):
                sim.stats.rejected += 1
                results.append({"token": token, "status": "invalid_token", "reason": "unregistered"})
                continue
            pid = provider_id(sim.behaviour.seed, "push", ref, token)
            results.append({"token": token, "status": "ok", "id": pid})
            failed = sim.delivery_fails(ref, token)
            receipt = {
                "id": pid,
                "token": token,
                "ref": ref,
                "status": "failed" if failed else "delivered",
                "at": utc_now().isoformat(),
            }
            receipts.append(receipt)
            if sim.duplicated(ref, token):
                duplicates.append(receipt)
        sim.record_accepted(len(receipts))
        sim.schedule_receipts(body.get("callback_url"), receipts, duplicates)
        return JSONResponse({"results": results})

    return app
