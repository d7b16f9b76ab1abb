"""Prometheus metrics with an injected registry (never the global default one).

One ``Metrics`` object per service instance, so tests and the one-process runtime can
hold several side by side. Labels are bounded sets (topic, reason, hazard, level, channel).
"""

from __future__ import annotations

import sys

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS_S = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.observations_received = Counter(
            "earlywarn_observations_received_total", "Payloads offered to ingest", ["feed"], registry=r
        )
        self.observations_accepted = Counter(
            "earlywarn_observations_accepted_total", "Observations published", ["kind"], registry=r
        )
        self.observations_rejected = Counter(
            "earlywarn_observations_rejected_total", "Payloads rejected", ["reason"], registry=r
        )
        self.records_processed = Counter(
            "earlywarn_records_processed_total", "Records handled by a processor", ["processor"], registry=r
        )
        self.assessments = Counter(
            "earlywarn_assessments_total", "Assessments published", ["hazard", "level"], registry=r
        )
        self.warnings_emitted = Counter(
            "earlywarn_warnings_total", "Warning messages emitted", ["hazard", "level", "msg_type"], registry=r
        )
        self.duplicates_ignored = Counter(
            "earlywarn_duplicates_ignored_total", "Redelivered records ignored", ["consumer"], registry=r
        )
        self.late_records = Counter(
            "earlywarn_late_records_total", "Records older than allowed lateness", ["processor"], registry=r
        )
        self.quiet_records = Counter(
            "earlywarn_quiet_records_total",
            "Records whose every assessment repeated an unchanged 'none' (held back until the heartbeat)",
            ["processor"],
            registry=r,
        )
        self.deliveries = Counter(
            "earlywarn_deliveries_total", "Delivery receipts by state", ["channel", "state"], registry=r
        )
        self.stage_latency = Histogram(
            "earlywarn_stage_latency_seconds",
            "Wall time from a record's publication to the end of a stage",
            ["stage"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )

        self.heap_blocks = Gauge(
            "earlywarn_python_heap_blocks",
            "Memory blocks the interpreter has allocated now (sys.getallocatedblocks): the live heap, "
            "which falls when objects are freed; RSS keeps the allocator's high-water mark",
            registry=r,
        )
        self.heap_blocks.set_function(sys.getallocatedblocks)

    def render(self) -> bytes:
        return generate_latest(self.registry)
