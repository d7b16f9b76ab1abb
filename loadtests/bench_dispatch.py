"""Dispatch benchmark: the fan-outs of STANDARDS-sized warnings through the gateway simulators.

Run: ``python -m loadtests.bench_dispatch [--scenarios a,b,c,d] [--subscribers N] [--sms-tps N]``

Each scenario runs in two fresh processes — the gateway simulators, and one dispatch
worker on the memory runtime (``DispatchService`` on a ``MemoryBus``: intake, ledger,
channels, callback endpoint) — so the worker's RSS is its own. This process samples the
worker's RSS (``/proc/<pid>/status``) every 100 ms and prints the results.

(a) a red warning for all 186 townships to ``--subscribers`` (1,000,000) app subscribers via
    the push simulator: time to 99 % / 100 % of delivery receipts (target ≤ 60 s to 99 %);
(b) ``officials_count`` (~43,000) officials by SMS against a gateway limited to ``--sms-tps``
    (1,000/s): achieved rate (target within 5 % of the limit) and the largest count the
    gateway accepted in any 1-s window (never above the limit);
(c) the broadcast terminals of every township (~10,000): time to all hand-offs and all
    play-out receipts (target ≤ 10 s);
(d) p50/p99 from a warning's publication on ``warnings`` to its first channel hand-off,
    over 300 warnings published 20 ms apart (target p99 ≤ 200 ms);
(e) from (a): the worker's RSS idle, at peak during the fan-out (target ≤ 1.5 GB), after
    the message's account was sealed and compacted, and once more after the memory
    runtime's log (the in-process "broker", not the worker's state) was emptied — what is
    left then is what dispatch itself still holds. ``--diagnose`` adds the object
    allocator's arenas (``sys._debugmallocstats``) and glibc's heap (``mallinfo2``) at
    each of those points.

Options that isolate effects outside dispatch (each is printed with the results):

- ``--bus-retention N``: records the memory runtime keeps per partition (its "broker";
  default 200,000 as in ``earlywarn run``). The log is not the worker's ledger, but on
  ``memory://`` it lives in the same process.
- ``--malloc``: run the worker with ``PYTHONMALLOC=malloc`` so freed memory can go back
  to the OS (pymalloc keeps an arena while any object in it lives).
- ``--retire-after S`` / ``--no-retire``: the dispatcher's ``retire_after_s`` (finished
  entries leave the live ledger S seconds after they finished; off: only at the seal).
- ``--cached-partitioner``: memoise ``partition_for`` in the worker — the change proposed
  for ``services/common/bus/base.py`` (aiokafka's murmur2 is pure Python, ~5 µs a record,
  and a 1 M fan-out publishes ~2.7 M records keyed by one warning id).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from typing import Any

import httpx

from loadtests.machine import banner
from schemas import topics
from schemas.common import Level
from schemas.warning import WarningMessage
from services.common.bus.memory import MemoryBus
from services.common.logging import configure_logging
from services.dispatch.gateways import (
    BroadcastGatewayConfig,
    PushGatewayConfig,
    SmsGatewayConfig,
    create_broadcast_gateway,
    create_push_gateway,
    create_sms_gateway,
    run_gateway,
)
from services.dispatch.orchestrator import ChannelPlan, DispatchSettings, release_memory
from services.dispatch.service import DispatchService, synthetic_towns
from services.dispatch.targeting import AudienceData, TownshipInfo

# --------------------------------------------------------------------------- shared


def warning(codes: tuple[str, ...], level: Level, wid: str) -> WarningMessage:
    now = datetime.now(UTC)
    return WarningMessage(
        message_id=f"{wid}.v1",
        warning_id=wid,
        version=1,
        msg_type="Alert",
        hazard="rainstorm",
        level=level,
        township_codes=codes,
        sent_at=now,
        onset_at=now,
        expires_at=now + timedelta(hours=6),
        headline=f"benchmark {level} rainstorm",
    )


def app_subscribers(towns: dict[str, TownshipInfo], total: int) -> dict[str, int]:
    """``total`` subscribers spread over the townships in proportion to population."""
    population = sum(t.population for t in towns.values())
    counts = {code: total * t.population // population for code, t in towns.items()}
    short = total - sum(counts.values())
    for code in sorted(towns)[:short]:
        counts[code] += 1
    return counts


def _gateways_main(queue: Queue[Any], stop: Event, sms_tps: float) -> None:
    """Child process: the three simulators on loopback until ``stop``."""
    servers = {
        "push": run_gateway(create_push_gateway(PushGatewayConfig(latency_ms=5, receipt_delay_ms=200, seed=1))),
        "sms": run_gateway(create_sms_gateway(SmsGatewayConfig(tps=sms_tps, burst=int(sms_tps), seed=2))),
        "broadcast": run_gateway(create_broadcast_gateway(BroadcastGatewayConfig(latency_ms=20, seed=3))),
    }
    queue.put({name: url for name, (url, _) in servers.items()})
    stop.wait()
    for _, halt in servers.values():
        halt()


async def _gateway_stats(url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=10) as client:
        body: dict[str, Any] = (await client.get(f"{url}/stats")).json()
        return body


@dataclass
class Report:
    queue: Queue[Any]
    diagnose: bool = False

    def phase(self, name: str, **data: Any) -> None:
        if self.diagnose:
            data["memory"] = memory_diagnosis()
        self.queue.put({"phase": name, "t": time.time(), **data})


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def memory_diagnosis() -> dict[str, float]:
    """MB held by the object allocator (arenas, and bytes in live blocks) and by glibc's
    heap (in use, free, mmapped), in this process."""
    out: dict[str, float] = {}
    with tempfile.TemporaryFile(mode="w+") as tmp:  # _debugmallocstats writes to C stderr
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        for line in tmp:
            if line.startswith("# arenas allocated current"):
                out["pymalloc_arenas_mb"] = int(line.rsplit("=", 1)[1].replace(",", "")) * 1.048576
            elif line.startswith("# bytes in allocated blocks"):
                out["pymalloc_live_mb"] = int(line.rsplit("=", 1)[1].replace(",", "")) / 1e6
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
        info = libc.mallinfo2()
        out |= {
            "glibc_in_use_mb": info.uordblks / 1e6,
            "glibc_free_mb": info.fordblks / 1e6,
            "glibc_mmapped_mb": info.hblkhd / 1e6,
        }
    return out


# --------------------------------------------------------------------------- worker side

SMS_BURST = 20
SMS_REQUEST = 5


def _settings(
    name: str, urls: dict[str, str], args: dict[str, Any], towns: dict[str, TownshipInfo]
) -> DispatchSettings:
    channels = {
        "app": ChannelPlan(
            providers=({"provider": "push", "base_url": urls["push"], "tokens_per_request": 500, "concurrency": 8},),
            batch_size=4000,
            max_inflight=3,
        ),
        "sms": ChannelPlan(
            providers=(
                {
                    "provider": "sms",
                    "base_url": urls["sms"],
                    "tps": args["sms_tps"] * args["sms_headroom"],
                    # rate + burst ≤ the limit, so no 1-s window can exceed it; a burst above
                    # the request size absorbs timer lateness (tokens are not lost)
                    "burst": SMS_BURST,
                    "batch_size": SMS_REQUEST,
                    "concurrency": 4,
                },
            ),
            batch_size=1000,
            max_inflight=2,
        ),
        "broadcast": ChannelPlan(
            providers=({"provider": "ebm", "base_url": urls["broadcast"], "terminals_per_request": 2000},),
            batch_size=20_000,
            max_inflight=2,
        ),
    }
    per_township = 50 if name == "d" else 0
    subscribers = dict.fromkeys(towns, per_township) if per_township else app_subscribers(towns, args["subscribers"])
    return DispatchSettings(
        channels=channels,
        level_channels={"red": ("app",), "orange": ("sms",), "yellow": ("broadcast",), "blue": ("app",)},
        audience=AudienceData(app_subscribers=subscribers),
        audience_routes={"sms": ("officials_sms",), "app": ("app",), "broadcast": ("broadcast",)},
        coverage_interval_s=1.0,
        retire_after_s=args["retire_after_s"],
    )


def _worker_main(name: str, urls: dict[str, str], args: dict[str, Any], queue: Queue[Any]) -> None:
    configure_logging("warning", "console")
    if args["cached_partitioner"]:
        _cache_partitioner()
    profile = os.environ.get("BENCH_DISPATCH_PROFILE")
    if profile:  # a cProfile of the worker, for finding hot spots
        import cProfile

        cProfile.runctx("asyncio.run(_worker(name, urls, args, Report(queue)))", globals(), locals(), profile)
        return
    asyncio.run(_worker(name, urls, args, Report(queue, args["diagnose"])))


async def _worker(name: str, urls: dict[str, str], args: dict[str, Any], report: Report) -> None:
    towns = synthetic_towns()
    codes = tuple(sorted(towns))
    bus = MemoryBus(retention_records=args["bus_retention"])
    svc = DispatchService(bus, _settings(name, urls, args, towns), towns)
    await svc.start()
    gc.collect()
    await asyncio.sleep(0.5)
    report.phase("idle")
    if args["tracemalloc"]:
        import tracemalloc

        tracemalloc.start(args["tracemalloc"])
    try:
        result = await SCENARIOS[name](svc, bus, codes, urls, args, report)
    finally:
        await svc.close()
    report.phase("done", result=result)


async def _until(predicate: Any, timeout_s: float, poll_s: float = 0.02) -> float:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return time.time()
        await asyncio.sleep(poll_s)
    raise TimeoutError


def _done(svc: DispatchService, message_id: str, channel: str) -> tuple[int, int, int]:
    """(handed over, final, delivered) for one message on one channel."""
    states = svc.dispatcher.ledger.counts.get(message_id, {}).get(channel, {})
    final = states.get("delivered", 0) + states.get("failed", 0) + states.get("acknowledged", 0)
    return final + states.get("submitted", 0), final, states.get("delivered", 0)


def _sealed(svc: DispatchService, message_id: str) -> bool:
    meta = svc.dispatcher.ledger.messages.get(message_id)
    return meta is not None and meta.sealed


async def scenario_a(
    svc: DispatchService,
    bus: MemoryBus,
    codes: tuple[str, ...],
    urls: dict[str, str],
    args: dict[str, Any],
    report: Report,
) -> dict[str, Any]:
    msg = warning(codes, "red", "rainstorm-all-red")
    n = svc.dispatcher.targeting.audience_size(msg, "app")
    await bus.publish(topics.WARNINGS, msg.key, msg.model_dump_json().encode())
    t0 = time.time()
    report.phase("fan-out")
    marks: dict[str, float] = {}
    while time.time() - t0 < 300:
        handed, final, _ = _done(svc, msg.message_id, "app")
        now = time.time()
        if "all_handed" not in marks and handed >= n:
            marks["all_handed"] = now - t0
        if "p99" not in marks and final >= 0.99 * n:
            marks["p99"] = now - t0
        if final >= n:
            marks["p100"] = now - t0
            break
        await asyncio.sleep(0.05)
    await _until(lambda: _sealed(svc, msg.message_id), 600 if args["tracemalloc"] else 120)
    marks["sealed"] = time.time() - t0
    report.phase("sealed", live_entries=svc.dispatcher.ledger.live_entries())
    gc.collect()
    await asyncio.sleep(2.0)
    report.phase("after")
    retained_mb = _retained_bytes(bus) / 1e6
    _empty_log(bus)
    release_memory()
    await asyncio.sleep(1.0)
    report.phase("log emptied")
    if args["tracemalloc"]:
        _print_survivors()
    _, final, delivered = _done(svc, msg.message_id, "app")
    gateway = await _gateway_stats(urls["push"])
    return {
        "targets": n,
        "final": final,
        "delivered": delivered,
        "handoff_latency_s": svc.stats.handoff_latencies_s[0] if svc.stats.handoff_latencies_s else None,
        "retained_log_mb": retained_mb,
        "live_entries_max": svc.stats.live_entries_max,
        "retired_entries": svc.stats.retired_entries,
        "compacted_entries": svc.stats.compacted_entries,
        "memory_releases": svc.stats.memory_releases,
        "gateway": {k: gateway[k] for k in ("accepted", "rejected", "max_batch_seen", "receipts_sent")},
        "callbacks_applied": svc.stats.callbacks_applied,
        "receipts_published": svc.stats.receipts_published,
        **marks,
    }


async def scenario_b(
    svc: DispatchService,
    bus: MemoryBus,
    codes: tuple[str, ...],
    urls: dict[str, str],
    args: dict[str, Any],
    report: Report,
) -> dict[str, Any]:
    msg = warning(codes, "orange", "rainstorm-all-orange")
    n = svc.dispatcher.targeting.audience_size(msg, "sms")
    await bus.publish(topics.WARNINGS, msg.key, msg.model_dump_json().encode())
    t0 = time.time()
    report.phase("fan-out")
    t_final = await _until(lambda: _done(svc, msg.message_id, "sms")[1] >= n, 300, 0.05)
    stats = await _gateway_stats(urls["sms"])
    span = stats["last_accept_s"] - stats["first_accept_s"]
    return {
        "targets": n,
        "delivered": _done(svc, msg.message_id, "sms")[2],
        "seconds": t_final - t0,
        "accepted": stats["accepted"],
        "throttled_requests": stats["throttled_requests"],
        "max_accepted_1s": stats["max_accepted_1s"],
        "span_s": span,
        "rate_per_s": (stats["accepted"] - SMS_BURST) / span if span > 0 else 0.0,
    }


async def scenario_c(
    svc: DispatchService,
    bus: MemoryBus,
    codes: tuple[str, ...],
    urls: dict[str, str],
    args: dict[str, Any],
    report: Report,
) -> dict[str, Any]:
    msg = warning(codes, "yellow", "rainstorm-all-yellow")
    n = svc.dispatcher.targeting.audience_size(msg, "broadcast")
    await bus.publish(topics.WARNINGS, msg.key, msg.model_dump_json().encode())
    t0 = time.time()
    report.phase("fan-out")
    t_handed = await _until(lambda: _done(svc, msg.message_id, "broadcast")[0] >= n, 60)
    t_final = await _until(lambda: _done(svc, msg.message_id, "broadcast")[1] >= n, 60)
    return {
        "terminals": n,
        "counties": len({c[:6] for c in codes}),
        "all_handed_s": t_handed - t0,
        "all_receipts_s": t_final - t0,
        "delivered": _done(svc, msg.message_id, "broadcast")[2],
    }


async def scenario_d(
    svc: DispatchService,
    bus: MemoryBus,
    codes: tuple[str, ...],
    urls: dict[str, str],
    args: dict[str, Any],
    report: Report,
) -> dict[str, Any]:
    count = args["latency_warnings"]
    report.phase("warnings")
    for i in range(count):
        msg = warning((codes[i % len(codes)],), "blue", f"rainstorm-latency-{i:04d}")
        await bus.publish(topics.WARNINGS, msg.key, msg.model_dump_json().encode())
        await asyncio.sleep(0.02)
    await _until(lambda: len(svc.stats.handoff_latencies_s) >= count, 60)
    latencies = sorted(svc.stats.handoff_latencies_s)
    await svc.wait_idle(60)
    return {
        "warnings": count,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000,
        "max_ms": latencies[-1] * 1000,
    }


SCENARIOS = {"a": scenario_a, "b": scenario_b, "c": scenario_c, "d": scenario_d}


def _cache_partitioner() -> None:
    """The proposed one-line change to ``services.common.bus.base.partition_for``:
    ``functools.lru_cache`` on the murmur2 of a key (same partitions, computed once)."""
    import functools

    from services.common.bus import base, memory

    cached = functools.lru_cache(maxsize=65_536)(base.partition_for)
    setattr(memory, "partition_for", cached)  # noqa: B010  (benchmark-only, opt-in)


def _retained_bytes(bus: MemoryBus) -> int:
    """Bytes of record values the memory runtime's log still holds (its "broker")."""
    return sum(len(r.value) for t in bus._topics.values() for p in t.partitions for r in p.log)


