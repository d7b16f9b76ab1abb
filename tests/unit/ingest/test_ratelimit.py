"""Token buckets per key: burst, refill, Retry-After, independence of keys."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.ingest.ratelimit import KeyedRateLimiter, TokenBucket


def test_burst_then_refused_with_the_wait_until_the_next_token() -> None:
    bucket = TokenBucket(rate_per_s=2.0, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.5)
    assert bucket.take(0.25) == pytest.approx(0.25)
    assert bucket.take(0.5) == 0.0
    assert bucket.take(0.5) == pytest.approx(0.5)


def test_refill_stops_at_burst() -> None:
    bucket = TokenBucket(rate_per_s=10.0, burst=2, now=0.0)
    assert bucket.tokens(1000.0) == 2.0
    assert [bucket.take(1000.0) for _ in range(3)][-1] > 0


def test_refused_requests_cost_nothing_and_time_never_runs_backwards() -> None:
    bucket = TokenBucket(rate_per_s=1.0, burst=1, now=10.0)
    assert bucket.take(10.0) == 0.0
    for _ in range(5):
        assert bucket.take(10.5) == pytest.approx(0.5)
    assert bucket.take(9.0) > 0  # an older clock reading gives nothing back
    assert bucket.take(11.0) == 0.0


def test_cost_above_burst_can_never_be_served() -> None:
    assert math.isinf(TokenBucket(1.0, 2, 0.0).take(0.0, cost=3))


def test_invalid_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="rate_per_s > 0"):
        TokenBucket(0.0, 1, 0.0)
    with pytest.raises(ValueError, match="burst >= 1"):
        TokenBucket(1.0, 0, 0.0)


def test_keys_have_independent_buckets_and_a_changed_limit_gets_a_fresh_one() -> None:
    now = [0.0]
    limiter = KeyedRateLimiter(clock=lambda: now[0])
    assert limiter.take("a", 1.0, 1) == 0.0
    assert limiter.take("a", 1.0, 1) > 0
    assert limiter.take("b", 1.0, 1) == 0.0
    assert limiter.take("a", 5.0, 3) == 0.0  # keys reloaded with a higher limit
    now[0] = 1.0
    assert limiter.take("a", 5.0, 3) == 0.0


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(min_value=0.1, max_value=100.0),
    burst=st.integers(min_value=1, max_value=50),
    gaps=st.lists(st.floats(min_value=0.0, max_value=2.0), min_size=1, max_size=200),
)
def test_never_more_than_burst_plus_rate_times_elapsed(rate: float, burst: int, gaps: list[float]) -> None:
    bucket = TokenBucket(rate, burst, now=0.0)
    now, granted = 0.0, 0
    for gap in gaps:
        now += gap
        wait = bucket.take(now)
        if wait == 0.0:
            granted += 1
        else:
            assert wait > 0
            # waiting exactly as told is enough
            probe = TokenBucket(rate, burst, now=0.0)
            probe._tokens, probe._updated = bucket._tokens, bucket._updated
            assert probe.take(now + wait + 1e-9) == 0.0
        assert granted <= burst + rate * now + 1e-6
