"""A rain gauge reporting heavy rain the radars never saw (memory runtime, whole registry).

The quiet day (no rain before 04:00), rain gauges and radars only, with the scenario's own
random faults plus one scripted ``phantom_rain`` spell: gauge G reports 40 mm/h from 01:10 to
02:20 while the world around it is dry. G's processor finds short-duration heavy rain (it
cannot know better); the radars covering G's township have seen no echo near its gauges for
an hour and say so; the township's lifecycle leaves G's claim out, issues nothing and writes
the claim, with its reason, to ``obs.rejected``.

    time     00:00 ── 01:00 ── 01:10 ────── 01:40 ── 01:55 ── 02:20 ── 02:30
    radars   scanning ─▶ dry vote (1 h) ──────────────────────────────────▶
    G        0 mm/h      40 mm/h ─▶ 1-h sum ≥ 20 (blue) ─▶ ≥ 30 (yellow) ─▶ 0
    outcome  no warning; one implausible_value record naming G
"""

from __future__ import annotations

import json
from datetime import timedelta

from schemas.rejected import RejectedRecord
from services.common.geo.registry import GeoRegistry
from services.ingest.simulate.scenario import PhantomRain, find_scenario, load_scenario
from services.rules.registry_config import radars_covering
from tests.integration.test_rules_registry import assert_every_observation_accounted_for, registry, run_scenario

__all__ = ["registry"]  # the module-scoped fixture


def phantom_gauge(registry: GeoRegistry) -> str:
    """The first rain gauge (by id) of a township two or more radars cover."""
    covered = radars_covering(registry)
    return next(
        s.station_id
        for s in sorted(registry.stations_of("rain"), key=lambda s: s.station_id)
        if len(covered.get(s.township_code, ())) >= 2
    )


async def test_heavy_rain_no_radar_saw_is_left_out_and_reported(registry: GeoRegistry) -> None:
    scenario = load_scenario(find_scenario("quiet-day"))
    gauge = phantom_gauge(registry)
    spell = PhantomRain(
        station_id=gauge,
        start=scenario.start + timedelta(minutes=70),
        end=scenario.start + timedelta(minutes=140),
        rate_mm_h=40.0,
    )
    faults = scenario.faults.model_copy(update={"phantom_rain": (spell,)})
    run = await run_scenario(registry, "quiet-day", 2.5, ("rain", "radar"), lockstep=True, faults=faults)

    assert_every_observation_accounted_for(run)
    assert run.truth.fault_counts["phantom_rain"] == 70
    # G's processor did claim heavy rain (the check is not that nothing was claimed) …
    claimed = run.metric("earlywarn_assessments_total", hazard="short_heavy_rain", level="yellow")
    assert claimed > 0
    # … and no warning of any kind came of it
    assert [(m.hazard, m.township_codes, m.msg_type) for m in run.messages] == []
    flags = [RejectedRecord.model_validate_json(v) for v in run.rejected]
    flags = [f for f in flags if f.reason == "implausible_value" and f.source.startswith("rules-lifecycle")]
    assert [json.loads(f.raw)["source_id"] for f in flags] == [gauge]
    claim = json.loads(flags[0].raw)
    assert (claim["hazard"], claim["level"]) == ("short_heavy_rain", "blue")
    assert spell.start < flags[0].received_at < spell.end
    town = next(s.township_code for s in registry.stations_of("rain") if s.station_id == gauge)
    assert flags[0].source == f"rules-lifecycle:short_heavy_rain:{town}"
