"""Per-key rate limits: a token bucket per API key.

A bucket holds up to ``burst`` tokens and refills at ``rate_per_s`` tokens a second. A
request takes one token; with none left it is refused and told how long until one is
available (HTTP 429 with ``Retry-After``)::

    tokens
    burst ┤████▇▆▅▄▃▂▁ ·····················  refill: +rate_per_s per second
          │           ▁▂▃▄▅▆▇████             take: -1 per request, refused below 1
        0 ┼──────────────────────────▶ time

The clock is injected (monotonic seconds), so tests drive it by hand. Single-threaded by
design: the HTTP API calls it from its event loop only.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    __slots__ = ("_tokens", "_updated", "burst", "rate_per_s")

    def __init__(self, rate_per_s: float, burst: float, now: float) -> None:
        if rate_per_s <= 0 or burst < 1:
            msg = f"token bucket needs rate_per_s > 0 and burst >= 1, got {rate_per_s}, {burst}"
            raise ValueError(msg)
        self.rate_per_s = rate_per_s
        self.burst = float(burst)
        self._tokens = float(burst)
        self._updated = now

    def tokens(self, now: float) -> float:
        """Tokens available at ``now`` (without taking any)."""
        elapsed = max(0.0, now - self._updated)
        return min(self.burst, self._tokens + elapsed * self.rate_per_s)

    def take(self, now: float, cost: float = 1.0) -> float:
        """Take ``cost`` tokens if there are that many: returns 0.0. Else takes nothing and
        returns the seconds until there will be (``inf`` if ``cost`` exceeds the burst)."""
        available = self.tokens(now)
        self._updated = max(self._updated, now)
        if available >= cost:
            self._tokens = available - cost
            return 0.0
        self._tokens = available
        if cost > self.burst:
            return float("inf")
        return (cost - available) / self.rate_per_s


class KeyedRateLimiter:
    """One ``TokenBucket`` per key id, created on first use with that key's rate and burst.

    A key whose configured rate or burst changed (keys reloaded) gets a fresh bucket.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def take(self, key_id: str, rate_per_s: float, burst: int, cost: float = 1.0) -> float:
        """0.0 when the request may proceed, else the seconds to wait before retrying."""
        now = self._clock()
        bucket = self._buckets.get(key_id)
        if bucket is None or bucket.rate_per_s != rate_per_s or bucket.burst != burst:
            bucket = TokenBucket(rate_per_s, burst, now)
            self._buckets[key_id] = bucket
        return bucket.take(now, cost)
