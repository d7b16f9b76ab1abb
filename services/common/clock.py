"""Clocks: services ask a clock for "now" so that replays can run on virtual time.

``SystemClock`` is the wall clock. ``VirtualClock`` is advanced by the replay driver; a
``speed`` of N makes ``sleep_until`` wait 1/N of the virtual interval in real time, and
``speed=None`` does not wait at all (as fast as possible).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...

    async def sleep_until(self, when: datetime) -> None: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, when: datetime) -> None:
        delay = (when - self.now()).total_seconds()
        if delay > 0:
            await asyncio.sleep(delay)


class VirtualClock:
    def __init__(self, start: datetime, speed: float | None = None) -> None:
        if start.tzinfo is None:
            msg = "VirtualClock needs an aware start time"
            raise ValueError(msg)
        if speed is not None and speed <= 0:
            msg = "speed must be positive (or None for as fast as possible)"
            raise ValueError(msg)
        self._now = start.astimezone(UTC)
        self.speed = speed

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        if delta < timedelta(0):
            msg = "virtual time never goes backwards"
            raise ValueError(msg)
        self._now += delta

    def reset(self, start: datetime) -> None:
        """Start a new replay at ``start`` (the one place virtual time may go back)."""
        if start.tzinfo is None:
            msg = "VirtualClock needs an aware start time"
            raise ValueError(msg)
        self._now = start.astimezone(UTC)

    async def sleep_until(self, when: datetime) -> None:
        if when <= self._now:
            return
        if self.speed is not None:
            await asyncio.sleep((when - self._now).total_seconds() / self.speed)
        self._now = when
