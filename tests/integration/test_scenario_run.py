"""A shipped scenario through the whole embedded pipeline: accounting, determinism, CLI."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.cli import app
from services.common.geo.registry import GeoRegistry, default_registry
from services.common.metrics import Metrics
from services.common.settings import RulesSettings
from services.ingest.simulate.scenario import Scenario, find_scenario, load_scenario
from services.rules.hazard_processors import RadarProcessor
from services.scenario_run import RuleSet, RunResult, ScenarioRun, load_rule_set, scenario_processors, trim
from services.skill import check_targets, scorecard_for


@pytest.fixture(scope="module")
def registry() -> GeoRegistry:
    return default_registry()


def scenario(name: str, hours: float, sample_fraction: float = 1.0) -> Scenario:
    sc = trim(load_scenario(find_scenario(name, None)), hours)
    if sample_fraction < 1.0:
        sc = sc.model_copy(update={"stations": sc.stations.model_copy(update={"sample_fraction": sample_fraction})})
    return sc


async def replay(sc: Scenario, registry: GeoRegistry, **kw: object) -> RunResult:
    run = ScenarioRun(sc, registry, scenario_processors(registry, Metrics()), **kw)  # type: ignore[arg-type]
    return await run.run()


async def test_every_observation_is_accounted_for_and_a_quiet_day_warns_nobody(registry: GeoRegistry) -> None:
    result = await replay(scenario("quiet-day", 2), registry)
    counts = result.counts
    assert counts.received > 50_000
    assert counts.accepted + counts.rejected == counts.received
    assert sum(counts.accepted_by_kind.values()) == counts.accepted
    assert sum(counts.by_reason.values()) == counts.rejected
    # the simulator's faults reach the gate and are named
    assert counts.by_reason.get("duplicate", 0) > 0
    assert counts.by_reason.get("malformed_json", 0) > 0
    assert set(counts.accepted_by_kind) == {"rain", "radar", "geohazard", "water_level"}
    assert result.messages == []
    assert result.truth.scoring_episodes() == []
    checks = check_targets(scorecard_for(result), result.messages, 0)
    assert [(c.metric, c.ok) for c in checks] == [("warnings issued", True)]


async def test_lockstep_replay_is_deterministic_and_shadow_lanes_see_the_same_stream(registry: GeoRegistry) -> None:
    sc = scenario("convective-afternoon", 3.5, sample_fraction=0.3)
    held = RuleSet(name="held", lifecycle={"holds": [{"level": "yellow", "origin": "rules", "deadline_s": 600}]})
    shadow = {
        "twin": scenario_processors(registry, Metrics(), RuleSet(name="twin")),
        "held": scenario_processors(registry, Metrics(), held),
    }
    first = await replay(sc, registry, shadow=shadow)
    second = await replay(sc, registry)
    ids = [m.message_id for m in first.messages]
    assert ids, "the convective afternoon raises warnings"
    assert ids == [m.message_id for m in second.messages]
    assert [m.model_dump() for m in first.messages] == [m.model_dump() for m in second.messages]
    # an identical rule set in shadow produces exactly the active lane's warnings
    assert [m.message_id for m in first.shadow_messages["twin"]] == ids
    assert first.truth.to_json_text() == second.truth.to_json_text()
    # a held message is scored as it was finally sent: released at its deadline, not dropped
    held_lane = first.shadow_messages["held"]
    released = [m for m in held_lane if m.approval == "released"]
    assert released, "yellow rules warnings were held, then released when nobody approved them"
    assert all(m.hold_deadline_at is not None for m in released)
    still_held = [m for m in held_lane if m.approval == "held"]
    assert all(m.hold_deadline_at is not None and m.hold_deadline_at > sc.end - timedelta(hours=1) for m in still_held)


async def test_paced_replay_keeps_to_its_speed(registry: GeoRegistry) -> None:
    sc = scenario("quiet-day", 0.5)  # 30 simulated minutes at 3600x: at least 0.5 s of wall time
    result = await replay(sc, registry, speed=3600.0)
    assert result.wall_s >= 0.45
    assert result.counts.accepted + result.counts.rejected == result.counts.received


def test_rule_set_file_errors_name_the_key(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text('name = "slow"\n[lifecycle]\ndeescalate_dwell_s = 5400\n')
    assert load_rule_set(good).policy().deescalate_dwell_s == 5400
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "slow"\n[lifecycle]\ndeescalate_dwell_s = -1\n')
    with pytest.raises(ValueError, match="deescalate_dwell_s"):
        load_rule_set(bad)
    radar = tmp_path / "radar.toml"
    radar.write_text('name = "no-rainstorm-nowcast"\n[radar.rainstorm]\nenabled = false\n')
    assert load_rule_set(radar).radar.rainstorm.enabled is False
    (radar_processor,) = [
        p for p in scenario_processors(default_registry(), Metrics(), load_rule_set(radar)) if p.name == "rules-radar"
    ]
    assert isinstance(radar_processor, RadarProcessor)
    assert radar_processor.config.rainstorm.enabled is False
    typo = tmp_path / "typo.toml"
    typo.write_text('name = "x"\n[radar.rainstorm]\nmin_forcast_mm = 2\n')
    with pytest.raises(ValueError, match=r"radar\.rainstorm\.min_forcast_mm"):
        load_rule_set(typo)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('name = "x"\nthreshold = 3\n')
    with pytest.raises(ValueError, match="threshold"):
        load_rule_set(unknown)


def test_the_deployment_rule_set_comes_from_the_settings_and_a_bad_file_stops_the_worker(tmp_path: Path) -> None:
    rules = RulesSettings(
        allowed_lateness_s=300, warning_validity_s=7200, all_clear_quiet_s=5400, deescalate_dwell_s=900
    )
    policy = RuleSet.from_settings(rules).policy()
    assert (policy.allowed_lateness_s, policy.validity_s) == (300, 7200)
    assert (policy.all_clear_quiet_s, policy.deescalate_dwell_s) == (5400, 900)
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[lifecycle]\nvalidity_s = 10\n')
    # refused before any broker is contacted: the option and the key are named
    result = CliRunner().invoke(app, ["rules", "--broker", "kafka://127.0.0.1:1", "--rule-set", str(bad)])
    assert result.exit_code == 2
    assert "--rule-set" in result.output
    assert "validity_s" in result.output


def test_cli_registry_scenarios_and_verify(tmp_path: Path) -> None:
    runner = CliRunner(env={"COLUMNS": "200"})
    summary = runner.invoke(app, ["registry", "summary"])
    assert summary.exit_code == 0, summary.output
    assert "186" in summary.output
    assert "482" in summary.output
    listing = runner.invoke(app, ["scenario", "list"])
    assert listing.exit_code == 0, listing.output
    for name in ("saomai-2006", "lekima-2019", "hagupit-2020", "convective-afternoon", "quiet-day"):
        assert name in listing.output
    out_json, out_md = tmp_path / "card.json", tmp_path / "card.md"
    verified = runner.invoke(
        app, ["verify", "quiet-day", "--hours", "1", "--json", str(out_json), "--markdown", str(out_md), "--strict"]
    )
    assert verified.exit_code == 0, verified.output
    report = json.loads(out_json.read_text())
    assert report["scenario"] == "quiet-day"
    observations = report["observations"]
    assert observations["accepted"] + observations["rejected"] == observations["received"]
    assert report["targets"] == [
        {"hazard": "all", "metric": "warnings issued", "value": 0.0, "target": "= 0 (quiet scenario)", "ok": True}
    ]
    assert "Warning skill" in out_md.read_text() or "Targets" in out_md.read_text()
    missing = runner.invoke(app, ["verify", "no-such-scenario"])
    assert missing.exit_code == 2
    assert "no-such-scenario" in missing.output
