"""The rate limiter, retry policy and readiness model, on a fake clock (no real waiting)."""

from __future__ import annotations

import asyncio
import itertools
import math
import random

import pytest

from batch_export.platform.limits import Grant, LimitSearch, RateLimiter, RetryPolicy
from batch_export.platform.overload import PROBE_WINDOW
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


class YieldingTime(FakeTime):
    """A fake clock whose sleeps also let other tasks run, so callers can interleave."""

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)  # first, so a caller just served sees the time it was served at
        self.now += max(0.0, seconds)


async def _served_order(limiter: RateLimiter, callers: list[tuple[str, bool]]) -> list[str]:
    """Start every caller at once; the names in the order the limiter served them."""
    served: list[str] = []

    async def one(name: str, urgent: bool) -> None:
        await limiter.acquire(urgent)
        served.append(name)

    await asyncio.gather(*(one(name, urgent) for name, urgent in callers))
    return served


async def test_urgent_callers_are_served_before_waiting_submits() -> None:
    """Checks (urgent) overtake the submits queued with them; each class stays FIFO."""
    time = FakeTime()
    limiter = RateLimiter(10, burst=1, clock=time.clock, sleep=time.sleep)
    callers = [(f"post{i}", False) for i in range(5)] + [("get0", True), ("get1", True)]
    order = await _served_order(limiter, callers)
    assert order == ["post0", "get0", "get1", "post1", "post2", "post3", "post4"]


async def test_an_old_submit_is_not_overtaken_for_ever() -> None:
    """A submit that has waited longer than ``patience`` goes before a check that just came."""
    time = YieldingTime()
    limiter = RateLimiter(1, burst=1, clock=time.clock, sleep=time.sleep)
    served: list[str] = []

    async def post(i: int) -> None:
        await limiter.acquire()
        served.append(f"post{i}")

    async def late_check() -> None:
        while time.now < 1000.0 + RateLimiter.patience + 1.5:
            await asyncio.sleep(0)
        await limiter.acquire(urgent=True)
        served.append("get")

    await asyncio.gather(*(post(i) for i in range(5)), late_check())
    assert served.index("get") > served.index("post3")  # FIFO behind the old backlog
    assert served[:3] == ["post0", "post1", "post2"]


async def test_slots_are_granted_when_due_so_a_pause_voids_nothing() -> None:
    """A 429 while callers wait holds them all; afterwards they go at the pace, not in a burst."""
    time = YieldingTime()
    limiter = RateLimiter(10, burst=4, clock=time.clock, sleep=time.sleep)
    granted: list[float] = []

    async def one() -> None:
        await limiter.acquire()
        granted.append(time.now)

    async def throttle_after_first() -> None:
        while not granted:
            await asyncio.sleep(0)
        limiter.on_throttled(2.0)

    await asyncio.gather(*(one() for _ in range(12)), throttle_after_first())
    after = [t for t in granted if t > 1000.0]
    assert after and min(after) >= 1002.0
    gaps = [b - a for a, b in itertools.pairwise(after)]
    assert all(gap >= 0.1 - 1e-9 for gap in gaps)  # one slot, then the pace: no burst


async def test_a_cancelled_caller_gives_its_turn_to_the_next() -> None:
    """A waiter cancelled in the queue is skipped; nobody after it is stuck."""
    time = YieldingTime()
    limiter = RateLimiter(10, burst=1, clock=time.clock, sleep=time.sleep)
    await limiter.acquire()
    doomed = asyncio.ensure_future(limiter.acquire())
    waiting = asyncio.ensure_future(limiter.acquire())
    await asyncio.sleep(0)
    doomed.cancel()
    assert (await waiting).pace == 10.0
    assert limiter.waiting == 0


async def test_no_task_outlives_the_last_cancelled_caller() -> None:
    """Every waiter cancelled (a cancelled run): the limiter leaves no task behind, and still works."""
    limiter = RateLimiter(2, burst=1)
    await limiter.acquire()
    before = set(asyncio.all_tasks())
    waiters = [asyncio.ensure_future(limiter.acquire()) for _ in range(3)]
    await asyncio.sleep(0)
    assert len(asyncio.all_tasks() - before) == 4  # three callers and the dispatcher
    for waiter in waiters:
        waiter.cancel()
    await asyncio.gather(*waiters, return_exceptions=True)
    await asyncio.sleep(0)
    assert asyncio.all_tasks() - before == set()
    assert (await asyncio.wait_for(limiter.acquire(urgent=True), 5)).pace == 2.0


