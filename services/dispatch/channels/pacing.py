"""Client-side pacing: a token bucket and a priority gate in front of it.

Token bucket (``TokenBucket``)
------------------------------
``capacity`` tokens, refilled continuously at ``rate_per_s``; a request of ``n`` targets
takes ``n`` tokens. Over any interval ``T`` at most ``capacity + rate × T`` targets leave,
so with ``capacity`` ≤ the provider's burst the provider's TPS limit is never tripped.
The clock is injectable (tests drive it by hand).

Priority gate (``PriorityPacer``)
---------------------------------
Callers queue ``(priority, cost)``; whenever a concurrency slot is free and the bucket has
``cost`` tokens, the **highest priority, then oldest** waiter goes. A red warning that
arrives while a yellow fan-out is queued is therefore next, not behind it::

    queue: [yellow#1 yellow#2 yellow#3]   + red#1 arrives
    order out: yellow#1 (already granted), red#1, yellow#2, yellow#3

Preemption is at request granularity: a request already on the wire is never recalled.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class TokenBucket:
    def __init__(
        self, rate_per_s: float, capacity: float, clock: Callable[[], float] = time.monotonic, *, full: bool = True
    ) -> None:
        if rate_per_s <= 0 or capacity <= 0:
            raise ValueError("rate_per_s and capacity must be > 0")
        self.rate_per_s = rate_per_s
        self.capacity = capacity
        self._clock = clock
        self._tokens = capacity if full else 0.0
        self._at = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate_per_s)
        self._at = now

    def time_until(self, n: float) -> float:
        """Seconds until ``n`` tokens are available (0 if now). ``n`` ≤ capacity."""
        if n > self.capacity:
            raise ValueError(f"cost {n} exceeds bucket capacity {self.capacity}")
        self._refill()
        return max(0.0, (n - self._tokens) / self.rate_per_s)

    def take(self, n: float) -> bool:
        """Take ``n`` tokens if available now; False (nothing taken) otherwise."""
        if self.time_until(n) > 0:
            return False
        self._tokens -= n
        return True


class PriorityPacer:
    """Runs awaitables in priority order under a token bucket and a concurrency limit."""

    def __init__(self, bucket: TokenBucket | None, concurrency: int = 4) -> None:
        self.bucket = bucket
        self._free = concurrency
        self._heap: list[tuple[int, int]] = []
        self._seq = itertools.count()
        self._cond = asyncio.Condition()
        self.granted_order: list[int] = []
        """Priorities in the order they were granted (bounded to the last 10,000)."""

    async def run(self, priority: int, cost: int, work: Callable[[], Awaitable[T]]) -> T:
        entry = (-priority, next(self._seq))
        async with self._cond:
            heapq.heappush(self._heap, entry)
            try:
                while True:
                    if self._heap[0] == entry and self._free > 0:
                        wait = self.bucket.time_until(cost) if self.bucket else 0.0
                        if wait <= 0:
                            break
                        try:
                            async with asyncio.timeout(wait):
                                await self._cond.wait()
                        except TimeoutError:
                            pass
                    else:
                        await self._cond.wait()
            except BaseException:
                self._heap.remove(entry)
                heapq.heapify(self._heap)
                self._cond.notify_all()
                raise
            heapq.heappop(self._heap)
            if self.bucket:
                self.bucket.take(cost)
            self._free -= 1
            self.granted_order.append(priority)
            del self.granted_order[:-10_000]
            self._cond.notify_all()
        try:
            return await work()
        finally:
            async with self._cond:
                self._free += 1
                self._cond.notify_all()
