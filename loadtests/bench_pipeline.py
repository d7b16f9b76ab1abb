"""The whole embedded pipeline on a scenario: latency, throughput, and whether memory stays flat.

Run: ``python -m loadtests.bench_pipeline [--scenario lekima-2019] [--hours H] [--speed N]
[--sample-fraction F] [--baseline-speed M]``

Replays the scenario through ingest and every rules processor on the memory runtime
(``services.scenario_run.ScenarioRun``; no dispatch, no console) and prints, with the
machine banner:

- wall time, × real time and observations admitted per second (the simulator included);
- observation → warning latency (p50/p95/p99): wall time from the publication of the tick
  holding a warning's event time to the warning reaching the ``warnings`` collector;
- memory over the run: RSS at every 10 % of the ticks, and the rules state (keys and JSON
  bytes per processor) at the same points — flat means bounded by window length, not by
  how long the service has run;
- with ``--baseline-speed M`` the same replay first at speed M, and the ratios side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
from dataclasses import dataclass, field

from loadtests.machine import banner
from services.common.geo.registry import default_registry
from services.common.metrics import Metrics
from services.ingest.simulate.scenario import find_scenario, load_scenario
from services.scenario_run import RunResult, ScenarioRun, TickProgress, scenario_processors, ticks_in, trim


def rss_mb() -> float:
    with open("/proc/self/statm", encoding="ascii") as handle:
        pages = int(handle.read().split()[1])
    return pages * resource.getpagesize() / 1e6


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


@dataclass
class Sample:
    at_tick: int
    rss_mb: float
    state_keys: dict[str, int]
    state_kb: dict[str, float]


@dataclass
class Outcome:
    result: RunResult
    samples: list[Sample] = field(default_factory=list)


async def replay(name: str, hours: float | None, speed: float | None, sample_fraction: float) -> Outcome:
    registry = default_registry()
    sc = trim(load_scenario(find_scenario(name, None)), hours)
    if sample_fraction < 1.0:
        sc = sc.model_copy(update={"stations": sc.stations.model_copy(update={"sample_fraction": sample_fraction})})
    run = ScenarioRun(sc, registry, scenario_processors(registry, Metrics()), speed=speed)
    total = ticks_in(sc)
    marks = {max(1, round(total * k / 10)) for k in range(1, 11)}
    samples: list[Sample] = []

    def on_tick(p: TickProgress) -> None:
        if p.index not in marks:
            return
        states = run.active.states
        samples.append(
            Sample(
                p.index,
                rss_mb(),
                {n: len(st) for n, st in states.items()},
                {n: len(json.dumps(dict(st), separators=(",", ":"), default=str)) / 1024 for n, st in states.items()},
            )
        )

    result = await run.run(on_tick)
    return Outcome(result, samples)


def describe(label: str, out: Outcome) -> dict[str, float]:
    r = out.result
    speedup = r.simulated_s / r.wall_s
    obs_s = r.counts.accepted / r.wall_s
    p50, p95, p99 = (r.latency_percentile(q) for q in (0.5, 0.95, 0.99))
    print(f"\n-- {label}: {r.scenario.name}, {r.simulated_s / 3600:g} h simulated, {r.ticks} ticks --")
    print(f"wall {r.wall_s:.1f} s = {speedup:,.0f}x real time; {obs_s:,.0f} observations admitted/s")
    print(f"received {r.counts.received:,} = accepted {r.counts.accepted:,} + rejected {r.counts.rejected:,}")
    print(f"warning messages {len(r.messages):,}; behind schedule at most {r.max_lag_s:.1f} s")
    if p50 is not None and p95 is not None and p99 is not None:
        print(
            f"observation -> warning latency over {len(r.latencies_s):,} warnings: "
            f"p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms"
        )
    print("memory over the run (tick: RSS MB | rules state keys / KB per processor):")
    for s in out.samples:
        states = ", ".join(f"{n} {s.state_keys[n]:,}/{s.state_kb[n]:,.0f}" for n in sorted(s.state_keys))
        print(f"  {s.at_tick:5d}: {s.rss_mb:7.0f} | {states}")
    print(f"peak RSS {peak_rss_mb():.0f} MB")
    return {"speedup": speedup, "obs_s": obs_s, "p99_ms": (p99 or 0.0) * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="lekima-2019")
    parser.add_argument("--hours", type=float, default=None)
    parser.add_argument("--speed", type=float, default=0.0, help="x real time; 0 = lockstep, as fast as possible")
    parser.add_argument("--sample-fraction", type=float, default=1.0)
    parser.add_argument("--baseline-speed", type=float, default=None, help="also run at this speed first, compare")
    args = parser.parse_args()
    print(banner("embedded pipeline: ingest + all rules on memory://"))
    started = time.perf_counter()
    base = None
    if args.baseline_speed is not None:
        base = describe(
            f"baseline speed {args.baseline_speed or 'lockstep'}",
            asyncio.run(replay(args.scenario, args.hours, args.baseline_speed or None, args.sample_fraction)),
        )
    cur = describe(
        f"speed {args.speed or 'lockstep'}",
        asyncio.run(replay(args.scenario, args.hours, args.speed or None, args.sample_fraction)),
    )
    if base is not None:
        print("\nratios (run / baseline): " + ", ".join(f"{k} {cur[k] / base[k]:.2f}" for k in cur if base[k]))
    print(f"total wall {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
