"""Simulator knobs without HTTP: seeded outcomes, latency draws, throttle, outage windows."""

from __future__ import annotations

import statistics
import time

import pytest

from services.dispatch.gateways.common import GatewayBehaviour, GatewaySim, OutageWindow, run_gateway, unit_hash
from services.dispatch.gateways.sms import create_sms_gateway


def test_per_target_outcomes_depend_on_seed_not_on_arrival_order() -> None:
    a = GatewaySim(GatewayBehaviour(seed=1, error_rate=0.3), "sms")
    b = GatewaySim(GatewayBehaviour(seed=1, error_rate=0.3), "sms")
    targets = [f"n{i}" for i in range(1000)]
    forward = [a.rejected("m.v1", t) for t in targets]
    backward = [b.rejected("m.v1", t) for t in reversed(targets)][::-1]
    assert forward == backward
    assert 250 <= sum(forward) <= 350
    other_seed = GatewaySim(GatewayBehaviour(seed=2, error_rate=0.3), "sms")
    assert [other_seed.rejected("m.v1", t) for t in targets] != forward
    assert 0.0 <= unit_hash("x") < 1.0


@pytest.mark.parametrize("distribution", ["fixed", "uniform", "exponential", "lognormal"])
def test_latency_distributions_have_the_configured_mean(distribution: str) -> None:
    behaviour = GatewayBehaviour.model_validate(
        {"latency_ms": 20.0, "latency_jitter_ms": 10.0, "latency_distribution": distribution}
    )
    sim = GatewaySim(behaviour, "sms")
    draws = [
        sim.draw_ms(behaviour.latency_ms, behaviour.latency_jitter_ms, behaviour.latency_distribution)
        for _ in range(5000)
    ]
    assert all(d >= 0 for d in draws)
    assert statistics.fmean(draws) == pytest.approx(20.0, rel=0.08)


def test_throttle_answers_with_the_wait() -> None:
    sim = GatewaySim(GatewayBehaviour(tps=100, burst=50), "sms")
    assert sim.throttle(50) is None
    wait = sim.throttle(50)
    assert wait is not None
    assert 0.4 < wait <= 0.5


def test_outage_windows_are_relative_to_start() -> None:
    sim = GatewaySim(GatewayBehaviour(outage_windows=(OutageWindow(start_s=0.0, end_s=0.2),)), "sms")
    assert sim.in_outage()
    time.sleep(0.25)
    assert not sim.in_outage()
    sim.down = True
    assert sim.in_outage()


def test_run_gateway_is_loopback_only() -> None:
    with pytest.raises(ValueError, match="loopback"):
        run_gateway(create_sms_gateway(), host="0.0.0.0")
