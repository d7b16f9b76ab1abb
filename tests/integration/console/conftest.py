"""A real console: uvicorn on 127.0.0.1 (ephemeral port) over a MemoryBus, in the test's loop."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from schemas import topics as tn
from services.common.bus.memory import MemoryBus
from services.console.app import Console, create_app
from services.console.settings import ConsoleSettings
from services.console.testing import DEFAULT_PASSWORD, ReplayStub, small_registry, write_users


@dataclass
class Wall:
    """The console's wall clock (sessions, audit), movable by tests."""

    offset_s: float = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset_s


@dataclass
class RunningConsole:
    base_url: str
    bus: MemoryBus
    app: FastAPI
    stub: ReplayStub
    audit_path: Path
    wall: Wall
    clients: list[httpx.AsyncClient] = field(default_factory=list)

    @property
    def console(self) -> Console:
        console: Console = self.app.state.console
        return console

    def client(self) -> httpx.AsyncClient:
        client = httpx.AsyncClient(base_url=self.base_url, timeout=10)
        self.clients.append(client)
        return client

    async def signed_in(self, username: str, password: str = DEFAULT_PASSWORD) -> tuple[httpx.AsyncClient, str]:
        """A client with a session; returns it and its CSRF token."""
        client = self.client()
        anonymous = (await client.get("/api/csrf")).json()["csrf"]
        response = await client.post(
            "/api/login", json={"username": username, "password": password}, headers={"X-CSRF-Token": anonymous}
        )
        assert response.status_code == 200, response.text
        return client, response.json()["csrf"]

    def audit(self) -> list[dict[str, Any]]:
        if not self.audit_path.exists():
            return []
        return [json.loads(line) for line in self.audit_path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
async def start_console(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    servers: list[tuple[uvicorn.Server, asyncio.Task[None], RunningConsole]] = []

    async def start(**overrides: Any) -> RunningConsole:
        bus = MemoryBus()
        await bus.ensure_topics(tn.ALL_TOPICS, 4)
        wall = Wall()
        options: dict[str, Any] = {
            "users_file": write_users(tmp_path / "users.toml"),
            "audit_file": tmp_path / "audit.jsonl",
            "session_secret": SecretStr("integration-test-secret-0123456789"),
            "tick_interval_s": 0.2,
            "session_ttl_s": 3600,
        }
        options.update(overrides)
        settings = ConsoleSettings(**options)
        stub = ReplayStub(bus)
        app = create_app(
            bus, small_registry(), settings, start_replay=stub, metrics_registry=CollectorRegistry(), wall_time=wall
        )
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1))
        task = asyncio.create_task(server.serve(sockets=[sock]))
        running = RunningConsole(f"http://127.0.0.1:{port}", bus, app, stub, settings.audit_file, wall)
        servers.append((server, task, running))
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            await asyncio.sleep(0.01)
        await asyncio.wait_for(running.console.runtime.ready.wait(), 5)
        return running

    yield start
    for server, task, running in servers:
        for client in running.clients:
            await client.aclose()
        server.should_exit = True
        await asyncio.wait_for(task, 10)


@pytest.fixture
async def running(start_console: Callable[..., Any]) -> RunningConsole:
    console: RunningConsole = await start_console()
    return console


@dataclass(frozen=True)
class Sse:
    id: int | None
    event: str
    data: dict[str, Any]


async def read_sse(
    client: httpx.AsyncClient,
    until: Callable[[list[Sse]], bool],
    *,
    headers: dict[str, str] | None = None,
    params: dict[str, Any] | None = None,
    timeout_s: float = 5.0,
    on_open: Callable[[], Any] | None = None,
) -> list[Sse]:
    """Read server-sent events until ``until(events)`` holds (or fail after ``timeout_s``)."""
    events: list[Sse] = []

    async def run() -> None:
        async with client.stream("GET", "/api/stream", headers=headers, params=params) as response:
            assert response.status_code == 200, await response.aread()
            assert response.headers["content-type"].startswith("text/event-stream")
            if on_open is not None:
                result = on_open()
                if asyncio.iscoroutine(result):
                    await result
            fields: dict[str, str] = {}
            async for line in response.aiter_lines():
                if line.startswith(":"):
                    continue
                if line == "":
                    if "data" in fields:
                        events.append(
                            Sse(
                                int(fields["id"]) if "id" in fields else None,
                                fields.get("event", "message"),
                                json.loads(fields["data"]),
                            )
                        )
                        if until(events):
                            return
                    fields = {}
                    continue
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")

    await asyncio.wait_for(run(), timeout_s)
    return events
