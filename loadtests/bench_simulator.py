"""World-simulator throughput: a 24-h Lekima replay of the full network, as fast as possible.

Run: ``python -m loadtests.bench_simulator [--scenario lekima-2019] [--hours H]``

Generates every tick of the scenario with the full registry (753 rain gauges, 8 radars,
482 geo-hazard points, 18 water gauges, 186 townships) and consumes it without a bus, so
the figure is the simulator alone. Prints, with the machine banner:

- simulated hours per wall second, as a ×-real-time factor (target ≥ 100×);
- observations per second (valid observations; raw payloads — malformed, or outside the
  observation contract — counted apart);
- peak RSS from ``resource.getrusage`` (target ≤ 1 GB);
- the calibration table: per county, the mean and the highest township rain total of the
  truth (the true field at each township, no sensor noise).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from collections import Counter, defaultdict
from datetime import timedelta

from loadtests.machine import banner
from services.common.geo.registry import default_registry
from services.ingest.simulate.scenario import find_scenario, load_scenario
from services.ingest.simulate.truth import GroundTruth
from services.ingest.simulate.world import iter_world

TARGET_SPEEDUP = 100.0
TARGET_RSS_MB = 1024.0


def peak_rss_mb() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return usage / (1024.0 * 1024.0) if sys.platform == "darwin" else usage / 1024.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--scenario", default="lekima-2019", help="shipped scenario name or a .toml path")
    parser.add_argument("--hours", type=float, default=None, help="simulate only the first H hours")
    args = parser.parse_args(argv)

    print(banner("world simulator: full network, as fast as possible"))
    scenario = load_scenario(find_scenario(args.scenario))
    if args.hours is not None:
        scenario = scenario.model_copy(update={"end": scenario.start + timedelta(minutes=round(args.hours * 60))})
    registry = default_registry()
    truth = GroundTruth()
    observations = raw = ticks = 0
    kinds: Counter[str] = Counter()
    started = time.perf_counter()
    for tick in iter_world(scenario, registry, truth):
        ticks += 1
        observations += len(tick.observations)
        raw += len(tick.raw)
        for obs in tick.observations:
            kinds[obs.kind] += 1
    wall_s = time.perf_counter() - started
    simulated_h = scenario.span_hours
    speedup = simulated_h * 3600.0 / wall_s
    rss = peak_rss_mb()

    print(f"scenario: {scenario.name}, {simulated_h:g} h simulated, {ticks} ticks, seed {scenario.seed}")
    print(f"stations: {len(registry.stations)}, townships: {len(registry.townships)}")
    print(f"wall time:        {wall_s:8.1f} s")
    print(
        f"simulated h / s:  {simulated_h / wall_s:8.2f}   = {speedup:,.0f}x real time "
        f"(target >= {TARGET_SPEEDUP:.0f}x: {'ok' if speedup >= TARGET_SPEEDUP else 'MISSED'})"
    )
    counts = truth.fault_counts
    print(
        f"observations:     {observations:,} ({observations / wall_s:,.0f}/s); raw payloads {raw:,} "
        f"(malformed {counts.get('malformed', 0):,}, outside the contract {counts.get('invalid', 0):,}, "
        "and duplicates of both)"
    )
    print("  by kind:        " + ", ".join(f"{k} {n:,}" for k, n in sorted(kinds.items())))
    verdict = "ok" if rss <= TARGET_RSS_MB else "MISSED"
    print(f"peak RSS:         {rss:8.0f} MB (target <= {TARGET_RSS_MB:.0f} MB: {verdict})")

    county_of = {t.code: t.county_code for t in registry.townships}
    names = {c.code: f"{c.name_zh} {c.name_en}" for c in registry.counties}
    totals: dict[str, list[float]] = defaultdict(list)
    for code, summary in truth.townships.items():
        totals[county_of[code]].append(summary.rain_total_mm)
    everything = [v for values in totals.values() for v in values]
    print("\ntrue rain over the span per county (township mean / highest township), mm:")
    for code in sorted(totals):
        values = totals[code]
        print(f"  {code} {names.get(code, code):24s} {sum(values) / len(values):6.0f} / {max(values):6.0f}")
    if everything:
        print(f"  {'all townships':31s} {sum(everything) / len(everything):6.0f} / {max(everything):6.0f}")
    events = Counter((e.hazard, e.level) for e in truth.events)
    print("truth events: " + ", ".join(f"{h}/{lv} {n}" for (h, lv), n in sorted(events.items())))
    print("faults: " + ", ".join(f"{k} {v:,}" for k, v in sorted(truth.fault_counts.items())))
    return 0 if speedup >= TARGET_SPEEDUP and rss <= TARGET_RSS_MB else 1


if __name__ == "__main__":
    raise SystemExit(main())