def _print_survivors(top: int = 12) -> None:
    """Where the objects allocated since idle that are still alive were allocated (each of
    them can keep a whole allocator arena from going back to the OS)."""
    import tracemalloc

    stats = tracemalloc.take_snapshot().statistics("traceback")
    total = sum(s.count for s in stats)
    print(f"    survivors since idle: {total:,} blocks, {sum(s.size for s in stats) / 1e6:.1f} MB", file=sys.stderr)
    for stat in stats[:top]:
        frames = " <- ".join(f"{f.filename.rsplit('/', 2)[-1]}:{f.lineno}" for f in reversed(stat.traceback))
        print(f"    {stat.count:>7,} blocks {stat.size / 1e3:>8.0f} kB  {frames}", file=sys.stderr)


def _empty_log(bus: MemoryBus) -> None:
    """Trim every partition of the memory runtime's log to nothing, as retention would
    (the log start offset moves up; consumers are unaffected)."""
    for topic in bus._topics.values():
        for part in topic.partitions:
            part.start_offset += len(part.log)
            part.log.clear()
            part.value_bytes = 0


# --------------------------------------------------------------------------- parent side


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in kB."""
    values = {"VmRSS": 0, "VmHWM": 0}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            for line in handle:
                key = line.split(":", 1)[0]
                if key in values:
                    values[key] = int(line.split()[1])
    except OSError:
        pass
    return values["VmRSS"], values["VmHWM"]


@dataclass
class Run:
    phases: dict[str, float] = field(default_factory=dict)
    rss_by_phase: dict[str, int] = field(default_factory=dict)
    peak_kb: int = 0
    cpu_s: dict[str, float] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)
    memory: dict[str, dict[str, float]] = field(default_factory=dict)


def run_scenario(name: str, args: dict[str, Any]) -> Run:
    ctx = mp.get_context("spawn")
    gw_queue: Queue[Any] = ctx.Queue()
    gw_stop = ctx.Event()
    gateways = ctx.Process(target=_gateways_main, args=(gw_queue, gw_stop, args["sms_tps"]), daemon=True)
    gateways.start()
    urls = gw_queue.get(timeout=60)
    queue: Queue[Any] = ctx.Queue()
    worker = ctx.Process(target=_worker_main, args=(name, urls, args, queue), daemon=True)
    saved = os.environ.get("PYTHONMALLOC")
    if args["malloc"]:
        os.environ["PYTHONMALLOC"] = "malloc"  # read by the spawned interpreter at start-up
    try:
        worker.start()
    finally:
        if saved is None:
            os.environ.pop("PYTHONMALLOC", None)
        else:
            os.environ["PYTHONMALLOC"] = saved
    run = Run()
    current = ["start"]
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.is_set():
            rss, hwm = _rss_kb(worker.pid or 0)
            run.peak_kb = max(run.peak_kb, hwm, rss)
            run.rss_by_phase[current[0]] = max(run.rss_by_phase.get(current[0], 0), rss)
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        while True:
            event = queue.get(timeout=600)
            rss, _ = _rss_kb(worker.pid or 0)
            run.phases[event["phase"]] = event["t"]
            run.rss_by_phase[f"at {event['phase']}"] = rss
            if "memory" in event:
                run.memory[event["phase"]] = event["memory"]
            current[0] = event["phase"]
            if event["phase"] == "done":
                run.result = event["result"]
                run.cpu_s = {"worker": _cpu_s(worker.pid or 0), "gateways": _cpu_s(gateways.pid or 0)}
                break
    finally:
        sampling.set()
        worker.join(timeout=60)
        gw_stop.set()
        gateways.join(timeout=30)
        for proc in (worker, gateways):
            if proc.is_alive():
                proc.kill()
    return run


def _print(name: str, run: Run, args: dict[str, Any]) -> None:
    r = run.result
    mb = 1024.0
    if name == "a":
        print(
            f"(a) 1 red warning, 186 townships → {r['targets']:,} app subscribers (push simulator):\n"
            f"    99 % of receipts {r['p99']:.1f} s (target ≤ 60 s), 100 % {r['p100']:.1f} s, "
            f"all handed over {r['all_handed']:.1f} s, sealed+compacted {r['sealed']:.1f} s; "
            f"delivered {r['delivered']:,} / final {r['final']:,}; "
            f"first hand-off {r['handoff_latency_s'] * 1000:.0f} ms\n"
            f"    gateway accepted {r['gateway']['accepted']:,} in requests of ≤ {r['gateway']['max_batch_seen']}, "
            f"receipts posted {r['gateway']['receipts_sent']:,}; receipts published {r['receipts_published']:,}"
        )
        print(
            f"(e) worker RSS: idle {run.rss_by_phase.get('at idle', 0) / mb:.0f} MB, peak {run.peak_kb / mb:.0f} MB "
            f"(target ≤ 1536 MB), at seal {run.rss_by_phase.get('at sealed', 0) / mb:.0f} MB, "
            f"2 s after compaction {run.rss_by_phase.get('at after', 0) / mb:.0f} MB "
            f"(the memory runtime's log retains {r['retained_log_mb']:.0f} MB of record values), "
            f"with that log emptied {run.rss_by_phase.get('at log emptied', 0) / mb:.0f} MB\n"
            f"    ledger: at most {r['live_entries_max']:,} live entries; {r['retired_entries']:,} retired during "
            f"the fan-out, {r['compacted_entries']:,} compacted at the seal; memory released "
            f"{r['memory_releases']}× (gc + malloc_trim)"
        )
        for phase, numbers in run.memory.items():
            print(f"    [{phase}] " + ", ".join(f"{k} {v:.0f}" for k, v in numbers.items()))
    elif name == "b":
        limit = args["sms_tps"]
        print(
            f"(b) {r['targets']:,} officials by SMS, gateway limit {limit:.0f}/s (client bucket "
            f"{limit * args['sms_headroom']:.0f}/s + burst {SMS_BURST}, {SMS_REQUEST} numbers a request): "
            f"all receipts in {r['seconds']:.1f} s; "
            f"sustained {r['rate_per_s']:.0f}/s = {r['rate_per_s'] / limit:.1%} of the limit over {r['span_s']:.1f} s; "
            f"max in any 1 s window {r['max_accepted_1s']} (limit {limit:.0f}); 429s {r['throttled_requests']}; "
            f"delivered {r['delivered']:,}"
        )
    elif name == "c":
        print(
            f"(c) {r['terminals']:,} broadcast terminals in {r['counties']} counties: all handed over "
            f"{r['all_handed_s']:.2f} s, all play-out receipts {r['all_receipts_s']:.2f} s (target ≤ 10 s), "
            f"delivered {r['delivered']:,}"
        )
    elif name == "d":
        print(
            f"(d) warning published → first channel hand-off over {r['warnings']} warnings: "
            f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms (target ≤ 200 ms), max {r['max_ms']:.1f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default="a,b,c,d")
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--sms-tps", type=float, default=1000.0)
    parser.add_argument("--sms-headroom", type=float, default=0.965, help="client rate as a share of the limit")
    parser.add_argument("--latency-warnings", type=int, default=300)
    parser.add_argument("--bus-retention", type=int, default=200_000, help="memory runtime records per partition")
    parser.add_argument("--malloc", action="store_true", help="worker with PYTHONMALLOC=malloc")
    parser.add_argument("--cached-partitioner", action="store_true", help="memoise partition_for (proposed)")
    parser.add_argument(
        "--retire-after",
        type=float,
        default=DispatchSettings.model_fields["retire_after_s"].default,
        help="retire_after_s: finished entries leave the live ledger this long after they finished",
    )
    parser.add_argument("--no-retire", action="store_true", help="retire_after_s=None: drop entries only at the seal")
    parser.add_argument("--diagnose", action="store_true", help="allocator and heap numbers at each phase")
    parser.add_argument(
        "--tracemalloc",
        type=int,
        default=0,
        metavar="FRAMES",
        help="(a) trace allocations from idle on and print the surviving ones at the end (slow)",
    )
    parser.add_argument("--json", action="store_true", help="also print the raw results as JSON")
    ns = parser.parse_args()
    args = {
        "subscribers": ns.subscribers,
        "sms_tps": ns.sms_tps,
        "sms_headroom": ns.sms_headroom,
        "latency_warnings": ns.latency_warnings,
        "bus_retention": ns.bus_retention,
        "malloc": ns.malloc,
        "cached_partitioner": ns.cached_partitioner,
        "retire_after_s": None if ns.no_retire else ns.retire_after,
        "diagnose": ns.diagnose,
        "tracemalloc": ns.tracemalloc,
    }
    print(banner("dispatch benchmark"))
    print(
        f"each scenario: a gateway process + a dispatch worker process (memory runtime); "
        f"bus retention {ns.bus_retention:,}/partition; allocator {'malloc' if ns.malloc else 'pymalloc'}; "
        f"partitioner {'memoised (proposed change)' if ns.cached_partitioner else 'as in the repository'}; "
        f"retire_after_s {args['retire_after_s']}\n"
    )
    raw = {}
    for name in ns.scenarios.split(","):
        started = time.time()
        run = run_scenario(name.strip(), args)
        _print(name.strip(), run, args)
        cpu = ", ".join(f"{k} {v:.0f} s" for k, v in run.cpu_s.items())
        print(f"    [{time.time() - started:.0f} s wall; CPU: {cpu}]")
        raw[name] = {"result": run.result, "rss_kb": run.rss_by_phase, "peak_kb": run.peak_kb}
    if ns.json:
        print(json.dumps(raw, indent=2, default=str))


if __name__ == "__main__":
    main()
