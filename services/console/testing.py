"""Test kit for the console: a small geography, users, warning factories and a replay stub.

Used by ``tests/unit/console``, ``tests/integration/console``, ``tests/e2e`` and
``loadtests/bench_sse.py``; also handy to run the console locally without the simulator.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from schemas import topics as tn
from schemas.assessment import Evidence, HazardAssessment
from schemas.command import ManualWarning, OperatorCommand, Role
from schemas.common import Hazard, Level
from schemas.observations import RainObservation
from schemas.rejected import RejectedRecord
from schemas.warning import Approval, MessageRef, MsgType, WarningMessage
from services.common.bus.base import Bus, Emit
from services.console.auth import hash_password
from services.console.geo import GeoRegistry

T0 = datetime(2024, 6, 1, 8, 0, tzinfo=UTC)


# --------------------------------------------------------------------------- geography


@dataclass(frozen=True, slots=True)
class FakeCounty:
    code: str
    name_zh: str
    name_en: str


@dataclass(frozen=True, slots=True)
class FakeTownship:
    code: str
    name_zh: str
    county_code: str
    population: int
    lon: float
    lat: float


@dataclass
class SmallRegistry:
    """Three rectangular counties around Wenzhou with ten townships (real NBS codes)."""

    counties: tuple[FakeCounty, ...]
    townships: tuple[FakeTownship, ...]
    polygons: dict[str, BaseGeometry] = field(default_factory=dict)

    def county_polygon(self, code: str) -> BaseGeometry:
        return self.polygons[code]

    def township(self, code: str) -> FakeTownship:
        return next(t for t in self.townships if t.code == code)


def small_registry() -> SmallRegistry:
    counties = (
        FakeCounty("330302", "鹿城区", "Lucheng District"),
        FakeCounty("330304", "瓯海区", "Ouhai District"),
        FakeCounty("330383", "龙港市", "Longgang City"),
    )
    polygons: dict[str, BaseGeometry] = {
        "330302": box(120.50, 28.00, 120.70, 28.12),
        "330304": box(120.50, 27.85, 120.70, 28.00),
        "330383": box(120.50, 27.70, 120.62, 27.85),
    }
    townships = (
        FakeTownship("330302006", "五马街道", "330302", 52000, 120.65, 28.02),
        FakeTownship("330302023", "七都街道", "330302", 31000, 120.68, 28.06),
        FakeTownship("330302024", "滨江街道", "330302", 64000, 120.56, 28.05),
        FakeTownship("330302025", "南汇街道", "330302", 58000, 120.60, 28.09),
        FakeTownship("330304001", "景山街道", "330304", 45000, 120.62, 27.97),
        FakeTownship("330304103", "泽雅镇", "330304", 28000, 120.53, 27.94),
        FakeTownship("330304104", "瞿溪街道", "330304", 41000, 120.58, 27.90),
        FakeTownship("330304108", "郭溪街道", "330304", 39000, 120.66, 27.88),
        FakeTownship("330304110", "丽岙街道", "330304", 36000, 120.55, 27.87),
        FakeTownship("330383000", "龙港市", "330383", 382000, 120.56, 27.78),
    )
    return SmallRegistry(counties, townships, polygons)


def load_geo_registry() -> GeoRegistry:
    """The real registry when its data is installed, else ``small_registry()``."""
    try:
        from services.common.geo.registry import default_registry

        registry: GeoRegistry = default_registry()
    except Exception:  # not installed yet, or its data files are missing/invalid
        return small_registry()
    return registry


def pick_townships(registry: GeoRegistry, n: int = 4) -> list[str]:
    """``n`` township codes from different counties (spread over the map), deterministic."""
    from services.console.geo import registry_townships

    by_county: dict[str, list[str]] = {}
    for town in registry_townships(registry):
        by_county.setdefault(town.county_code, []).append(town.code)
    counties = sorted(by_county, key=lambda c: -len(by_county[c]))
    picks = [by_county[c][len(by_county[c]) // 2] for c in counties]
    while len(picks) < n:
        picks.extend(picks or ["330302006"])
    return picks[:n]


# --------------------------------------------------------------------------- users

DEFAULT_PASSWORD = "correct horse battery staple"

DEFAULT_USERS: dict[str, Role] = {
    "zhao.viewer": "viewer",
    "li.na": "duty_officer",
    "wang.fang": "approver",
    "chen.admin": "admin",
}


def write_users(
    path: Path, users: Mapping[str, Role] = DEFAULT_USERS, password: str = DEFAULT_PASSWORD, scrypt_n: int = 2**10
) -> Path:
    """A users file; ``scrypt_n`` is kept small so tests sign in fast (production: 2**14)."""
    lines = []
    for name, role in users.items():
        lines += [
            f'[users."{name}"]',
            f'role = "{role}"',
            f'display_name = "{name}"',
            f'password = "{hash_password(password, n=scrypt_n)}"',
            "",
        ]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- warnings


def make_warning(
    warning_id: str = "rainstorm-330302006-1717228800",
    *,
    version: int = 1,
    msg_type: MsgType | None = None,
    level: Level = "yellow",
    hazard: Hazard = "rainstorm",
    townships: Sequence[str] = ("330302006",),
    sent_at: datetime = T0,
    valid_for: timedelta = timedelta(hours=6),
    approval: Approval = "auto",
    origin: str = "rules",
    issued_by: str | None = None,
    approved_by: str | None = None,
    hold_deadline_at: datetime | None = None,
    headline: str | None = None,
    previous_sent: Sequence[datetime] | None = None,
) -> WarningMessage:
    """A valid message of a warning; earlier versions are referenced at hourly steps."""
    kind: MsgType = msg_type or ("Alert" if version == 1 else "Update")
    sent_before = list(previous_sent or [sent_at - timedelta(minutes=10 * (version - v)) for v in range(1, version)])
    refs = tuple(MessageRef(message_id=f"{warning_id}.v{v}", sent_at=sent_before[v - 1]) for v in range(1, version))
    return WarningMessage(
        message_id=f"{warning_id}.v{version}",
        warning_id=warning_id,
        version=version,
        msg_type=kind,
        hazard=hazard,
        level=level,
        township_codes=tuple(townships),
        sent_at=sent_at,
        onset_at=sent_at,
        expires_at=sent_at + valid_for,
        references=refs,
        headline=headline or f"{hazard} {level} {kind}",
        rule_id="rain_3h" if origin == "rules" else "",
        reason="3 h rain above threshold" if origin == "rules" else "manual",
        evidence=(
            (Evidence(station_id="G5801", metric="rain_3h_mm", value=62.5, threshold=50.0, window_s=10800),)
            if origin == "rules"
            else ()
        ),
        approval=approval,
        approved_by=approved_by,
        origin="manual" if origin == "manual" else "rules",
        issued_by=issued_by,
        hold_deadline_at=hold_deadline_at,
    )


def warning_emit(msg: WarningMessage) -> Emit:
    return Emit(tn.WARNINGS, msg.key, msg.model_dump_json().encode())


def manual_command(
    actor: str, role: Role, hazard: Hazard, level: Level, townships: Sequence[str], headline: str, at: datetime
) -> OperatorCommand:
    return OperatorCommand(
        command_id=uuid.uuid4().hex,
        action="issue_manual",
        actor=actor,
        actor_role=role,
        at=at,
        manual=ManualWarning(hazard=hazard, level=level, township_codes=tuple(townships), headline=headline),
    )


# --------------------------------------------------------------------------- replay stub


@dataclass
class ReplayStub:
    """A ``start_replay(name, speed)`` that publishes a short scripted storm to the bus.

    Steps are 1 s of scenario time apart, so at speed N they are 1/N s apart in real time.
    ``emitted`` maps each message id to the wall time (``time.time()``) of its
    publication: the e2e test measures emission → DOM with it.
    """

    bus: Bus
    now: Any = field(default=lambda: datetime.now(UTC))
    townships: Sequence[str] = ("330302006", "330302023", "330304103", "330304104")
    manual_by: tuple[str, Role] | None = None
    """Also issue a manual red warning (as this duty officer) through the lifecycle."""
    with_inputs: bool = True
    """Also publish ``inputs()`` first: station reports, a suppressed sensor, a rejected input."""
    emitted: dict[str, float] = field(default_factory=dict)
    started: list[tuple[str, float]] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def script(self, start: datetime) -> list[WarningMessage | OperatorCommand]:
        a, b, c, d = (list(self.townships) * 4)[:4]
        sid = int(start.timestamp())
        w1, w2, w3 = f"rainstorm-{a}-{sid}", f"short_heavy_rain-{b}-{sid}", f"geohazard-{c}-{sid}"
        t = [start + timedelta(seconds=i) for i in range(8)]
        steps: list[WarningMessage | OperatorCommand] = [
            make_warning(w1, level="yellow", townships=(a,), sent_at=t[0]),
            make_warning(w2, level="blue", hazard="short_heavy_rain", townships=(b,), sent_at=t[1]),
            make_warning(w3, level="orange", hazard="geohazard", townships=(c, d), sent_at=t[2]),
            make_warning(w1, version=2, level="orange", townships=(a,), sent_at=t[3], previous_sent=[t[0]]),
            make_warning(
                w2,
                version=2,
                msg_type="Cancel",
                level="blue",
                hazard="short_heavy_rain",
                townships=(b,),
                sent_at=t[4],
                previous_sent=[t[1]],
            ),
        ]
        if self.manual_by is not None:
            actor, role = self.manual_by
            steps.append(manual_command(actor, role, "flood", "red", (d,), "瓯江洪水红色预警（演练）", t[5]))
        return steps

    def inputs(self, start: datetime) -> list[Emit]:
        """What the ops tab shows: station reports (one late), a sensor the rules suppressed
        (``suppressed_by_sensor_spike``) and a rejected input."""
        a, b, c, _ = (list(self.townships) * 4)[:4]
        out: list[Emit] = []
        for station, town, at in (
            ("R0001", a, start),
            ("R0002", b, start),
            ("R0003", c, start - timedelta(minutes=30)),  # late: stale once the others report
        ):
            obs = RainObservation(station_id=station, observed_at=at, rain_mm=4.2, township_code=town)
            out.append(Emit(tn.OBS_RAIN, station, obs.model_dump_json().encode()))
        spiked = HazardAssessment(
            hazard="rainstorm",
            township_code=b,
            source_id="R0002",
            assessed_at=start,
            level="none",
            rule_id="rain_1h",
            certainty="Unlikely",
            evidence=(Evidence(station_id="R0002", metric="suppressed_by_sensor_spike", value=3.0),),
        )
        out.append(Emit(tn.ASSESSMENTS, spiked.key, spiked.model_dump_json().encode()))
        rejected = RejectedRecord(
            source="obs.rain[0]@17",
            reason="implausible_value",
            detail="rain_mm 412.0 over 60 s exceeds 400 mm/h",
            field="rain_mm",
            received_at=start,
            raw='{"station_id":"R0009"}',
        )
        out.append(Emit(tn.OBS_REJECTED, "obs.rain", rejected.model_dump_json().encode()))
        return out

    def __call__(self, name: str, speed: float) -> None:
        self.started.append((name, speed))
        self.done.clear()
        task = asyncio.get_running_loop().create_task(self._run(speed))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run(self, speed: float) -> None:
        step_s = 0.0 if speed <= 0 else 1.0 / speed
        start = self.now()
        if self.with_inputs:
            await self.bus.publish_many(self.inputs(start))
        for step in self.script(start):
            if isinstance(step, WarningMessage):
                await self.bus.publish_many([warning_emit(step)])
                self.emitted[step.message_id] = time.time()
            else:
                key = f"{step.manual.hazard}:{step.manual.township_codes[0]}" if step.manual else "x:0"
                await self.bus.publish(tn.COMMANDS, key, step.model_dump_json().encode())
            if step_s:
                await asyncio.sleep(step_s)
        self.done.set()


def publish_all(bus: Bus, messages: Iterable[WarningMessage]) -> Any:
    return bus.publish_many([warning_emit(m) for m in messages])
