"""The embedded session of ``earlywarn run``: console on real loopback HTTP, replays started
from the console, dispatch against the gateway simulators, all on one memory bus."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest

from schemas import topics
from schemas.coverage import CoverageReport
from services.common.geo.registry import GeoRegistry, default_registry
from services.common.metrics import Metrics
from services.console.testing import DEFAULT_PASSWORD
from services.embedded import (
    DispatchSummary,
    EmbeddedSession,
    ReplayBusyError,
    console_attachment,
    dispatch_attachment,
)
from services.ingest.simulate.scenario import find_scenario, load_scenario
from services.scenario_run import RunResult, scenario_processors, trim


@pytest.fixture(scope="module")
def registry() -> GeoRegistry:
    return default_registry()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_http(url: str, timeout_s: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    async with httpx.AsyncClient() as client:
        while True:
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if loop.time() > deadline:
                raise TimeoutError(url)
            await asyncio.sleep(0.1)


async def test_console_starts_a_replay_and_dispatch_reports_coverage(registry: GeoRegistry) -> None:
    outcomes: list[tuple[str, RunResult | BaseException]] = []
    finished = asyncio.Event()

    def on_replay(name: str, outcome: RunResult | BaseException) -> None:
        outcomes.append((name, outcome))
        finished.set()

    session = EmbeddedSession(
        registry,
        lambda: scenario_processors(registry, Metrics()),
        on_replay=on_replay,
        console_replay_hours=1.0,
    )
    port = free_port()
    summary = DispatchSummary()
    coverage_sub = await session.bus.subscribe([topics.COVERAGE], group="test-coverage")
    await session.start(
        [
            dispatch_attachment(registry, summary, app_subscriber_share=0.0005),
            console_attachment(registry, port=port, start_replay=session.start_replay),
        ]
    )
    try:
        base = f"http://127.0.0.1:{port}"
        await wait_http(f"{base}/healthz")
        # a first replay from the command line's side: convective cells raise warnings
        sc = trim(load_scenario(find_scenario("convective-afternoon", None)), 2.5)
        sc = sc.model_copy(update={"stations": sc.stations.model_copy(update={"sample_fraction": 0.3})})
        first = await session.replay(sc, None)
        assert first.messages, "the convective afternoon raises warnings"

        async with httpx.AsyncClient(base_url=base, timeout=10.0) as client:
            anonymous = (await client.get("/api/csrf")).json()["csrf"]
            login = await client.post(
                "/api/login",
                json={"username": "li.na", "password": DEFAULT_PASSWORD},
                headers={"X-CSRF-Token": anonymous},
            )
            assert login.status_code == 200, login.text
            csrf = login.json()["csrf"]
            started = await client.post(
                "/api/replay", json={"name": "quiet-day", "speed": 0}, headers={"X-CSRF-Token": csrf}
            )
            assert started.status_code == 202, started.text
            # one replay at a time: a second start is refused with the reason
            again = await client.post(
                "/api/replay", json={"name": "quiet-day", "speed": 0}, headers={"X-CSRF-Token": csrf}
            )
            assert again.status_code >= 400
            assert "already running" in again.text
        await asyncio.wait_for(finished.wait(), 300)
        loop = asyncio.get_running_loop()
        name, outcome = outcomes[0]
        assert name == "quiet-day"
        assert isinstance(outcome, RunResult), outcome
        assert outcome.counts.accepted + outcome.counts.rejected == outcome.counts.received
        assert outcome.messages == []  # a quiet day issues no warning
        with pytest.raises(ReplayBusyError):
            async with session._busy:  # the lock is what 'busy' means
                session.start_replay("quiet-day", 0)

        # dispatch served the first replay's warnings and published coverage
        reports: list[CoverageReport] = []
        deadline = loop.time() + 30
        while not reports and loop.time() < deadline:
            records = await coverage_sub.getmany(timeout_s=0.5, max_records=1000)
            reports += [CoverageReport.model_validate_json(r.value) for r in records]
        assert reports, "dispatch published no coverage report"
    finally:
        await coverage_sub.close()
        await session.close()
    assert summary.stats.get("warnings_admitted", 0) > 0
