"""``earlywarn scenario …`` commands: list the shipped scenarios, show one, compute its truth.

``scenario_app`` is mounted by the main CLI as ``earlywarn scenario``. Scenarios are read
from ``--dir`` (default ``$EARLYWARN_SCENARIOS_DIR`` or ``loadtests/scenarios`` of this
checkout); a name is a file stem or a scenario ``name``, or give a path to a ``.toml``.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from services.ingest.simulate.scenario import (
    Scenario,
    ScenarioError,
    find_scenario,
    load_scenario,
    scenario_files,
    span_text,
)
from services.ingest.simulate.truth import GroundTruth

scenario_app = typer.Typer(help="Simulated-world scenarios: list, show, ground truth.", no_args_is_help=True)

DirOption = Annotated[
    Path | None,
    typer.Option("--dir", help="scenario folder (default: $EARLYWARN_SCENARIOS_DIR or loadtests/scenarios)"),
]
NameArg = Annotated[str, typer.Argument(help="scenario name, file stem, or path to a .toml")]


def _load(name: str, directory: Path | None, console: Console) -> tuple[Path, Scenario]:
    try:
        path = find_scenario(name, directory)
        return path, load_scenario(path)
    except ScenarioError as error:
        console.print(str(error), style="red", markup=False)
        raise typer.Exit(code=1) from None


@scenario_app.command("list")
def list_scenarios(directory: DirOption = None) -> None:
    """The shipped scenarios: name, span, description."""
    console = Console()
    table = Table(show_header=True)
    for column in ("name", "span (UTC)", "weather", "description"):
        table.add_column(column, overflow="fold")
    problems = 0
    for file in scenario_files(directory):
        try:
            sc = load_scenario(file)
        except ScenarioError as error:
            problems += 1
            table.add_row(file.stem, "—", "—", f"[red]invalid:[/] {error}")
            continue
        weather = f"typhoon {sc.typhoon.name}" if sc.typhoon else f"{len(sc.cells)} cells" if sc.cells else "background"
        table.add_row(sc.name, span_text(sc.start, sc.end), weather, sc.description)
    console.print(table)
    if problems:
        raise typer.Exit(code=1)


@scenario_app.command("show")
def show(name: NameArg, directory: DirOption = None) -> None:
    """One scenario, resolved: span, weather, faults, stations; every value after defaults."""
    console = Console()
    path, sc = _load(name, directory, console)
    console.print(f"[bold]{sc.name}[/]  ({path})")
    console.print(sc.description, markup=False)
    console.print(f"span  {span_text(sc.start, sc.end)}   seed {sc.seed}   format_version {sc.format_version}")
    if sc.typhoon is not None:
        ty = sc.typhoon
        first, last = ty.track[0], ty.track[-1]
        peak = max(ty.track, key=lambda p: p.vmax_ms)
        console.print(
            f"typhoon {ty.name}: {len(ty.track)} track points {first.time:%Y-%m-%dT%HZ} → {last.time:%Y-%m-%dT%HZ}, "
            f"peak {peak.vmax_ms:g} m/s {peak.mslp_hpa:g} hPa; Rmax {ty.radius_max_wind_km:g} km, "
            f"core rain {ty.core_rain_mm_h:g} mm/h, terrain ×{ty.terrain_enhancement:g}"
        )
    for cell in sc.cells:
        peak_text = f"{cell.peak_dbz:g} dBZ" if cell.peak_dbz is not None else f"{cell.peak_rain_mm_h:g} mm/h"
        life = cell.growth_min + cell.mature_min + cell.decay_min
        console.print(
            f"cell {cell.id or '-'}: {cell.start:%H:%MZ} at {cell.lon:.2f}E {cell.lat:.2f}N, "
            f"{cell.speed_kmh:g} km/h towards {cell.heading_deg:g}°, peak {peak_text}, r {cell.radius_km:g} km, "
            f"lives {life:g} min"
        )
    console.print_json(sc.model_dump_json(exclude={"typhoon": {"track"}}))


@scenario_app.command("truth")
def truth(
    name: NameArg,
    json_path: Annotated[Path, typer.Option("--json", help="write the ground truth JSON here")],
    directory: DirOption = None,
    hours: Annotated[float | None, typer.Option(help="stop after this many simulated hours")] = None,
) -> None:
    """Run the world for a scenario (full registry) and write what really happened."""
    from services.common.geo.registry import default_registry  # the registry loads data files: only here
    from services.ingest.simulate.world import iter_world

    console = Console()
    _, sc = _load(name, directory, console)
    if hours is not None:
        end = min(sc.end, sc.start + timedelta(hours=hours))
        end -= timedelta(seconds=(end - sc.start).total_seconds() % 60)
        sc = sc.model_copy(update={"end": end})
    registry = default_registry()
    ground = GroundTruth()
    started = time.perf_counter()
    observations = raw = 0
    for tick in iter_world(sc, registry, ground):
        observations += len(tick.observations)
        raw += len(tick.raw)
    elapsed = time.perf_counter() - started
    ground.to_json(json_path)
    console.print(
        f"{sc.name}: {sc.span_hours:g} h simulated in {elapsed:.1f} s; {observations:,} observations, "
        f"{raw:,} malformed payloads; truth written to {json_path}",
        markup=False,
    )
    table = Table("hazard", "blue", "yellow", "orange", "red", title="truth events per level")
    counts: Counter[tuple[str, str]] = Counter((e.hazard, e.level) for e in ground.events)
    levels = ("blue", "yellow", "orange", "red")
    for hazard in sorted({h for h, _ in counts}):
        table.add_row(hazard, *(str(counts[(hazard, lv)]) for lv in levels))
    console.print(table)
    faults = ", ".join(f"{k} {v:,}" for k, v in sorted(ground.fault_counts.items()))
    console.print(f"faults: {faults or 'none'}", markup=False)
