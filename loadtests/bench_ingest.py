"""Ingest throughput: the gate on one core, and HTTP batch ingest on loopback.

Run: ``python -m loadtests.bench_ingest`` (``--help`` for sizes). Two measurements:

(a) **Gate, memory runtime, one core.** Distinct canonical rain observations as raw JSON
    bytes (1000 stations x N minutes, so none is a duplicate):

    1. ``gate.admit`` alone: parse, validate, registry and scope checks, event-time checks,
       duplicate memory, enrichment — observations validated + enriched per second.
    2. ``publish_observations`` in batches to a ``MemoryBus``: the above plus serialising
       and appending to the partitioned log — what ingest sustains per core.

    Target: >= 50,000 observations/s.

(b) **HTTP batch ingest.** ``create_app`` served by uvicorn on 127.0.0.1 (one process, one
    event loop) over a ``MemoryBus``; client processes, each with several concurrent
    ``httpx.AsyncClient`` connections, post pre-encoded batches to
    ``POST /v1/observations:batch``. The payloads are built before the clock starts; the
    time is from the first request sent to the last response read. Every observation must
    come back accepted (checked), so the figure is accepted observations per second
    end to end. Target: >= 20,000 observations/s.

Numbers on a shared 2-core machine are noisy: each figure is the best of ``--repeat`` runs,
with the median printed beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from statistics import median

import httpx

from loadtests.machine import banner
from services.common.bus.memory import MemoryBus
from services.common.metrics import Metrics
from services.ingest.api import create_app, serve_in_background
from services.ingest.gate import IngestGate, StationLookup, static_lookup
from services.ingest.keys import IntegratorKey, KeyStore, hash_secret
from services.pipeline import IngestCounts, publish_observations

NOW = datetime(2019, 8, 9, 12, 0, tzinfo=UTC)
STATIONS = 1000
SECRET = "bench-secret"
API_KEY = f"bench.{SECRET}"


def lookup() -> StationLookup:
    return static_lookup({f"RAIN-B{i:04d}": (("rain",), f"3303{i % 100:05d}") for i in range(STATIONS)})


def observation(index: int) -> bytes:
    """The ``index``-th distinct observation: station ``index % 1000``, ``index // 1000`` minutes back."""
    at = NOW - timedelta(minutes=1 + index // STATIONS)
    return json.dumps(
        {
            "kind": "rain",
            "station_id": f"RAIN-B{index % STATIONS:04d}",
            "observed_at": at.isoformat().replace("+00:00", "Z"),
            "rain_mm": round((index % 97) * 0.1, 1),
            "interval_s": 300,
            "wind_mean_ms": 3.5,
            "wind_gust_ms": 7.0,
        },
        separators=(",", ":"),
    ).encode()


def fresh_gate() -> IngestGate:
    return IngestGate(lookup(), lambda: NOW, max_age_s=30 * 86400, dedup_capacity=2_000_000)


# ------------------------------------------------------------------------------ (a)


def bench_gate_admit(raws: list[bytes]) -> float:
    gate = fresh_gate()
    start = time.perf_counter()
    for raw in raws:
        gate.admit(raw, "bench")
    return len(raws) / (time.perf_counter() - start)


async def bench_publish(raws: list[bytes], batch: int) -> float:
    gate = fresh_gate()
    bus = MemoryBus(retention_records=len(raws) + 1)
    counts = IngestCounts()
    metrics = Metrics()
    start = time.perf_counter()
    for offset in range(0, len(raws), batch):
        await publish_observations(bus, gate, raws[offset : offset + batch], "bench", counts, metrics)
    elapsed = time.perf_counter() - start
    if counts.accepted != len(raws):
        msg = f"expected every observation accepted, got {counts}"
        raise AssertionError(msg)
    return len(raws) / elapsed


# ------------------------------------------------------------------------------ (b)


def client_process(url: str, first: int, records: int, batch: int, connections: int, out: Connection) -> None:
    """Post ``records`` observations starting at ``first`` in batches over ``connections``."""
    bodies = [
        b"[" + b",".join(observation(i) for i in range(start, min(start + batch, first + records))) + b"]"
        for start in range(first, first + records, batch)
    ]
    out.send("ready")
    out.recv()  # go

    async def run() -> tuple[int, int, float]:
        queue = list(reversed(bodies))
        accepted = rejected = 0
        headers = {"X-API-Key": API_KEY, "Content-Type": "application/json"}

        async def worker(client: httpx.AsyncClient) -> None:
            nonlocal accepted, rejected
            while queue:
                body = queue.pop()
                response = await client.post("/v1/observations:batch", content=body, headers=headers)
                response.raise_for_status()
                result = response.json()
                accepted += result["accepted"]
                rejected += result["rejected"]

        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        async with httpx.AsyncClient(base_url=url, timeout=60.0, limits=limits) as client:
            start = time.perf_counter()
            await asyncio.gather(*(worker(client) for _ in range(connections)))
            return accepted, rejected, time.perf_counter() - start

    out.send(asyncio.run(run()))


async def bench_http(records: int, batch: int, processes: int, connections: int) -> tuple[float, float]:
    """(accepted observations per second end to end, seconds) for one run."""
    bus = MemoryBus(retention_records=records + 1)
    keys = KeyStore(
        [
            IntegratorKey(
                id="bench", integrator="bench", secret_sha256=hash_secret(SECRET), rate_per_s=1e5, burst=100_000
            )
        ]
    )
    app = create_app(bus, fresh_gate(), keys, Metrics(), max_batch=batch)
    share = records // processes
    context = mp.get_context("spawn")
    async with serve_in_background(app) as url:
        pipes: list[Connection] = []
        workers = []
        for index in range(processes):
            parent, child = context.Pipe()
            proc = context.Process(
                target=client_process, args=(url, index * share, share, batch, connections, child), daemon=True
            )
            proc.start()
            pipes.append(parent)
            workers.append(proc)
        for pipe in pipes:
            await asyncio.to_thread(pipe.recv)  # payloads built
        start = time.perf_counter()
        for pipe in pipes:
            pipe.send("go")
        results = [await asyncio.to_thread(pipe.recv) for pipe in pipes]
        wall = time.perf_counter() - start
        for proc in workers:
            await asyncio.to_thread(proc.join)
    accepted = sum(r[0] for r in results)
    rejected = sum(r[1] for r in results)
    if accepted != share * processes or rejected:
        msg = f"expected {share * processes} accepted, got {accepted} accepted and {rejected} rejected"
        raise AssertionError(msg)
    if app.state.counts.accepted != accepted:
        msg = f"server counted {app.state.counts.accepted}, clients saw {accepted}"
        raise AssertionError(msg)
    client_wall = max(r[2] for r in results)
    return accepted / client_wall, wall


def best_and_median(runs: list[float]) -> str:
    return f"{max(runs):>10,.0f} /s  (median {median(runs):,.0f} over {len(runs)} runs)"


def repeat(times: int, run: Callable[[], float]) -> list[float]:
    return [run() for _ in range(times)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=200_000, help="(a) observations per run")
    parser.add_argument("--batch", type=int, default=1000, help="observations per publish / HTTP batch")
    parser.add_argument("--http-records", type=int, default=200_000, help="(b) observations per run")
    parser.add_argument("--client-processes", type=int, default=1)
    parser.add_argument("--connections", type=int, default=4, help="concurrent connections per client process")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-http", action="store_true")
    args = parser.parse_args()

    print(banner("ingest throughput"))
    raws = [observation(i) for i in range(args.records)]
    print(
        f"\n(a) gate on one core, {args.records:,} distinct rain observations as raw JSON ({len(raws[0])} bytes each)"
    )
    admit = repeat(args.repeat, lambda: bench_gate_admit(raws))
    print(f"  gate.admit (validate + enrich)           {best_and_median(admit)}")
    publish = repeat(args.repeat, lambda: asyncio.run(bench_publish(raws, args.batch)))
    print(f"  publish_observations -> MemoryBus        {best_and_median(publish)}   target >= 50,000 /s")

    if args.skip_http:
        return
    print(
        f"\n(b) HTTP POST /v1/observations:batch on loopback: {args.http_records:,} observations, "
        f"batches of {args.batch}, {args.client_processes} client process(es) x {args.connections} connections"
    )
    http_runs: list[float] = []
    for _ in range(args.repeat):
        rate, wall = asyncio.run(bench_http(args.http_records, args.batch, args.client_processes, args.connections))
        http_runs.append(rate)
        print(f"  run: {rate:>10,.0f} /s  ({wall:.2f} s wall incl. process hand-off)")
    print(f"  accepted end to end                      {best_and_median(http_runs)}   target >= 20,000 /s")


if __name__ == "__main__":
    main()
