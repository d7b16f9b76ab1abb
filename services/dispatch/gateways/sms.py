"""SMS gateway simulator: ``POST /sms/batch`` → per-number acceptance, receipts by callback.

Request::

    {"text": "【温州市气象台】…", "priority": 4, "callback_url": "http://…/receipts/sms",
     "messages": [{"to": "zone:330304108", "ref": "<message_id>|<target_id>"}, …]}

Response 200 (per number, in order)::

    {"results": [{"to": …, "ref": …, "status": "accepted", "id": "<provider id>"},
                 {"to": …, "ref": …, "status": "rejected", "reason": "invalid destination"}]}

429 + ``Retry-After`` when the batch would exceed ``tps``; 503 in an outage; 413 when a
batch exceeds ``max_batch``. Receipts (POSTed to the callback)::

    {"receipts": [{"id": …, "to": …, "ref": …, "status": "DELIVRD" | "UNDELIV",
                   "error": "", "done_at": "2024-07-25T06:30:01.2+00:00"}]}

Throughput is counted per number (one message may be several segments; the simulator
does not bill segments).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from schemas.common import utc_now
from services.dispatch.gateways.common import GatewayBehaviour, GatewaySim, gateway_app, provider_id


class SmsGatewayConfig(GatewayBehaviour):
    max_batch: int = Field(default=1000, ge=1)


def create_sms_gateway(config: SmsGatewayConfig | None = None) -> FastAPI:
    config = config or SmsGatewayConfig()
    app, sim = gateway_app("sms", config)

    @app.post("/sms/batch")
    async def batch(request: Request) -> JSONResponse:
        body: dict[str, Any] = await request.json()
        messages: list[dict[str, Any]] = list(body.get("messages", []))
        stop = sim.gate(request, len(messages), config.max_batch)
        if stop is not None:
            return stop
        await sim.latency()
        return JSONResponse(_accept(sim, messages, body.get("callback_url")))

    return app


def _accept(sim: GatewaySim, messages: list[dict[str, Any]], callback_url: str | None) -> dict[str, Any]:
    seed = sim.behaviour.seed
    results: list[dict[str, Any]] = []
    receipts: list[dict[str, Any]] = []
    duplicates: list[dict[str, Any]] = []
    for item in messages:
        to, ref = str(item.get("to", "")), str(item.get("ref", ""))
        if not to or sim.rejected(ref, to):
            sim.stats.rejected += 1
            results.append({"to": to, "ref": ref, "status": "rejected", "reason": "invalid destination"})
            continue
        pid = provider_id(seed, "sms", ref, to)
        results.append({"to": to, "ref": ref, "status": "accepted", "id": pid})
        failed = sim.delivery_fails(ref, to)
        receipt = {
            "id": pid,
            "to": to,
            "ref": ref,
            "status": "UNDELIV" if failed else "DELIVRD",
            "error": "handset unreachable" if failed else "",
            "done_at": utc_now().isoformat(),
        }
        receipts.append(receipt)
        if sim.duplicated(ref, to):
            duplicates.append(receipt)
    sim.record_accepted(len(receipts))
    sim.schedule_receipts(callback_url, receipts, duplicates)
    return {"results": results}
