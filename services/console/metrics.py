"""The console's Prometheus metrics, on an injected registry (never the global one)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest


class ConsoleMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.sse_clients = Gauge("earlywarn_console_sse_clients", "Live-stream clients connected", registry=r)
        self.sse_events_sent = Counter(
            "earlywarn_console_sse_events_sent_total", "Events written to live-stream clients", registry=r
        )
        self.stream_events = Counter(
            "earlywarn_console_stream_events_total", "Events published to the live stream", ["type"], registry=r
        )
        self.actions = Counter(
            "earlywarn_console_actions_total", "Operator actions by type and outcome", ["action", "outcome"], registry=r
        )
        self.records = Counter(
            "earlywarn_console_records_consumed_total", "Records folded into the read model", ["topic"], registry=r
        )
        self.bad_records = Counter(
            "earlywarn_console_bad_records_total", "Records the console could not read", ["topic"], registry=r
        )
        self.logins = Counter("earlywarn_console_logins_total", "Sign-in attempts", ["outcome"], registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
