"""The rate limiter, retry policy and readiness model, on a fake clock (no real waiting)."""

from __future__ import annotations

import random

import pytest

from batch_export.platform.limits import LimitSearch, RateLimiter, RetryPolicy
from batch_export.platform.responses import parse_retry_after
from batch_export.run.scheduling import ReadinessModel


class FakeTime:
    """A clock that only moves when somebody sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


async def test_fixed_rate_spaces_requests() -> None:
    """At 10/s with burst 1, 50 acquisitions take 4.9 s of (fake) time."""
    time = FakeTime()
    limiter = RateLimiter(10, burst=1, clock=time.clock, sleep=time.sleep)
    start = time.now
    for _ in range(50):
        await limiter.acquire()
    assert time.now - start == pytest.approx(4.9)


async def test_burst_lets_a_few_through_at_once() -> None:
    """The first ``burst`` requests go without waiting, then the pace is 1/rate."""
    time = FakeTime()
    limiter = RateLimiter(10, burst=4, clock=time.clock, sleep=time.sleep)
    for _ in range(4):
        await limiter.acquire()
    assert time.now == 1000.0
    await limiter.acquire()
    assert time.now == pytest.approx(1000.1)


async def test_throttle_pauses_everyone_for_retry_after() -> None:
    """A 429 with Retry-After: 2 holds the next request back two seconds."""
    time = FakeTime()
    limiter = RateLimiter(100, burst=1, clock=time.clock, sleep=time.sleep)
    await limiter.acquire()
    limiter.on_throttled(2.0)
    await limiter.acquire()
    assert time.now >= 1002.0


async def test_adaptive_rate_doubles_until_throttled() -> None:
    """Adaptive mode doubles its pace each busy second, then backs off on a 429."""
    time = FakeTime()
    limiter = RateLimiter(None, burst=1, clock=time.clock, sleep=time.sleep)
    start_rate = limiter.rate
    while time.now < 1004.5:
        await limiter.acquire()
    assert limiter.rate >= start_rate * 8  # slow start doubled several times
    before = limiter.rate
    limiter.on_throttled(1.0)
    assert limiter.rate < before
    assert limiter.throttled == 1
    assert "adaptive" in repr(limiter)


def test_limit_search_converges_on_a_hidden_limit() -> None:
    """Against a hidden limit of 100/s, the search settles within 6% under it after few 429s."""
    search = LimitSearch()
    throttles = 0
    for _ in range(200):
        if search.rate > 100.0:
            search.throttled()
            throttles += 1
        else:
            search.busy_second()
    assert 100.0 / LimitSearch.precision * 0.97 <= search.rate <= 100.0
    assert throttles <= 8


def test_invalid_limiter_settings_are_rejected() -> None:
    """A zero or negative rate, or a burst below one, is refused at once."""
    with pytest.raises(ValueError):
        RateLimiter(0)
    with pytest.raises(ValueError):
        RateLimiter(5, burst=0)


def test_retry_delays_are_capped_full_jitter() -> None:
    """Delays stay within [0, min(cap, base * 2^(n-1))]; instant mode makes them zero."""
    policy = RetryPolicy(base_delay=0.5, max_delay=4.0)
    rng = random.Random(1)
    for attempt in range(1, 12):
        delay = policy.delay(attempt, rng)
        assert 0.0 <= delay <= min(4.0, 0.5 * 2 ** (attempt - 1))
    assert RetryPolicy(instant=True).delay(5) == 0.0
    assert policy.gives_up(policy.max_attempts, 0.0)
    assert policy.gives_up(1, policy.max_elapsed)
    assert not policy.gives_up(1, 0.0)


def test_retry_after_parsing() -> None:
    """Retry-After is read as seconds or as an HTTP date; junk is ignored."""
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after("Sat, 28 Nov 2026 12:00:10 GMT", now=1795867200.0) == pytest.approx(
        10.0
    )
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_readiness_model_learns_the_quantile() -> None:
    """Fed outcomes from a uniform 0.5–3 s distribution, the first check settles near its 88th percentile."""
    rng = random.Random(3)
    model = ReadinessModel(rng=random.Random(4))
    for _ in range(3000):
        delay = model.delay(0, 0.0)
        model.observe(1, rng.uniform(0.5, 3.0) <= delay)
    expected = 0.5 + model.targets[0] * 2.5
    assert model.delays[0] == pytest.approx(expected, rel=0.12)
    assert "ReadinessModel" in repr(model)
