"""A rules worker on Kafka over a long replay: its memory, and whether it stays flat.

Run (a broker must be up, e.g. ``bash deploy/kafka/kafka.sh start``)::

    python -m loadtests.bench_rules_worker [--scenario lekima-2019] [--hours 24]
        [--bootstrap 127.0.0.1:19092] [--partitions 4] [--sample-s 2]

Starts ``earlywarn rules --network registry`` as its own process (the worker measured),
then ``earlywarn ingest --scenario`` (the simulated sensor network through the ingest gate,
as fast as it can) in another, in a fresh topic namespace. While the worker consumes, the
benchmark samples the worker's RSS from ``/proc`` and its progress from the brokers'
committed offsets of every rules consumer group against the input topics' end offsets.

Prints, with the machine banner: the worker's peak RSS (VmHWM), its RSS and its live heap
(``earlywarn_python_heap_blocks`` from the worker's /metrics: the interpreter's allocated
blocks) at every 10 % of the input consumed, the change of both over the second half of the
replay (flat means state is bounded by window length, not by how long the worker has run;
RSS also keeps the allocator's high-water mark, the live heap does not), wall time and
throughput.
Issue #4's target: peak ≤ 512 MB and flat over a 24-hour full-network replay.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

import httpx
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.consumer import AIOKafkaConsumer

from loadtests.machine import banner
from services.common.geo.registry import default_registry
from services.common.metrics import Metrics
from services.scenario_run import RuleSet, scenario_processors


@dataclass(frozen=True)
class Sample:
    wall_s: float
    rss_mb: float
    consumed: int
    total: int
    heap_blocks: float | None = None
    """the worker's ``earlywarn_python_heap_blocks`` (live heap), when its /metrics answered"""


HEAP_GAUGE = re.compile(rb"^earlywarn_python_heap_blocks ([0-9.e+]+)$", re.MULTILINE)


