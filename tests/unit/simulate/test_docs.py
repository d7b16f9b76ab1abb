"""docs/scenarios.md: its example loads and runs, and it documents every key with the code's default."""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import BaseModel

from services.ingest.simulate import scenario as model
from services.ingest.simulate.scenario import load_scenario
from services.ingest.simulate.world.testing import MiniRegistry
from tests.unit.simulate.support import DOCS, SHIPPED, revise, run

MODELS: tuple[type[BaseModel], ...] = (
    model.Scenario,
    model.GridConfig,
    model.TyphoonConfig,
    model.TrackPoint,
    model.BestTrackRef,
    model.ConvectiveCell,
    model.BackgroundConfig,
    model.TideConfig,
    model.SurgeConfig,
    model.HydrologyConfig,
    model.RiverConfig,
    model.GeoHazardConfig,
    model.FaultConfig,
    model.LateDelay,
    model.NoiseConfig,
    model.RadarConfig,
    model.StationSelection,
    model.ReplayDefaults,
    model.TruthConfig,
)
NUMBER = re.compile(r"^-?\d+(?:\.\d+)?")


def _text() -> str:
    return DOCS.read_text(encoding="utf-8")


def _first_toml_block(text: str) -> str:
    match = re.search(r"```toml\n(.*?)```", text, flags=re.DOTALL)
    assert match, "docs/scenarios.md has a ```toml example"
    return match.group(1)


def test_the_minimal_example_parses_with_load_scenario(tmp_path: Path, mini: MiniRegistry) -> None:
    path = tmp_path / "my-first-storm.toml"
    path.write_text(_first_toml_block(_text()), encoding="utf-8")
    sc = load_scenario(path)
    assert sc.name == "my-first-storm"
    assert sc.typhoon is not None
    assert len(sc.typhoon.track) == 3
    assert len(sc.cells) == 1
    # and it runs
    short = revise(sc, end=sc.start + timedelta(minutes=20), grid={"cell_deg": 0.05})
    result = run(short, mini)
    assert len(result.ticks) >= 20
    assert result.observations


def test_every_key_of_the_format_is_documented() -> None:
    text = _text()
    forms = ("`{}`", "[{}]", "[[{}]]")  # a key, or a section: `[grid]`, `[[cells]]`
    missing = [
        f"{cls.__name__}.{name}"
        for cls in MODELS
        for name in cls.model_fields
        if not any(form.format(name) in text for form in forms)
    ]
    assert missing == []


def _documented_defaults(text: str) -> dict[str, list[str]]:
    """key → every 'default' cell of a table row naming that key (first backticked cell)."""
    out: dict[str, list[str]] = defaultdict(list)
    header: list[str] = []
    for line in text.splitlines():
        if not line.startswith("|"):
            header = []
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not header:
            header = [c.lower() for c in cells]
            continue
        if "default" not in header and not any(h.startswith("default") for h in header):
            continue
        column = next(i for i, h in enumerate(header) if h.startswith("default"))
        key = next((c for c in cells if re.fullmatch(r"`[a-z_0-9]+`", c)), None)
        if key is not None and column < len(cells):
            out[key.strip("`")].append(cells[column])
    return out


def _as_numbers(cell: str) -> list[float] | float | None:
    if cell.startswith("["):
        items = [NUMBER.match(part.strip()) for part in cell.strip("[]").split(",")]
        return [float(m.group()) for m in items if m] or None
    match = NUMBER.match(cell)
    return float(match.group()) if match else None


def test_the_documented_defaults_are_the_codes() -> None:
    documented = _documented_defaults(_text())
    checked = 0
    for cls in MODELS:
        for name, field in cls.model_fields.items():
            default = field.default
            if isinstance(default, bool) or not isinstance(default, int | float | tuple):
                continue
            if isinstance(default, tuple) and not (default and all(isinstance(v, int | float) for v in default)):
                continue
            expected: list[float] | float = (
                [float(v) for v in default] if isinstance(default, tuple) else float(default)
            )
            cells = documented.get(name)
            assert cells, f"{cls.__name__}.{name}: no table row with a default"
            values = [_as_numbers(c) for c in cells]
            assert expected in values, f"{cls.__name__}.{name}: code {expected}, docs {cells}"
            checked += 1
    assert checked > 80


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_scenario_is_in_the_table(name: str) -> None:
    assert f"| `{name}` |" in _text()


def test_the_documented_commands_exist() -> None:
    from services.ingest.simulate.cli import scenario_app

    commands = {c.name for c in scenario_app.registered_commands}
    assert commands == {"list", "show", "truth"}
    text = _text()
    for command in ("scenario list", "scenario show", "scenario truth", "earlywarn replay", "earlywarn verify"):
        assert command in text
