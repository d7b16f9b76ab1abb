"""The browser tests' fixtures: a console with the rules lifecycle in a server thread, and Chromium.

The browser is Debian's ``/usr/bin/chromium`` (Playwright's own builds are not downloadable
here). Without it the tests skip, unless ``EARLYWARN_REQUIRE_BROWSER=1`` makes that a failure.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from schemas import topics as tn
from services.common.bus.memory import MemoryBus
from services.common.bus.processor import run_on_bus
from services.console.app import create_app
from services.console.settings import ConsoleSettings
from services.console.testing import ReplayStub, load_geo_registry, pick_townships, write_users
from services.rules.processors import LifecycleProcessor

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "e2e"


def _require_browser() -> None:
    if CHROMIUM.exists():
        return
    reason = f"{CHROMIUM} is not installed (apt-get install -y chromium)"
    if os.environ.get("EARLYWARN_REQUIRE_BROWSER") == "1":
        pytest.fail(f"EARLYWARN_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


class LiveConsole:
    """uvicorn + console + rules lifecycle on a MemoryBus, in their own thread and loop."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.base_url = ""
        self.stub: ReplayStub | None = None
        self.townships: list[str] = []
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self.run, name="e2e-console", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    def start(self) -> None:
        self._thread.start()

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to the test through .error
            self.error = exc
            self.ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        bus = MemoryBus()
        await bus.ensure_topics(tn.ALL_TOPICS, 4)
        registry = load_geo_registry()
        self.townships = pick_townships(registry)
        lifecycle = asyncio.create_task(run_on_bus(bus, LifecycleProcessor(), self._stop))
        self.stub = ReplayStub(bus, townships=self.townships, manual_by=("li.na", "duty_officer"))
        settings = ConsoleSettings(
            users_file=write_users(self.workdir / "users.toml"),
            audit_file=self.workdir / "audit.jsonl",
            session_secret=SecretStr("e2e-secret-0123456789abcdef"),
            tick_interval_s=0.5,
        )
        app = create_app(bus, registry, settings, start_replay=self.stub, metrics_registry=CollectorRegistry())
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1))
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        deadline = time.monotonic() + 15
        while not server.started:
            if time.monotonic() > deadline:
                raise TimeoutError("uvicorn did not start")
            await asyncio.sleep(0.01)
        self.ready.set()
        await self._stop.wait()
        server.should_exit = True
        await serving
        await lifecycle

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)


@pytest.fixture(scope="module")
def live_console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveConsole]:
    _require_browser()
    live = LiveConsole(tmp_path_factory.mktemp("e2e-console"))
    live.start()
    assert live.ready.wait(20), "console did not start"
    if live.error is not None:
        raise live.error
    yield live
    live.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture(scope="session")
def _fresh_artifacts() -> Path:
    """``test-artifacts/e2e/`` emptied of the previous run's screenshots, once per session."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in (*ARTIFACTS.glob("*.png"), *ARTIFACTS.glob("*.json")):
        old.unlink()
    return ARTIFACTS


@pytest.fixture
def artifacts(_fresh_artifacts: Path) -> Path:
    return _fresh_artifacts


def wait_until(predicate: Any, timeout_s: float = 5.0, interval_s: float = 0.02) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(interval_s)
