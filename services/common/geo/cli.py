"""``earlywarn registry …`` commands: print the registry summary, validate edited files.

``registry_app`` is mounted by the main CLI as ``earlywarn registry``.  Both
commands take ``--data-dir`` so an operator can check an edited copy of the
data folder before it replaces the shipped one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from services.common.geo.registry import GeoRegistry, RegistryError, load_registry

registry_app = typer.Typer(help="Geography and station registry.", no_args_is_help=True)

DataDirOption = Annotated[
    Path | None,
    typer.Option("--data-dir", help="registry data folder (default: the shipped package data)"),
]

_KIND_LABELS = {
    "rain": "rain gauges",
    "radar": "radars",
    "geohazard": "geo-hazard points",
    "water_level": "water-level gauges",
    "tide": "tide stations",
}
_NETWORK_LABELS = {
    "aws_new": "new automatic (RAIN-A)",
    "aws_upgraded": "upgraded automatic (RAIN-U)",
    "mountain": "mountain (RAIN-M)",
}


def _load_or_exit(data_dir: Path | None, console: Console) -> GeoRegistry:
    try:
        return load_registry(data_dir)
    except RegistryError as error:
        console.print(str(error), style="red", markup=False)
        raise typer.Exit(code=1) from None


@registry_app.command("summary")
def summary(data_dir: DataDirOption = None) -> None:
    """Print counts: counties, dissemination units, population, stations."""
    console = Console()
    registry = _load_or_exit(data_dir, console)
    counts = registry.summary()
    table = Table(title=f"Wenzhou registry {counts.version}", show_header=True)
    table.add_column("item")
    table.add_column("count", justify="right")
    table.add_row("counties", str(counts.counties))
    units = ", ".join(f"{kind} {n}" for kind, n in counts.units_by_kind.items())
    table.add_row(f"dissemination units ({units})", str(counts.dissemination_units))
    table.add_row("  hilly / coastal units", f"{counts.hilly_units} / {counts.coastal_units}")
    table.add_row("population (2021 year-end)", f"{counts.population:,}")
    for kind, n in counts.stations_by_kind.items():
        table.add_row(_KIND_LABELS.get(kind, kind), str(n))
        if kind == "rain":
            for network, m in counts.rain_gauges_by_network.items():
                table.add_row(f"  {_NETWORK_LABELS.get(network, network)}", str(m))
        if kind == "radar":
            for band, m in counts.radars_by_band.items():
                table.add_row(f"  {band}-band", str(m))
    console.print(table)


@registry_app.command("validate")
def validate(data_dir: DataDirOption = None) -> None:
    """Load and validate the registry files; list every problem and exit 1 if any."""
    console = Console()
    registry = _load_or_exit(data_dir, console)
    console.print(f"registry {registry.version} is valid", markup=False)
