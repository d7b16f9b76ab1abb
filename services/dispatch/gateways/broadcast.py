"""Emergency-broadcast platform simulator: ``POST /ebm`` per county → play-out receipts.

Request::

    {"county_code": "330304", "ebd": {…EBD dict…}, "ref": "<message_id>",
     "terminals": ["ebt:EBT3303041080000", …], "callback_url": "…"}

Response 200::

    {"ebm_id": "<EBMID>", "results": [{"terminal": …, "status": "accepted" | "rejected", "reason": …}]}

Receipts, one per terminal once it has played (or failed to)::

    {"receipts": [{"ebm_id": …, "ref": …, "terminal": …, "status": "played" | "failed",
                   "reason": "", "at": "…"}]}

A platform serves one county: a request whose ``county_code`` is not in
``counties`` (when configured) gets 404, as a misrouted EBM would.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from schemas.common import utc_now
from services.dispatch.gateways.common import GatewayBehaviour, gateway_app


class BroadcastGatewayConfig(GatewayBehaviour):
    counties: tuple[str, ...] = Field(default=(), description="counties served; empty = any")
    max_terminals: int = Field(default=5000, ge=1)


def create_broadcast_gateway(config: BroadcastGatewayConfig | None = None) -> FastAPI:
    config = config or BroadcastGatewayConfig()
    app, sim = gateway_app("broadcast", config)

    @app.post("/ebm")
    async def ebm(request: Request) -> JSONResponse:
        body: dict[str, Any] = await request.json()
        terminals = [str(t) for t in body.get("terminals", [])]
        stop = sim.gate(request, len(terminals), config.max_terminals)
        if stop is not None:
            return stop
        county = str(body.get("county_code", ""))
        if config.counties and county not in config.counties:
            return JSONResponse({"error": f"county {county} is not served here"}, status_code=404)
        ebd = body.get("ebd") or {}
        ebm_id = str((ebd.get("EBM") or {}).get("EBMID", ""))
        if not ebm_id:
            return JSONResponse({"error": "EBD without EBM/EBMID"}, status_code=400)
        ref = str(body.get("ref", ""))
        await sim.latency()
        results: list[dict[str, Any]] = []
        receipts: list[dict[str, Any]] = []
        duplicates: list[dict[str, Any]] = []
        for terminal in terminals:
            if sim.rejected(ref, terminal):
                sim.stats.rejected += 1
                results.append({"terminal": terminal, "status": "rejected", "reason": "terminal offline"})
                continue
            results.append({"terminal": terminal, "status": "accepted"})
            failed = sim.delivery_fails(ref, terminal)
            receipt = {
                "ebm_id": ebm_id,
                "ref": ref,
                "terminal": terminal,
                "status": "failed" if failed else "played",
                "reason": "amplifier fault" if failed else "",
                "at": utc_now().isoformat(),
            }
            receipts.append(receipt)
            if sim.duplicated(ref, terminal):
                duplicates.append(receipt)
        sim.record_accepted(len(receipts))
        sim.schedule_receipts(body.get("callback_url"), receipts, duplicates)
        return JSONResponse({"ebm_id": ebm_id, "results": results})

    return app