async def heap_blocks(client: httpx.AsyncClient, url: str) -> float | None:
    """The worker's live heap in allocated blocks, from its /metrics (None if it did not answer)."""
    try:
        response = await client.get(url, timeout=5.0)
    except httpx.HTTPError:
        return None
    found = HEAP_GAUGE.search(response.content)
    return float(found.group(1)) if found else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def proc_status_mb(pid: int, field: str) -> float:
    """``VmRSS`` / ``VmHWM`` of a process, in MB (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return 0.0
    return 0.0


class Progress:
    """Records committed by every rules group against the end offsets of their input topics."""

    def __init__(self, bootstrap: str, groups: dict[str, tuple[str, ...]]) -> None:
        self.groups = groups
        self.admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, metadata_max_age_ms=1000)

    async def __aenter__(self) -> Progress:
        await self.admin.start()
        await self.consumer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.consumer.stop()
        await self.admin.close()

    async def read(self) -> tuple[int, int]:
        await self.consumer.topics()  # metadata at most 1 s old: topics appear as the worker creates them
        consumed = total = 0
        for group, topics in self.groups.items():
            parts = [
                TopicPartition(t, p) for t in topics for p in sorted(self.consumer.partitions_for_topic(t) or set())
            ]
            if not parts:
                continue
            ends = await self.consumer.end_offsets(parts)
            committed = await self.admin.list_consumer_group_offsets(group)
            for tp in parts:
                total += ends[tp]
                meta = committed.get(tp)
                consumed += max(0, meta.offset) if meta is not None else 0
        return consumed, total


def start(args: list[str], log: str) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "services.cli", *args], stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


async def bench(opts: argparse.Namespace) -> list[Sample]:
    ns = f"benchw{int(time.time())}-"
    broker = f"kafka://{opts.bootstrap}"
    procs = scenario_processors(default_registry(), Metrics(), RuleSet())
    groups = {f"{ns}earlywarn-{p.name}": tuple(f"{ns}{t}" for t in p.topics) for p in procs}
    common = ["--broker", broker, "--namespace", ns, "--partitions", str(opts.partitions)]
    env_log = os.environ.get("EARLYWARN_BENCH_LOG_DIR", "/tmp")
    metrics_port = free_port()
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    worker = start(
        ["rules", *common, "--network", "registry", "--metrics-port", str(metrics_port)],
        f"{env_log}/bench-rules-worker.log",
    )
    samples: list[Sample] = []
    t0 = time.perf_counter()
    ingest: subprocess.Popen[bytes] | None = None
    try:
        await asyncio.sleep(opts.warmup_s)  # the worker creates its topics and joins its groups
        idle_mb = proc_status_mb(worker.pid, "VmRSS")
        print(f"worker pid {worker.pid}: idle RSS {idle_mb:.0f} MB (namespace {ns})", flush=True)
        ingest_args = ["ingest", *common, "--scenario", opts.scenario, "--speed", "0"]
        if opts.hours:
            ingest_args += ["--hours", str(opts.hours)]
        ingest = start(ingest_args, f"{env_log}/bench-rules-ingest.log")
        t0 = time.perf_counter()
        caught_up = 0
        async with Progress(opts.bootstrap, groups) as tracker, httpx.AsyncClient() as client:
            while time.perf_counter() - t0 < opts.timeout_s:
                await asyncio.sleep(opts.sample_s)
                if worker.poll() is not None:
                    raise SystemExit(
                        f"the rules worker exited with {worker.returncode}; see {env_log}/bench-rules-worker.log"
                    )
                try:  # a broker answer that never comes must not stall the sampling
                    consumed, total = await asyncio.wait_for(tracker.read(), timeout=max(10.0, 4 * opts.sample_s))
                except TimeoutError:
                    print("  (offsets not read in time: sample skipped)", flush=True)
                    continue
                blocks = await heap_blocks(client, metrics_url)
                rss = proc_status_mb(worker.pid, "VmRSS")
                samples.append(Sample(time.perf_counter() - t0, rss, consumed, total, blocks))
                if opts.verbose:
                    last = samples[-1]
                    print(f"  t={last.wall_s:6.0f} s  {consumed:,}/{total:,}  {last.rss_mb:.0f} MB", flush=True)
                done = ingest.poll() is not None and total > 0 and consumed >= total
                caught_up = caught_up + 1 if done else 0
                if caught_up >= 2:
                    break
        if ingest.poll() not in (0, None):
            raise SystemExit(f"ingest exited with {ingest.returncode}; see {env_log}/bench-rules-ingest.log")
        peak = proc_status_mb(worker.pid, "VmHWM")
        report(opts, samples, idle_mb, peak)
        return samples
    finally:
        for proc in (ingest, worker):
            if proc is not None and proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)


def at_fraction(samples: list[Sample], fraction: float) -> Sample:
    final = samples[-1].total or 1
    return next((s for s in samples if s.consumed >= fraction * final), samples[-1])


def report(opts: argparse.Namespace, samples: list[Sample], idle_mb: float, peak_mb: float) -> None:
    if not samples:
        print("no samples")
        return
    last = samples[-1]
    wall = last.wall_s
    print(banner("rules worker on Kafka: memory over a replay"))
    print(f"scenario: {opts.scenario}, {opts.hours or 'all'} h, {opts.partitions} partitions, one worker process")
    print(
        f"input consumed: {last.consumed:,} of {last.total:,} records in {wall:.0f} s ({last.consumed / wall:,.0f}/s)"
    )
    print(f"worker RSS: idle {idle_mb:.0f} MB, peak (VmHWM) {peak_mb:.0f} MB, final {last.rss_mb:.0f} MB")
    print("RSS and live heap (interpreter's allocated blocks) at each 10 % of the input consumed:")
    rows = [at_fraction(samples, k / 10) for k in range(1, 11)]
    for k, s in enumerate(rows, start=1):
        blocks = f"{s.heap_blocks / 1e6:6.2f} M blocks" if s.heap_blocks is not None else "   (no /metrics)"
        print(f"  {k * 10:3d} %  {s.rss_mb:7.0f} MB  {blocks}   (t={s.wall_s:6.0f} s)")
    half, full = rows[4].rss_mb, rows[9].rss_mb
    rise = 100 * (full - half) / max(half, 1)
    print(f"second half, RSS: {half:.0f} → {full:.0f} MB ({full - half:+.0f} MB, {rise:+.1f} %)")
    b_half, b_full = rows[4].heap_blocks, rows[9].heap_blocks
    if b_half and b_full:
        change = 100 * (b_full - b_half) / b_half
        print(f"second half, live heap: {b_half / 1e6:.2f} → {b_full / 1e6:.2f} M blocks ({change:+.1f} %)")
    verdict = "met" if peak_mb <= 512 else "MISSED"
    print(f"target peak ≤ 512 MB: {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--scenario", default="lekima-2019")
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092"))
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--sample-s", type=float, default=2.0)
    parser.add_argument("--warmup-s", type=float, default=8.0)
    parser.add_argument("--verbose", action="store_true", help="print every sample")
    parser.add_argument("--timeout-s", type=float, default=3600.0)
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
