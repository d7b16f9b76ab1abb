"""Services that ride along on an embedded (memory://) scenario run: dispatch and the console.

Each builder returns an ``Attachment`` for ``services.scenario_run.ScenarioRun``: a coroutine
given the run's bus, virtual clock and stop event, which serves until ``stop`` is set.

- ``dispatch_attachment``: the local gateway simulators (SMS primary and secondary, emergency
  broadcast, app push) on loopback, and the dispatch service against them, with the replay's
  virtual clock for expiry. The audience is scaled down (``app_subscriber_share``) so a
  laptop replays a typhoon at hundreds × real time; coverage is still measured per township.
- ``console_attachment``: the duty officer's console on ``host:port`` with the demo users
  (``services.console.testing.DEFAULT_USERS``) unless a users file is given.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from schemas import topics
from schemas.warning import WarningMessage
from services.common.bus.base import Bus
from services.common.bus.memory import MemoryBus
from services.common.bus.processor import Processor
from services.common.clock import VirtualClock
from services.common.geo.registry import GeoRegistry
from services.common.logging import get_logger
from services.ingest.simulate.scenario import Scenario, find_scenario, load_scenario, scenario_files
from services.scenario_run import RETENTION_BYTES, Attachment, RunResult, ScenarioRun, TickProgress, trim

log = get_logger(__name__)


@dataclass
class DispatchSummary:
    """Filled when the dispatch attachment stops (for the run's closing report)."""

    gateways: dict[str, str] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)


def dispatch_attachment(
    registry: GeoRegistry,
    summary: DispatchSummary | None = None,
    *,
    app_subscriber_share: float = 0.002,
    sms_tps: float = 500.0,
) -> Attachment:
    from services.dispatch.gateways import run_gateway
    from services.dispatch.gateways.broadcast import create_broadcast_gateway
    from services.dispatch.gateways.push import create_push_gateway
    from services.dispatch.gateways.sms import create_sms_gateway
    from services.dispatch.orchestrator import DispatchSettings
    from services.dispatch.service import run_dispatch, settings_for_gateways
    from services.dispatch.targeting import AudienceData, RegistryLookup

    out = summary if summary is not None else DispatchSummary()

    async def attach(bus: Bus, clock: VirtualClock, stop: asyncio.Event) -> object:
        stoppers: list[Callable[[], None]] = []
        try:
            urls: dict[str, str] = {}
            for name, app in (
                ("sms", create_sms_gateway()),
                ("sms_secondary", create_sms_gateway()),
                ("broadcast", create_broadcast_gateway()),
                ("push", create_push_gateway()),
            ):
                url, stop_gateway = await asyncio.to_thread(run_gateway, app)
                stoppers.append(stop_gateway)
                urls[name] = url
            out.gateways = urls
            base = DispatchSettings(audience=AudienceData(app_subscriber_share=app_subscriber_share))
            settings = settings_for_gateways(
                sms_url=urls["sms"],
                sms_secondary_url=urls["sms_secondary"],
                broadcast_url=urls["broadcast"],
                push_url=urls["push"],
                sms_tps=sms_tps,
                base=base,
            )
            stats = await run_dispatch(bus, stop, settings, RegistryLookup(registry), clock=clock)
            out.stats = {k: v for k, v in vars(stats).items() if isinstance(v, int)}
            return stats
        finally:
            for stop_gateway in stoppers:
                await asyncio.to_thread(stop_gateway)

    return attach


