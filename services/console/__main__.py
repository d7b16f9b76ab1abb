"""Run the console on its own: ``python -m services.console``.

Production (Kafka)::

    EARLYWARN_CONSOLE_SECRET=… python -m services.console --broker kafka://127.0.0.1:19092 \\
        --users console-users.toml --audit .earlywarn/console-audit.jsonl --port 8780

Demo (everything in one process on ``memory://``: the rules lifecycle applies the console's
commands, "Start replay" publishes a short scripted storm, four users are created)::

    python -m services.console --demo --port 8780
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
import tempfile
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from schemas import topics as tn
from services.common.bus.base import Bus
from services.common.bus.kafka import KafkaBus
from services.common.bus.memory import MemoryBus
from services.common.logging import configure_logging
from services.common.settings import load_settings
from services.console.app import create_app
from services.console.settings import ConsoleSettings
from services.console.testing import (
    DEFAULT_PASSWORD,
    DEFAULT_USERS,
    ReplayStub,
    load_geo_registry,
    pick_townships,
    write_users,
)


async def serve_console(app: FastAPI, host: str, port: int, stop: asyncio.Event) -> None:
    """Serve ``app`` with uvicorn in this event loop until ``stop`` is set."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    await stop.wait()
    server.should_exit = True
    await task


def _secret() -> SecretStr:
    env = os.environ.get("EARLYWARN_CONSOLE_SECRET")
    if env:
        return SecretStr(env)
    fallback = load_settings().signing_secret
    if fallback.get_secret_value() == "change-me-in-production":
        print("warning: using the default signing secret; set EARLYWARN_CONSOLE_SECRET", file=sys.stderr)
    return SecretStr(fallback.get_secret_value().ljust(16, "."))


async def _main(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    registry = load_geo_registry()
    bus: Bus
    tasks: list[asyncio.Task[None]] = []
    start_replay = None
    users_file = args.users
    if args.demo:
        from services.common.bus.processor import run_on_bus
        from services.rules.processors import LifecycleProcessor

        bus = MemoryBus()
        await bus.ensure_topics(tn.ALL_TOPICS, 4)
        tasks.append(asyncio.create_task(run_on_bus(bus, LifecycleProcessor(), stop)))
        start_replay = ReplayStub(bus, townships=pick_townships(registry), manual_by=("li.na", "duty_officer"))
        if users_file is None:
            users_file = write_users(Path(tempfile.mkdtemp(prefix="earlywarn-console-")) / "users.toml")
            print(f"demo users {', '.join(DEFAULT_USERS)} — password: {DEFAULT_PASSWORD!r}")
    else:
        if not args.broker.startswith("kafka://"):
            raise SystemExit("--broker must be kafka://host:port (or use --demo for memory://)")
        bus = KafkaBus(args.broker.removeprefix("kafka://"), namespace=args.namespace)
        await bus.start()
    if users_file is None:
        raise SystemExit("--users is required (see services.console.auth for the format)")
    settings = ConsoleSettings(users_file=users_file, audit_file=args.audit, session_secret=_secret())
    app = create_app(bus, registry, settings, metrics_registry=CollectorRegistry(), start_replay=start_replay)
    print(f"earlywarn console on http://{args.host}:{args.port}/")
    try:
        await serve_console(app, args.host, args.port, stop)
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await bus.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m services.console", description=__doc__.splitlines()[0])
    parser.add_argument("--broker", default=os.environ.get("EARLYWARN_BROKER", "kafka://127.0.0.1:19092"))
    parser.add_argument("--namespace", default="")
    parser.add_argument("--users", type=Path, default=None, help="users TOML file")
    parser.add_argument("--audit", type=Path, default=Path(".earlywarn/console-audit.jsonl"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8780)
    parser.add_argument("--demo", action="store_true", help="memory:// with the lifecycle and a replay stub")
    args = parser.parse_args()
    configure_logging("info", "console")
    asyncio.run(_main(args))


if __name__ == "__main__":
    main()
