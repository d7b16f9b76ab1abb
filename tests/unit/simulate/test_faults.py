"""Deliberate faults: rates as configured, counted in the truth, and shaped as documented."""

from __future__ import annotations

import json
import math
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np
import pytest
from annotated_types import Le

from schemas.observations import ObservationBase, RainObservation, WaterLevelObservation
from schemas.rejected import RejectedRecord
from services.common.geo.registry import GeoRegistry
from services.ingest.feeds.registry_lookup import OBSERVATION_KINDS_BY_STATION_KIND
from services.ingest.gate import IngestGate, static_lookup
from services.ingest.simulate.scenario import TICK_S, FaultConfig, LateDelay, PhantomRain
from services.ingest.simulate.truth import GroundTruth
from services.ingest.simulate.world import faults
from services.ingest.simulate.world.testing import MiniRegistry
from tests.unit.simulate.support import NO_FAULTS, START, Run, run, world

N_STATIONS = 400
ROUNDS = 50  # 20,000 reports
AT = datetime(2023, 7, 20, 6, 0, tzinfo=UTC)


def _within(count: int, n: int, p: float, sigmas: float = 5.0) -> bool:
    """``count`` successes out of ``n`` is plausible for probability ``p`` (binomial, ± sigmas)."""
    sd = math.sqrt(n * p * (1.0 - p))
    return abs(count - n * p) <= sigmas * sd + 1.0


def _apply(config: FaultConfig, rounds: int = ROUNDS) -> tuple[GroundTruth, list[list[tuple[int, faults.Delivery]]]]:
    truth = GroundTruth()
    ids = [f"RAIN-T{i:04d}" for i in range(N_STATIONS)]
    group = faults.FaultGroup(
        station_ids=ids,
        model=RainObservation,
        value_fields=("rain_mm",),
        primary_field="rain_mm",
        spike=faults.rain_spike,
        config=config,
        seed=5,
        truth=truth,
    )
    idx = np.arange(N_STATIONS, dtype=np.intp)
    out = []
    for r in range(rounds):
        at = AT + timedelta(minutes=5 * r)
        reports = [
            {"station_id": sid, "observed_at": at, "rain_mm": round(0.1 * (r % 7) + 0.01 * i, 2), "interval_s": 300}
            for i, sid in enumerate(ids)
        ]
        out.append(group.apply(at, idx, reports))
    return truth, out


@pytest.mark.parametrize(
    ("key", "rate", "kind", "seen"),
    [
        ("dropout_rate", 0.03, "dropout", lambda rounds: N_STATIONS * ROUNDS - sum(len(r) for r in rounds)),
        (
            "malformed_rate",
            0.02,
            "malformed",
            lambda rounds: sum(isinstance(d.payload, bytes) for r in rounds for _, d in r),
        ),
        ("late_rate", 0.05, "late", lambda rounds: sum(d.delay_s > 0 for r in rounds for _, d in r)),
        ("out_of_order_rate", 0.02, "out_of_order", lambda rounds: sum(d.hold_for_next for r in rounds for _, d in r)),
        ("duplicate_rate", 0.04, "duplicate", lambda rounds: sum(d.duplicate for r in rounds for _, d in r)),
    ],
)
def test_each_fault_appears_at_its_rate_and_is_counted(key: str, rate: float, kind: str, seen: Any) -> None:
    truth, rounds = _apply(FaultConfig(**{key: rate}))
    count = seen(rounds)
    assert truth.fault_counts[kind] == count
    assert truth.fault_counts["reports"] == N_STATIONS * ROUNDS
    assert _within(count, N_STATIONS * ROUNDS, rate), (count, rate)
    others = set(truth.fault_counts) - {kind, "reports"}
    assert not others, f"only {kind} is on, yet {others} were counted"


def test_spikes_jump_the_value_and_are_counted() -> None:
    truth, rounds = _apply(FaultConfig(spike_rate=0.02))
    clean_truth, clean = _apply(FaultConfig(dropout_rate=1e-12))  # faults "on", none firing: same draws
    assert not set(clean_truth.fault_counts) - {"reports"}
    jumped = 0
    for spiked_round, clean_round in zip(rounds, clean, strict=True):
        for (_, spiked), (_, plain) in zip(spiked_round, clean_round, strict=True):
            if isinstance(spiked.payload, bytes):  # a spike beyond 400 mm/h: an invalid payload
                value = float(json.loads(spiked.payload)["rain_mm"])
            else:
                assert isinstance(spiked.payload, RainObservation)
                value = spiked.payload.rain_mm
            assert isinstance(plain.payload, RainObservation)
            if value != plain.payload.rain_mm:
                jumped += 1
                # documented +2 … 20 mm, then rounded to 0.1 mm
                assert 2.0 - 0.05 - 1e-9 <= value - plain.payload.rain_mm <= 20.0 + 0.05 + 1e-9
    assert jumped == truth.fault_counts["spike"]
    assert _within(jumped, N_STATIONS * ROUNDS, 0.02)