def console_attachment(
    registry: GeoRegistry,
    *,
    host: str = "127.0.0.1",
    port: int = 8780,
    users_file: Path | None = None,
    audit_file: Path | None = None,
    secret: str = "earlywarn-embedded-console-secret",
    start_replay: Callable[[str, float], object] | None = None,
) -> Attachment:
    from services.console.__main__ import serve_console
    from services.console.app import create_app
    from services.console.settings import ConsoleSettings
    from services.console.testing import write_users

    async def attach(bus: Bus, clock: VirtualClock, stop: asyncio.Event) -> object:
        workdir = Path(tempfile.mkdtemp(prefix="earlywarn-console-"))
        users = users_file or write_users(workdir / "users.toml")
        settings = ConsoleSettings(
            users_file=users,
            audit_file=audit_file or workdir / "audit.jsonl",
            session_secret=SecretStr(secret),
            replay_scenarios=tuple(path.stem for path in scenario_files(None)),
        )
        app = create_app(
            bus, registry, settings, metrics_registry=CollectorRegistry(), clock=clock, start_replay=start_replay
        )
        log.info("console_serving", url=f"http://{host}:{port}/", users=str(users))
        await serve_console(app, host, port, stop)
        return None

    return attach


class ReplayBusyError(RuntimeError):
    """A replay is already running in this session."""


class EmbeddedSession:
    """A long-lived memory:// pipeline: one bus and clock, services attached once, replays on demand.

    ``earlywarn run`` replays its scenario through a session and keeps it open, so the
    console's "start replay" (``start_replay(name, speed)``) runs further scenarios through
    the same bus, dispatch and console. One replay at a time; rules processors are built
    fresh for each replay (their consumer groups carry on from the bus's committed offsets).
    """

    def __init__(
        self,
        registry: GeoRegistry,
        processors: Callable[[], Sequence[Processor]],
        *,
        partitions: int = 4,
        on_warning: Callable[[WarningMessage], None] | None = None,
        on_replay: Callable[[str, RunResult | BaseException], None] | None = None,
        console_replay_hours: float | None = None,
    ) -> None:
        """``console_replay_hours``: replays started from the console stop after this many hours."""
        self.registry = registry
        self.console_replay_hours = console_replay_hours
        self.processors = processors
        self.bus = MemoryBus(default_partitions=partitions, retention_bytes=RETENTION_BYTES)
        self.clock = VirtualClock(datetime.now(UTC).replace(microsecond=0))
        self.stop = asyncio.Event()
        self.on_warning = on_warning
        self.on_replay = on_replay
        self.results: list[RunResult] = []
        self._tasks: list[asyncio.Task[object]] = []
        self._busy = asyncio.Lock()
        self._background: set[asyncio.Task[RunResult | None]] = set()

    async def start(self, attachments: Sequence[Attachment]) -> None:
        await self.bus.ensure_topics(topics.ALL_TOPICS, self.bus.default_partitions)
        for attach in attachments:
            self._tasks.append(asyncio.create_task(_awaited(attach(self.bus, self.clock, self.stop))))

    @property
    def busy(self) -> bool:
        return self._busy.locked()

    async def replay(
        self,
        scenario: Scenario,
        speed: float | None,
        progress: Callable[[TickProgress], None] | None = None,
    ) -> RunResult:
        if self.busy:
            raise ReplayBusyError("a replay is already running; wait for it to finish")
        async with self._busy:
            run = ScenarioRun(
                scenario,
                self.registry,
                self.processors(),
                speed=speed,
                bus=self.bus,
                clock=self.clock,
                on_warning=self.on_warning,
            )
            result = await run.run(progress)
            self.results.append(result)
            return result

    def start_replay(self, name: str, speed: float) -> None:
        """The console's hook: load ``name`` and replay it in the background (speed 0 = lockstep)."""
        if self.busy:
            raise ReplayBusyError("a replay is already running; wait for it to finish")
        scenario = trim(load_scenario(find_scenario(name, None)), self.console_replay_hours)

        async def background() -> RunResult | None:
            try:
                result = await self.replay(scenario, speed if speed > 0 else None)
            except Exception as exc:  # reported, never raised into the event loop
                log.exception("replay_failed", scenario=name)
                if self.on_replay is not None:
                    self.on_replay(name, exc)
                return None
            if self.on_replay is not None:
                self.on_replay(name, result)
            return result

        task = asyncio.get_running_loop().create_task(background())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        self.stop.set()
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, *self._tasks, return_exceptions=True)
        await self.bus.stop()


async def _awaited(awaitable: Awaitable[object]) -> object:
    return await awaitable