async def test_the_limiter_charges_a_refusal_to_the_pace_it_was_granted_at() -> None:
    """acquire() returns the pace; a refusal reported with an older, faster pace is not news twice."""
    time = FakeTime()
    limiter = RateLimiter(None, burst=1, clock=time.clock, sleep=time.sleep)
    paces = set()
    while limiter.rate < 160.0:
        paces.add((await limiter.acquire()).pace)
    assert {20.0, 40.0, 80.0} <= paces
    limiter.on_throttled(1.0, sent_rate=80.0)  # the overshoot happened at 80, not at 160
    assert limiter.search is not None and limiter.search.high is not None
    assert limiter.search.high <= 80.0  # at most the refused pace (less: what was accepted)
    slower = limiter.rate
    assert slower < 80.0
    limiter.on_throttled(1.0, sent_rate=160.0)  # sent before the slow-down: no news
    limiter.on_throttled(None, sent_rate=80.0)
    assert limiter.rate == slower
    assert limiter.throttled == 3 and limiter.paused


async def _send(limiter: RateLimiter) -> Grant:
    """One request through the limiter: its slot, then its time on the wire."""
    return await limiter.sending(await limiter.acquire())


def _probing(limiter: RateLimiter) -> bool:
    """Whether the limiter waits for an answer to a request sent after its pause."""
    return limiter.overload.probing


async def test_a_refusal_after_a_pause_is_overload_and_backs_off_without_slowing() -> None:
    """Refused even right after a pause: the pause doubles (to a cap), the pace stays put.

    A bucket or window that refused for pace has room after the pause; a
    platform that still refuses is overloaded, which says nothing about the
    account's limit (charged to the search, every probe would step it down).
    """
    time = FakeTime()
    limiter = RateLimiter(None, burst=2, clock=time.clock, sleep=time.sleep)
    before = await _send(limiter)
    limiter.on_throttled(None, before.pace, before.at)  # the first refusal: the search's news
    pace = limiter.rate
    assert limiter.overload.probing and limiter.search is not None
    pauses = []
    for _ in range(7):
        probe = await _send(limiter)  # held until the pause is over
        limiter.on_throttled(None, probe.pace, probe.at)
        assert limiter.rate == pace  # not the search's news
        pauses.append(round(limiter.pause_left, 6))
    assert pauses == [2.0, 4.0, 8.0, 16.0, 16.0, 16.0, 16.0]
    assert limiter.overload.refusals == 7 and limiter.throttled == 8
    late = await _send(limiter)
    limiter.overload.answered(late.at)  # the platform takes requests again
    assert not _probing(limiter)
    # A refusal from now on is news again, and the next pause is one second.
    after = await _send(limiter)
    limiter.on_throttled(None, after.pace, after.at)
    assert limiter.rate < pace
    assert limiter.pause_left == pytest.approx(1.0)


async def test_requests_of_one_probe_round_double_the_pause_once() -> None:
    """Several requests sent after one pause and refused: one doubling, all counted as overload."""
    time = FakeTime()
    limiter = RateLimiter(10.0, burst=4, clock=time.clock, sleep=time.sleep)
    first = await _send(limiter)
    limiter.on_throttled(None, first.pace, first.at)
    round_ = [await _send(limiter) for _ in range(3)]  # all after the pause
    for grant in round_:
        limiter.on_throttled(None, grant.pace, grant.at)
    assert limiter.pause_left == pytest.approx(2.0)  # doubled once
    assert limiter.overload.refusals == 3