def test_phantom_rain_replaces_the_reading_in_its_spell_only_and_draws_nothing() -> None:
    """T0007 reports ≈ 40 mm/h (± 25 %, 5-min reports: 2.5 … 4.2 mm) from round 10 to 19;
    every other report, and every random fault, is what the run without the spell gives."""
    spell = PhantomRain(
        station_id="RAIN-T0007", start=AT + timedelta(minutes=50), end=AT + timedelta(minutes=100), rate_mm_h=40.0
    )
    base = FaultConfig(dropout_rate=0.02, late_rate=0.05)  # faults that leave values alone
    truth, rounds = _apply(base.model_copy(update={"phantom_rain": (spell,)}))
    clean_truth, clean = _apply(base)
    phantom_rounds = set(range(10, 20))
    assert truth.fault_counts["phantom_rain"] == len(phantom_rounds)
    assert {k: v for k, v in truth.fault_counts.items() if k != "phantom_rain"} == clean_truth.fault_counts
    assert [(f.kind, f.station_id, f.start, f.end, f.detail) for f in truth.station_faults] == [
        ("phantom_rain", "RAIN-T0007", spell.start, spell.end, 40.0)
    ]
    seen: list[float] = []
    for r, (faulty_round, clean_round) in enumerate(zip(rounds, clean, strict=True)):
        for (i, got), (_, plain) in zip(faulty_round, clean_round, strict=True):
            if i == 7 and r in phantom_rounds and isinstance(got.payload, RainObservation):
                seen.append(got.payload.rain_mm)
            else:
                assert got.payload == plain.payload
    assert seen
    assert all(2.5 - 1e-9 <= mm <= 4.2 + 1e-9 for mm in seen)
    assert len(set(seen)) > 1  # a sawtooth, not a flat line


def test_stuck_spells_start_at_their_rate_and_repeat_the_value() -> None:
    config = FaultConfig(stuck_rate=0.005, stuck_duration_s=1200)
    truth, rounds = _apply(config)
    spells = truth.fault_counts["stuck_spells"]
    stuck_reports = truth.fault_counts["stuck"]
    # a spell covers the next 1200 s of 300-s reports: the 3 after the one that stuck (4th is at +1200 s: free)
    assert _within(spells, N_STATIONS * ROUNDS, 0.005, sigmas=6.0)
    assert stuck_reports <= 3 * spells
    assert stuck_reports >= 3 * spells - 3 * N_STATIONS  # spells still running at the end
    recorded = [f for f in truth.station_faults if f.kind == "stuck"]
    assert recorded
    assert all(f.end - f.start == timedelta(seconds=1200) for f in recorded)
    # the stuck sensor repeats the value it had when it stuck
    by_station: dict[str, list[float]] = {}
    for r in rounds:
        for _, delivery in r:
            assert isinstance(delivery.payload, RainObservation)
            by_station.setdefault(delivery.payload.station_id, []).append(delivery.payload.rain_mm)
    spell = recorded[0]
    values = by_station[spell.station_id]
    first = int((spell.start - AT) / timedelta(minutes=5))
    if first + 3 < len(values):
        assert values[first + 1 : first + 4] == [values[first]] * 3


def test_clock_skew_hits_the_configured_share_of_stations() -> None:
    truth, rounds = _apply(FaultConfig(clock_skew_fraction=0.25, clock_skew_s=300.0), rounds=2)
    group = faults.FaultGroup(
        station_ids=[f"RAIN-T{i:04d}" for i in range(N_STATIONS)],
        model=RainObservation,
        value_fields=("rain_mm",),
        primary_field="rain_mm",
        spike=None,
        config=FaultConfig(clock_skew_fraction=0.25, clock_skew_s=300.0),
        seed=5,
        truth=GroundTruth(),
    )
    skewed = np.flatnonzero(group.skew_s)
    assert _within(len(skewed), N_STATIONS, 0.25)
    assert np.all((np.abs(group.skew_s[skewed]) >= 150.0) & (np.abs(group.skew_s[skewed]) <= 300.0))
    assert truth.fault_counts["clock_skew"] == 2 * len(skewed)
    for r in rounds:
        for i, delivery in r:
            assert isinstance(delivery.payload, RainObservation)
            shift = (delivery.payload.observed_at - AT).total_seconds() % 300.0
            assert shift == pytest.approx(group.skew_s[i] % 300.0)


