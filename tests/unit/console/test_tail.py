"""``earlywarn tail``: filtering and formatting, and reading a bus."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from rich.console import Console
from typer.testing import CliRunner

from schemas import topics as tn
from services.common.bus.memory import MemoryBus
from services.console.geo import towns_lookup
from services.console.tail import TailFilter, format_warning, tail_app, tail_bus
from services.console.testing import T0, make_warning, small_registry, warning_emit

YELLOW = make_warning("rainstorm-a", level="yellow", townships=("330302006",))
RED_GEO = make_warning("geohazard-b", hazard="geohazard", level="red", townships=("330304103", "330304104"))


@pytest.mark.parametrize(
    ("flt", "yellow", "red"),
    [
        pytest.param(TailFilter(), True, True, id="everything"),
        pytest.param(TailFilter.of(hazards=["geohazard"]), False, True, id="hazard"),
        pytest.param(TailFilter.of(levels=["yellow,blue"]), True, False, id="levels-comma"),
        pytest.param(TailFilter.of(counties=["330304"]), False, True, id="county"),
        pytest.param(TailFilter.of(min_level="orange"), False, True, id="min-level"),
    ],
)
def test_filter(flt: TailFilter, yellow: bool, red: bool) -> None:
    assert (flt.matches(YELLOW), flt.matches(RED_GEO)) == (yellow, red)


def test_format_line_names_the_area_and_state() -> None:
    text = format_warning(RED_GEO, towns_lookup(small_registry())).plain
    assert "红色 red" in text
    assert "瓯海区 泽雅镇、瞿溪街道" in text
    assert "geohazard-b" in text
    held = make_warning("flood-c", level="red", approval="held", origin="manual", issued_by="li.na")
    assert "held" in format_warning(held).plain
    assert "manual:li.na" in format_warning(held).plain


async def test_tail_bus_prints_matching_warnings_once() -> None:
    bus = MemoryBus()
    await bus.publish_many([warning_emit(YELLOW), warning_emit(RED_GEO), warning_emit(RED_GEO)])
    update = make_warning(
        "geohazard-b",
        version=2,
        hazard="geohazard",
        level="red",
        townships=("330304103", "330304104"),
        sent_at=T0 + timedelta(minutes=5),
        previous_sent=[T0],
    )
    await bus.publish(tn.WARNINGS, update.key, update.model_dump_json().encode())
    console = Console(record=True, width=200)
    printed = await asyncio.wait_for(
        tail_bus(bus, TailFilter.of(hazards=["geohazard"]), console, asyncio.Event(), max_messages=2), 5
    )
    assert printed == 2
    lines = console.export_text().splitlines()
    assert [("Alert" in line, "Update" in line) for line in lines] == [(True, False), (False, True)]


def test_cli_refuses_memory_broker() -> None:
    result = CliRunner().invoke(tail_app, ["--broker", "memory://"])
    assert result.exit_code != 0
    assert "kafka://" in result.output
