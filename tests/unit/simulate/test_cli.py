"""``earlywarn scenario list | show | truth``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.ingest.simulate.cli import scenario_app
from tests.unit.simulate.support import SCENARIOS_DIR, SHIPPED

RUNNER = CliRunner()


def test_list_shows_every_shipped_scenario() -> None:
    result = RUNNER.invoke(scenario_app, ["list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in SHIPPED:
        assert name in result.output


def test_list_flags_a_broken_file(tmp_path: Path) -> None:
    (tmp_path / "broken.toml").write_text("format_version = 9\n", encoding="utf-8")
    result = RUNNER.invoke(scenario_app, ["list", "--dir", str(tmp_path)], env={"COLUMNS": "200"})
    assert result.exit_code == 1
    assert "invalid" in result.output


@pytest.mark.parametrize("name", ["lekima-2019", str(SCENARIOS_DIR / "convective-afternoon.toml")])
def test_show_prints_the_resolved_scenario(name: str) -> None:
    result = RUNNER.invoke(scenario_app, ["show", name], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    if name == "lekima-2019":
        assert "typhoon Lekima: 15 track points" in result.output
    else:
        assert "cell zeya-lucheng" in result.output
    assert '"format_version": 1' in result.output


def test_show_an_unknown_scenario_fails_cleanly() -> None:
    result = RUNNER.invoke(scenario_app, ["show", "no-such-scenario"])
    assert result.exit_code == 1
    assert "no such scenario" in result.output


def test_truth_writes_the_ground_truth(tmp_path: Path) -> None:
    out = tmp_path / "truth.json"
    result = RUNNER.invoke(scenario_app, ["truth", "quiet-day", "--json", str(out), "--hours", "0.2"])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["scenario"] == "quiet-day"
    assert (data["start"], data["end"]) == ("2023-11-15T00:00:00Z", "2023-11-15T00:12:00Z")
    assert data["events"] == []
    assert len(data["townships"]) == 186