@pytest.mark.parametrize("distribution", ["exponential", "uniform", "lognormal"])
def test_late_delays_stay_in_their_bounds_with_the_configured_mean(
    distribution: Literal["exponential", "uniform", "lognormal"],
) -> None:
    delay = LateDelay(distribution=distribution, mean_s=300.0, min_s=60.0, max_s=3600.0)
    draws = [faults.late_delay_s(delay, u) for u in np.linspace(0.0005, 0.9995, 1000)]
    assert min(draws) >= 60.0
    assert max(draws) <= 3600.0
    assert float(np.mean(draws)) == pytest.approx(300.0, rel=0.08)


# --------------------------------------------------------------------------- in a running world

ALL_FAULTS: dict[str, Any] = {
    "dropout_rate": 0.02,
    "stuck_rate": 0.01,
    "stuck_duration_s": 600,
    "spike_rate": 0.02,
    "duplicate_rate": 0.03,
    "late_rate": 0.04,
    "late_delay": {"distribution": "exponential", "mean_s": 200.0, "min_s": 60.0, "max_s": 900.0},
    "out_of_order_rate": 0.03,
    "malformed_rate": 0.03,
    "clock_skew_fraction": 0.3,
    "clock_skew_s": 120.0,
}


@pytest.fixture(scope="module")
def faulty(mini: MiniRegistry) -> Run:
    return run(world(faults=ALL_FAULTS, end=START + timedelta(hours=3)), mini)


def test_every_fault_kind_is_recorded_in_the_truth(faulty: Run) -> None:
    counts = faulty.truth.fault_counts
    for kind in faults.FAULT_KINDS:
        assert counts.get(kind, 0) > 0, kind
    assert counts["stuck_spells"] > 0
    exported = faulty.truth.to_dict()
    assert exported["fault_counts"] == dict(sorted(counts.items()))
    kinds = {f["kind"] for f in exported["station_faults"]}
    assert kinds == {"stuck", "clock_skew"}
    reports = counts["reports"]
    assert _within(counts["dropout"], reports, 0.02)
    assert _within(counts["malformed"], reports - counts["dropout"], 0.03)
    assert _within(counts["duplicate"], reports - counts["dropout"], 0.03)


def test_every_report_is_accounted_for(faulty: Run) -> None:
    counts = faulty.truth.fault_counts
    delivered = len(faulty.observations) + len(faulty.raw)
    assert delivered == counts["reports"] - counts["dropout"] + counts["duplicate"]
    broken = counts["malformed"] + counts.get("invalid", 0)
    duplicated_raw = sum(1 for tick in faulty.ticks for a, b in zip(tick.raw, tick.raw[1:], strict=False) if a == b)
    assert len(faulty.raw) == broken + duplicated_raw


def _gate(mini: MiniRegistry, now: datetime) -> IngestGate:
    table = {s.station_id: (OBSERVATION_KINDS_BY_STATION_KIND[s.kind], s.township_code) for s in mini.stations}
    return IngestGate(static_lookup(table), lambda: now)


def test_malformed_payloads_are_bytes_the_gate_rejects_with_a_reason(faulty: Run, mini: MiniRegistry) -> None:
    reasons: Counter[str] = Counter()
    for tick in faulty.ticks:
        gate = _gate(mini, tick.at)
        for payload in tick.raw:
            assert isinstance(payload, bytes)
            verdict = gate.admit(payload, "sim")
            assert isinstance(verdict, RejectedRecord), payload
            assert verdict.detail
            reasons[verdict.reason] += 1
    assert set(reasons) <= {"malformed_json", "schema", "implausible_value"}
    assert reasons["malformed_json"] > 0  # truncated JSON
    assert reasons["schema"] > 0  # wrong type or missing observed_at


def test_valid_observations_pass_the_gate_except_their_duplicates(faulty: Run, mini: MiniRegistry) -> None:
    gate = _gate(mini, faulty.ticks[-1].at)
    verdicts: Counter[str] = Counter()
    for obs in faulty.observations:
        verdict = gate.admit(obs.model_dump_json().encode(), "sim")
        verdicts[verdict.reason if isinstance(verdict, RejectedRecord) else "accepted"] += 1
    valid_duplicates = faulty.truth.fault_counts["duplicate"] - sum(
        1 for tick in faulty.ticks for a, b in zip(tick.raw, tick.raw[1:], strict=False) if a == b
    )
    assert verdicts["duplicate"] == valid_duplicates
    assert set(verdicts) == {"accepted", "duplicate"}


def test_duplicates_are_exact_and_follow_the_original(faulty: Run) -> None:
    pairs = 0
    for tick in faulty.ticks:
        seen: Counter[str] = Counter(obs.dedup_key for obs in tick.observations)
        for a, b in zip(tick.observations, tick.observations[1:], strict=False):
            if a.dedup_key == b.dedup_key:
                assert a.model_dump_json() == b.model_dump_json()
                pairs += 1
        assert max(seen.values(), default=0) <= 2
        pairs += sum(1 for a, b in zip(tick.raw, tick.raw[1:], strict=False) if a == b)
    assert pairs == faulty.truth.fault_counts["duplicate"]
    keys = Counter(obs.dedup_key for obs in faulty.observations)
    assert all(n <= 2 for n in keys.values())  # a copy is never delivered in another tick