async def test_an_answer_from_before_the_pause_does_not_end_the_probing() -> None:
    """Only a request sent after the pause proves the platform takes requests again."""
    time = FakeTime()
    limiter = RateLimiter(10.0, burst=4, clock=time.clock, sleep=time.sleep)
    early = await _send(limiter)
    refused = await _send(limiter)
    limiter.on_throttled(None, refused.pace, refused.at)
    limiter.overload.answered(early.at)  # sent before the pause began: no news about now
    assert _probing(limiter)
    probe = await _send(limiter)
    limiter.overload.answered(probe.at)
    assert not _probing(limiter)


async def test_a_caller_that_never_reports_answers_is_not_stuck_probing() -> None:
    """Without ``answered``, a round of probes ends PROBE_WINDOW after its pause."""
    time = FakeTime()
    limiter = RateLimiter(None, burst=2, clock=time.clock, sleep=time.sleep)
    first = await _send(limiter)
    limiter.on_throttled(None, first.pace, first.at)
    pace = limiter.rate
    await _send(limiter)  # the probe, never reported
    time.now += PROBE_WINDOW
    assert not _probing(limiter)
    late = await _send(limiter)
    limiter.on_throttled(None, late.pace, late.at)  # the search's news again
    assert limiter.rate < pace and limiter.overload.refusals == 0


def _search_against(limit: float, search: LimitSearch, seconds: int) -> tuple[int, int]:
    """Drive ``search`` against a hidden limit, one busy second at a time: (refusals, news)."""
    refusals = news = 0
    for _ in range(seconds):
        if search.rate > limit * 1.0001:
            refusals += 1
            news += search.throttled(search.rate)
        else:
            search.busy(1.0)
    return refusals, news


@pytest.mark.parametrize("limit", [3.0, 20.0, 37.0, 100.0, 450.0])
def test_limit_search_converges_on_a_hidden_limit(limit: float) -> None:
    """The search settles within ``precision`` under a hidden limit after a handful of refusals."""
    search = LimitSearch()
    refusals, _ = _search_against(limit, search, 90)
    assert search.settled
    assert limit / LimitSearch.precision <= search.rate <= limit * 1.0001
    # Under the starting pace it halves down first: a few refusals more.
    assert refusals <= (8 if limit < LimitSearch.initial_rate else 4)


def test_limit_search_reprobes_and_finds_a_risen_limit() -> None:
    """After ``reprobe_seconds`` settled it looks higher again, and doubles up to a risen limit."""
    search = LimitSearch()
    _search_against(50.0, search, 60)
    assert search.settled and search.rate <= 50.0
    _search_against(200.0, search, int(LimitSearch.reprobe_seconds) + 90)
    assert 200.0 / LimitSearch.precision <= search.rate <= 200.0


def test_a_refusal_is_charged_to_the_pace_its_request_was_sent_at() -> None:
    """Answers to requests sent at a pace already refused carry no news and change nothing."""
    search = LimitSearch()
    for _ in range(4):  # 20 -> 320 req/s
        search.busy(0.5)
    assert search.rate == 320.0
    assert search.throttled(160.0)  # the first refusal: sent at 160, not at 320
    assert search.high == 160.0
    after = search.rate
    assert after < 160.0
    assert not search.throttled(160.0)  # more answers from the same overshoot
    assert not search.throttled(320.0)
    assert search.rate == after
    assert search.throttled(after)  # refused at the new pace too: that is news
    assert search.rate < after


def test_a_remembered_limit_is_confirmed_not_trusted() -> None:
    """Started from a remembered pace, the search settles there once it runs clean."""
    search = LimitSearch(start=80.0)
    assert search.rate == 80.0 and search.low is None  # not settled: not yet confirmed
    steps = math.ceil(LimitSearch.confirm_seconds / 0.5)
    settled = [search.busy(0.5) for _ in range(steps)]
    assert settled == [False] * (steps - 1) + [True]
    assert search.settled and search.rate == 80.0


def test_a_remembered_limit_that_fell_is_found_without_a_storm() -> None:
    """Remembered 100 req/s on an account now limited to 30: a few refusals, then under 30."""
    search = LimitSearch(start=100.0)
    refusals, news = _search_against(30.0, search, 60)
    assert refusals == news <= 8
    assert search.settled and 30.0 / LimitSearch.precision <= search.rate <= 30.0


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
