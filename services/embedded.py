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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from services.common.bus.base import Bus
from services.common.clock import VirtualClock
from services.common.geo.registry import GeoRegistry
from services.common.logging import get_logger
from services.scenario_run import Attachment

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
        )
        app = create_app(bus, registry, settings, metrics_registry=CollectorRegistry(), clock=clock)
        log.info("console_serving", url=f"http://{host}:{port}/", users=str(users))
        await serve_console(app, host, port, stop)
        return None

    return attach
