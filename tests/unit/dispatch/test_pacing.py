"""Token bucket (driven by a hand clock) and the red-first priority gate."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from services.dispatch.channels.pacing import PriorityPacer, TokenBucket


class HandClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_token_bucket_rate_and_capacity() -> None:
    clock = HandClock()
    bucket = TokenBucket(rate_per_s=200, capacity=100, clock=clock)
    assert bucket.take(100)
    assert not bucket.take(1)
    assert bucket.time_until(100) == pytest.approx(0.5)
    clock.t = 0.25
    assert not bucket.take(100)
    assert bucket.take(50)
    clock.t = 10.0
    assert bucket.time_until(100) == 0.0  # refills to capacity, never beyond
    assert bucket.take(100)
    assert not bucket.take(1)
    with pytest.raises(ValueError, match="exceeds"):
        bucket.time_until(101)


async def test_red_preempts_queued_lower_levels() -> None:
    pacer = PriorityPacer(TokenBucket(rate_per_s=50, capacity=10), concurrency=1)
    order: list[str] = []

    async def job(label: str) -> str:
        order.append(label)
        await asyncio.sleep(0)
        return label

    def later(label: str) -> Callable[[], Awaitable[str]]:
        return lambda: job(label)

    yellow = [asyncio.create_task(pacer.run(2, 10, later(f"yellow{i}"))) for i in range(4)]
    await asyncio.sleep(0.01)  # yellow0 goes at once; the rest wait for tokens (0.2 s each)
    red = asyncio.create_task(pacer.run(4, 10, lambda: job("red")))
    await asyncio.gather(*yellow, red)
    assert order[0] == "yellow0"
    assert order[1] == "red"
    assert order[2:] == ["yellow1", "yellow2", "yellow3"]


async def test_cancelled_waiter_does_not_block_the_queue() -> None:
    pacer = PriorityPacer(TokenBucket(rate_per_s=100, capacity=10), concurrency=1)

    async def noop() -> int:
        return 1

    assert await pacer.run(1, 10, noop) == 1
    waiting = asyncio.create_task(pacer.run(1, 10, noop))
    await asyncio.sleep(0.01)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert await asyncio.wait_for(pacer.run(1, 10, noop), 1.0) == 1