def test_late_reports_arrive_after_their_observed_time_within_the_bound(mini: MiniRegistry) -> None:
    late = {**NO_FAULTS, "late_rate": 0.1, "late_delay": ALL_FAULTS["late_delay"]}
    sc = world(faults=late, end=START + timedelta(hours=2))
    result = run(sc, mini)
    lags = [(at - obs.observed_at).total_seconds() for at, obs in result.delivered()]
    assert min(lags) == 0.0
    delayed = [lag for lag in lags if lag > 0]
    assert len(delayed) == result.truth.fault_counts["late"]
    assert all(lag % TICK_S == 0 for lag in delayed)
    assert min(delayed) >= 60.0
    assert max(delayed) <= 900.0
    assert float(np.mean(delayed)) == pytest.approx(200.0 + 30.0, rel=0.2)  # ⌈delay / 60 s⌉ ticks
    # everything generated is delivered, including reports due after the last simulated minute
    assert result.ticks[-1].at >= sc.end
    assert len(result.observations) == result.truth.fault_counts["reports"]


def test_out_of_order_reports_follow_the_stations_next_report(mini: MiniRegistry) -> None:
    sc = world(faults={**NO_FAULTS, "out_of_order_rate": 0.05}, end=START + timedelta(hours=2))
    result = run(sc, mini)
    held = 0
    for tick in result.ticks:
        for position, obs in enumerate(tick.observations):
            if obs.observed_at == tick.at:
                continue
            held += 1
            if tick.at > sc.end:
                continue  # held at the last minute: released when the run ends
            # held back: delivered in the same tick as, and after, a newer report of its station
            before = [o.observed_at for o in tick.observations[:position] if o.station_id == obs.station_id]
            assert max(before, default=obs.observed_at) > obs.observed_at
            assert max(before) == tick.at
    assert held == result.truth.fault_counts["out_of_order"]


def test_radar_scans_get_delivery_faults_but_no_value_faults(mini: MiniRegistry) -> None:
    sc = world(faults={**NO_FAULTS, "stuck_rate": 0.5, "spike_rate": 0.5, "malformed_rate": 0.2})
    result = run(sc, mini)
    radar = [obs for obs in result.observations if obs.kind == "radar"]
    broken = [p for p in result.raw if p.startswith(b'{"kind":"radar"')]
    assert radar
    assert broken
    assert len(radar) + len(broken) == 60 + 10  # X band every minute, S band every 6 min: none lost
    whole = [json.loads(p) for p in broken if p.endswith(b"}")]  # the others are truncated
    assert all(item.get("dbz_b64") == "###" or "observed_at" not in item for item in whole)


def test_water_level_spikes_beyond_the_contract_become_invalid_payloads() -> None:
    truth = GroundTruth()
    group = faults.FaultGroup(
        station_ids=["WL-X"],
        model=WaterLevelObservation,
        value_fields=("level_m",),
        primary_field="level_m",
        spike=faults.level_spike,
        config=FaultConfig(spike_rate=1.0),
        seed=1,
        truth=truth,
    )
    idx = np.zeros(1, dtype=np.intp)
    payloads: list[ObservationBase | bytes] = []
    for minute in range(40):
        at = AT + timedelta(minutes=minute)
        ((_, delivery),) = group.apply(at, idx, [{"station_id": "WL-X", "observed_at": at, "level_m": -9.5}])
        payloads.append(delivery.payload)
    broken = [p for p in payloads if isinstance(p, bytes)]
    assert broken, "a downward spike from -9.5 m leaves the contract's -10 m floor"
    assert truth.fault_counts["invalid"] == len(broken)
    assert all(json.loads(p)["level_m"] < -10.0 for p in broken)


def test_without_faults_every_report_is_a_valid_observation(mini: MiniRegistry) -> None:
    result = run(world(faults=NO_FAULTS, end=START + timedelta(minutes=30)), mini)
    assert result.raw == []
    assert set(result.truth.fault_counts) == {"reports"}
    assert len(result.observations) == result.truth.fault_counts["reports"]


def test_every_registry_water_gauge_fits_the_observation_contract(registry: GeoRegistry) -> None:
    limits = WaterLevelObservation.model_fields["level_m"].metadata
    ceiling = next(float(m.le) for m in limits if isinstance(m, Le))  # type: ignore[arg-type]  # le: SupportsLe
    too_high = [
        s.station_id for s in registry.stations if s.water is not None and s.water.historical_max_m + 1.0 > ceiling
    ]
    assert too_high == []
