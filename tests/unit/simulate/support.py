"""Helpers for the simulator tests: small scenarios, short runs, a flat view of the delivered stream."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from schemas.observations import ObservationBase
from services.ingest.simulate.scenario import Scenario, find_scenario, load_scenario
from services.ingest.simulate.truth import GroundTruth
from services.ingest.simulate.world import RegistryLike, Tick, iter_world

REPO = Path(__file__).resolve().parents[3]
SCENARIOS_DIR = REPO / "loadtests" / "scenarios"
DOCS = REPO / "docs" / "scenarios.md"
SHIPPED = ("convective-afternoon", "hagupit-2020", "lekima-2019", "quiet-day", "saomai-2006")
TYPHOONS = ("hagupit-2020", "lekima-2019", "saomai-2006")

START = datetime.fromisoformat("2023-07-20T00:00:00+00:00")

NO_FAULTS: dict[str, Any] = {
    "dropout_rate": 0.0,
    "stuck_rate": 0.0,
    "spike_rate": 0.0,
    "duplicate_rate": 0.0,
    "late_rate": 0.0,
    "out_of_order_rate": 0.0,
    "malformed_rate": 0.0,
    "clock_skew_fraction": 0.0,
    "clock_skew_s": 0.0,
}
NO_NOISE: dict[str, Any] = {
    "rain_gauge_sigma": 0.0,
    "rain_resolution_mm": 0.0,
    "wind_sigma": 0.0,
    "wind_dir_sigma_deg": 0.0,
    "water_level_sigma_m": 0.0,
    "displacement_sigma_mm": 0.0,
    "radar_dbz_sigma": 0.0,
}


def minimal(**top: Any) -> dict[str, Any]:
    """The smallest valid scenario as a dict (the keys every file must have)."""
    raw: dict[str, Any] = {
        "format_version": 1,
        "name": "unit",
        "description": "unit-test world",
        "seed": 7,
        "start": START,
        "end": START + timedelta(hours=1),
    }
    raw.update(top)
    return raw


def _merge(base: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in changes.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


def revise(scenario: Scenario, **changes: Any) -> Scenario:
    """``scenario`` with ``changes`` merged in (sections merge key by key), validated again."""
    return Scenario.model_validate(_merge(scenario.model_dump(), changes))


def shipped(name: str) -> Scenario:
    return load_scenario(find_scenario(name))


def window(scenario: Scenario, hours: float, offset_h: float = 0.0, **changes: Any) -> Scenario:
    """A part of ``scenario``: ``hours`` from ``offset_h`` after its start, plus ``changes``."""
    start = scenario.start + timedelta(hours=offset_h)
    return revise(scenario, start=start, end=start + timedelta(minutes=round(hours * 60)), **changes)


def world(**changes: Any) -> Scenario:
    """A test world: stratiform rain moving over the mini registry, coarse grid, nothing else."""
    base = Scenario.model_validate(
        minimal(
            grid={"cell_deg": 0.02},
            background={"rain_mm_h": 8.0, "variation": 0.8, "wavelength_km": 40.0, "ramp_min": 20.0},
        )
    )
    return revise(base, **changes)


@dataclass
class Run:
    ticks: list[Tick]
    truth: GroundTruth

    @property
    def observations(self) -> list[ObservationBase]:
        return [obs for tick in self.ticks for obs in tick.observations]

    @property
    def raw(self) -> list[bytes]:
        return [payload for tick in self.ticks for payload in tick.raw]

    def delivered(self) -> list[tuple[datetime, ObservationBase]]:
        """(delivery time, observation) for every valid observation, in delivery order."""
        return [(tick.at, obs) for tick in self.ticks for obs in tick.observations]

    def stream(self) -> list[tuple[str, list[str], list[bytes]]]:
        """The whole delivered stream in comparable form."""
        return [
            (tick.at.isoformat(), [obs.model_dump_json() for obs in tick.observations], list(tick.raw))
            for tick in self.ticks
        ]


def run(scenario: Scenario, registry: RegistryLike) -> Run:
    truth = GroundTruth()
    ticks = list(iter_world(scenario, registry, truth))
    return Run(ticks, truth)
