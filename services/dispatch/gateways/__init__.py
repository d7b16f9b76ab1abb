"""Local provider simulators (real HTTP servers on loopback) for tests, demos and load runs.

=============  ==================  =============================================
simulator      endpoint            receipts (POSTed to the callback URL)
=============  ==================  =============================================
SMS            ``POST /sms/batch`` DELIVRD / UNDELIV per number
broadcast      ``POST /ebm``       played / failed per terminal
push           ``POST /push``      delivered / failed per token (≤ 500 tokens)
=============  ==================  =============================================

Serve any of them with ``run_gateway(app)`` → ``(url, stop)``; behaviour knobs are in
``GatewayBehaviour`` (latency, error rate, TPS throttling, outages, duplicate receipts, seed).
"""

from services.dispatch.gateways.broadcast import BroadcastGatewayConfig, create_broadcast_gateway
from services.dispatch.gateways.callback import ReceiptSink, create_receipt_sink
from services.dispatch.gateways.common import GatewayBehaviour, GatewaySim, OutageWindow, run_gateway
from services.dispatch.gateways.push import PushGatewayConfig, create_push_gateway
from services.dispatch.gateways.sms import SmsGatewayConfig, create_sms_gateway

__all__ = [
    "BroadcastGatewayConfig",
    "GatewayBehaviour",
    "GatewaySim",
    "OutageWindow",
    "PushGatewayConfig",
    "ReceiptSink",
    "SmsGatewayConfig",
    "create_broadcast_gateway",
    "create_push_gateway",
    "create_receipt_sink",
    "create_sms_gateway",
    "run_gateway",
]
