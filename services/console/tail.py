"""``earlywarn tail``: the warning stream in a terminal, filterable like the console.

Mount it on the main CLI either way::

    app.add_typer(tail_app, name="tail")      # earlywarn tail --hazard rainstorm --level red
    app.command("tail")(tail)

It joins a fresh consumer group on ``warnings`` (so it sees the topic from the start, or
only what arrives from now with ``--new-only``), drops redeliveries by
``(message id, approval)`` and prints one coloured line per message::

    06-01 16:05:12  橙色 orange  rainstorm  Update v2  瓯海区 泽雅镇、瞿溪街道  rainstorm-330304103-…  held
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import timedelta, timezone
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from schemas import topics as tn
from schemas.common import LEVEL_RANK
from schemas.warning import WarningMessage
from services.common.bus.base import Bus
from services.console.readmodel import county_of
from services.dispatch.targeting import COUNTY_NAMES_ZH, TownshipInfo

BJT = timezone(timedelta(hours=8), "BJT")
LEVEL_STYLE: dict[str, str] = {
    "blue": "bold white on blue",
    "yellow": "bold black on yellow",
    "orange": "bold black on dark_orange",
    "red": "bold white on red",
}
LEVEL_ZH: dict[str, str] = {"blue": "蓝色", "yellow": "黄色", "orange": "橙色", "red": "红色"}


@dataclass(frozen=True, slots=True)
class TailFilter:
    """Empty sets match everything; ``min_level`` keeps that level and above."""

    hazards: frozenset[str] = frozenset()
    levels: frozenset[str] = frozenset()
    counties: frozenset[str] = frozenset()
    min_level: str | None = None

    @classmethod
    def of(
        cls,
        hazards: Collection[str] = (),
        levels: Collection[str] = (),
        counties: Collection[str] = (),
        min_level: str | None = None,
    ) -> TailFilter:
        def flat(values: Collection[str]) -> frozenset[str]:
            return frozenset(v.strip() for raw in values for v in raw.split(",") if v.strip())

        return cls(flat(hazards), flat(levels), flat(counties), min_level)

    def matches(self, msg: WarningMessage) -> bool:
        if self.hazards and msg.hazard not in self.hazards:
            return False
        if self.levels and msg.level not in self.levels:
            return False
        if self.min_level is not None and LEVEL_RANK[msg.level] < LEVEL_RANK[self.min_level]:
            return False
        return not self.counties or any(county_of(code) in self.counties for code in msg.township_codes)


def area_text(codes: tuple[str, ...], towns: Mapping[str, TownshipInfo] | None, max_names: int = 3) -> str:
    by_county: dict[str, list[str]] = {}
    for code in codes:
        info = towns.get(code) if towns else None
        by_county.setdefault(county_of(code), []).append(info.name_zh if info else code)
    parts = []
    shown = 0
    for county, names in by_county.items():
        if shown >= max_names:
            break
        take = names[: max_names - shown]
        shown += len(take)
        parts.append(f"{COUNTY_NAMES_ZH.get(county, county)} {'、'.join(take)}")
    more = f" (+{len(codes) - shown})" if len(codes) > shown else ""
    return "；".join(parts) + more


def format_warning(msg: WarningMessage, towns: Mapping[str, TownshipInfo] | None = None) -> Text:
    line = Text()
    line.append(msg.sent_at.astimezone(BJT).strftime("%m-%d %H:%M:%S"), style="dim")
    line.append("  ")
    line.append(f" {LEVEL_ZH[msg.level]} {msg.level:<6} ", style=LEVEL_STYLE[msg.level])
    line.append(f"  {msg.hazard:<16}", style="bold")
    type_style = {"Alert": "bold", "Update": "cyan", "Cancel": "green"}[msg.msg_type]
    line.append(f" {msg.msg_type:<6} v{msg.version:<2}", style=type_style)
    line.append(f"  {area_text(msg.township_codes, towns)}")
    line.append(f"  {msg.warning_id}", style="dim")
    if msg.approval != "auto":
        line.append(f"  {msg.approval}", style="yellow" if msg.approval == "held" else "green")
    if msg.origin == "manual":
        line.append(f"  manual:{msg.issued_by}", style="magenta")
    return line


async def tail_bus(
    bus: Bus,
    flt: TailFilter,
    console: Console,
    stop: asyncio.Event,
    *,
    group: str | None = None,
    new_only: bool = False,
    towns: Mapping[str, TownshipInfo] | None = None,
    max_messages: int | None = None,
) -> int:
    """Print matching warnings until ``stop`` (or ``max_messages``); return how many."""
    started_ms = int(time.time() * 1000)
    sub = await bus.subscribe([tn.WARNINGS], group=group or f"earlywarn-tail-{uuid.uuid4().hex[:8]}")
    seen: set[str] = set()
    printed = 0
    try:
        while not stop.is_set():
            for record in await sub.getmany(timeout_s=0.25, max_records=1000):
                if new_only and record.timestamp_ms < started_ms:
                    continue
                try:
                    msg = WarningMessage.model_validate_json(record.value)
                except ValueError:
                    console.print(
                        Text(f"unreadable record at {record.topic}/{record.partition}@{record.offset}", "red")
                    )
                    continue
                if msg.state_key in seen or not flt.matches(msg):
                    continue
                seen.add(msg.state_key)
                console.print(format_warning(msg, towns), soft_wrap=True)
                printed += 1
                if max_messages is not None and printed >= max_messages:
                    return printed
    finally:
        with contextlib.suppress(Exception):
            await sub.close()
    return printed


def _towns() -> Mapping[str, TownshipInfo] | None:
    try:
        from services.common.geo.registry import default_registry
        from services.console.geo import towns_lookup

        return towns_lookup(default_registry())
    except Exception:  # names are a nicety: codes are printed without the registry
        return None


def tail(
    broker: Annotated[
        str, typer.Option(help="kafka://host:port", envvar="EARLYWARN_BROKER")
    ] = "kafka://127.0.0.1:19092",
    namespace: Annotated[str, typer.Option(help="topic/group prefix")] = "",
    hazard: Annotated[list[str] | None, typer.Option(help="only these hazards (repeat or comma-separate)")] = None,
    level: Annotated[list[str] | None, typer.Option(help="only these levels (blue/yellow/orange/red)")] = None,
    county: Annotated[list[str] | None, typer.Option(help="only these county codes, e.g. 330304")] = None,
    min_level: Annotated[str | None, typer.Option(help="this level and above")] = None,
    new_only: Annotated[bool, typer.Option("--new-only", help="skip what was on the topic before starting")] = False,
) -> None:
    """Print the warning stream in the terminal, filtered like the console's list."""
    if not broker.startswith("kafka://"):
        raise typer.BadParameter("tail reads a broker: kafka://host:port (memory:// lives inside `earlywarn run`)")
    if min_level is not None and min_level not in LEVEL_STYLE:
        raise typer.BadParameter("--min-level must be blue, yellow, orange or red")
    from services.common.bus.kafka import KafkaBus

    flt = TailFilter.of(hazard or (), level or (), county or (), min_level)
    console = Console()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        bus = KafkaBus(broker.removeprefix("kafka://"), namespace=namespace)
        await bus.start()
        try:
            await tail_bus(bus, flt, console, stop, new_only=new_only, towns=_towns())
        finally:
            await bus.stop()

    asyncio.run(main())


tail_app = typer.Typer(help="Print the warning stream in the terminal.", add_completion=False)
tail_app.callback(invoke_without_command=True)(tail)
