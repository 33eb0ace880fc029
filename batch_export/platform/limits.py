"""How fast and how often: the client-side rate limiter and the retry policy.

Both read time from an injectable clock and sleep through an injectable
function (the event loop's by default), so tests of pacing and backoff run
without really waiting.

The limiter is a GCRA ("virtual scheduling") token bucket: each caller reserves
the next free slot in first-come-first-served order, in O(1), and sleeps until
it. Bursts are kept small (``burst`` slots) because the platform's limit is per
account and shared with everything else using the token.

Without a configured rate it *finds* the account's limit (``LimitSearch``):
it starts low, doubles while callers queue up and nothing is throttled
("slow start"), then bisects between the fastest rate that worked and the
slowest that was throttled, and settles just under the limit, so that
throttling stays rare. Any 429 pauses
every caller for the server's ``Retry-After``: the limit is shared, so one
throttled request means all of them would be.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..errors import ConfigError

__all__ = ["LimitSearch", "RateLimiter", "RetryPolicy", "check_rate"]


def check_rate(rate: float | None) -> None:
    """Refuse a ``--rate`` that is not a positive number of requests per second."""
    if rate is not None and not rate > 0:
        raise ConfigError(
            "--rate must be greater than 0 (requests per second); "
            "omit it to let the tool find the limit"
        )

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


def _loop_clock() -> float:
    return asyncio.get_running_loop().time()


class LimitSearch:
    """Finds an unknown rate limit by bisection between a working and a throttled rate.

    ``low`` is the fastest rate that ran for ``confirm_seconds`` busy seconds
    without a 429; ``high`` the slowest that drew one. Until the first 429
    the rate doubles every busy second (slow start); after it, each probe is
    the midpoint, until ``high / low`` is within ``precision``, and the
    search settles a little under ``low``. Each probe above the limit costs one
    429 and a pause of the server's Retry-After, so a handful of probes — not a
    sawtooth of them — is what it spends. After ``reprobe_seconds`` at the
    settled rate it tries higher again, in case the account's limit rose.
    """

    initial_rate = 10.0
    min_rate = 0.5
    confirm_seconds = 3
    precision = 1.06
    settle_factor = 0.98
    reprobe_seconds = 60.0

    def __init__(self) -> None:
        self.rate = self.initial_rate
        self.low: float | None = None
        self.high: float | None = None
        self._clean_seconds = 0
        self._settled_seconds = 0

    def __repr__(self) -> str:
        return f"<LimitSearch rate={self.rate:.1f} low={self.low} high={self.high}>"

    @property
    def settled(self) -> bool:
        return (
            self.low is not None
            and self.high is not None
            and self.high <= self.low * self.precision
        )

    def busy_second(self) -> None:
        """A second passed in which callers queued for slots and nothing was throttled."""
        if self.high is None:  # slow start: nothing throttled yet
            self.low = self.rate
            self.rate *= 2.0
            return
        self._clean_seconds += 1
        if self.settled:
            self._settled_seconds += 1
            if self._settled_seconds >= self.reprobe_seconds:
                self.high = (self.low or self.rate) * 1.12  # re-open the search upward
                self._settled_seconds = 0
                self.rate = self._next_probe()
            return
        if self._clean_seconds >= self.confirm_seconds:
            self.low = self.rate
            self._clean_seconds = 0
            self.rate = self._next_probe()

    def throttled(self) -> None:
        """A 429 arrived while running at ``rate``."""
        if self.low is not None and self.rate <= self.low:
            self.low = self.rate * 0.95  # what "worked" was a bucket draining
        self.high = self.rate
        if self.low is None or self.low >= self.high:
            self.low = self.high / 2
        self._clean_seconds = 0
        self._settled_seconds = 0
        self.rate = max(self.min_rate, self._next_probe())

    def _next_probe(self) -> float:
        assert self.low is not None and self.high is not None
        if self.settled:
            return self.low * self.settle_factor
        return (self.low + self.high) / 2


class RateLimiter:
    """Paces requests to ``rate`` per second, adaptively when ``rate`` is None.

    ``acquire()`` is called once per HTTP request; ``on_throttled()`` reports
    a 429 from the platform.
    """

    def __init__(
        self,
        rate: float | None,
        *,
        burst: int = 4,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive")  # a user's --rate is check_rate's
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self.search = LimitSearch() if rate is None else None
        self._rate = self.search.rate if self.search else float(rate or 0)
        self._burst = burst
        self._clock = clock or _loop_clock
        self._sleep = sleep or asyncio.sleep
        self._tat = -math.inf  # theoretical arrival time of the next request
        self._paused_until = -math.inf
        self._second_start = -math.inf
        self._queued_this_second = False
        self._throttled_this_second = False
        self.throttled = 0

    @property
    def rate(self) -> float:
        """The current pace in requests per second."""
        return self._rate

    @property
    def paused(self) -> bool:
        """Whether every request is held now, after a 429 or an overload answer."""
        return self._clock() < self._paused_until

    @property
    def found(self) -> float | None:
        """The highest pace the account was seen to accept, when searching for it (else None)."""
        if self.search is None or self.search.low is None:
            return None
        return round(self.search.low, 2)

    def __repr__(self) -> str:
        mode = f"adaptive {self.search!r}" if self.search else "fixed"
        return (
            f"<RateLimiter {mode} rate={self._rate:.2f}/s burst={self._burst} "
            f"throttled={self.throttled}>"
        )

    async def acquire(self) -> None:
        """Wait for this caller's slot; callers are served first come, first served."""
        while True:
            now = self._clock()
            if now < self._paused_until:
                await self._sleep(self._paused_until - now)
                continue
            self._tick(now)
            interval = 1.0 / self._rate
            tolerance = (self._burst - 1) * interval
            start = max(now, self._tat - tolerance)
            self._tat = max(self._tat, now) + interval
            if start <= now + 1e-9:  # float rounding must not cost a sleep
                return
            self._queued_this_second = True
            await self._sleep(start - now)
            if self._clock() >= self._paused_until:
                return
            # A 429 arrived while this caller slept: its slot is void, queue again.

    def on_throttled(self, retry_after: float | None) -> None:
        """The platform answered 429: pause everyone, and in adaptive mode slow down."""
        now = self._clock()
        self.throttled += 1
        already_paused = now < self._paused_until
        pause = retry_after if retry_after is not None else 1.0
        self._paused_until = max(self._paused_until, now + max(0.0, pause))
        if self.search is not None and not already_paused:
            # Answers to requests sent before the pause carry no news: count one per pause.
            self.search.throttled()
            self._rate = self.search.rate
            self._throttled_this_second = True
        # Requests reserved before the pause must not fire in a burst right after it.
        self._tat = max(self._tat, self._paused_until)

    def _tick(self, now: float) -> None:
        """Once a second, tell the limit search whether callers had to queue for slots."""
        if self.search is None or now - self._second_start < 1.0:
            return
        if self._queued_this_second and not self._throttled_this_second:
            self.search.busy_second()
            self._rate = self.search.rate
        self._queued_this_second = False
        self._throttled_this_second = False
        self._second_start = now


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with full jitter, bounded in attempts and time.

    ``instant=True`` makes every wait zero: for tests that exercise retries.
    """

    max_attempts: int = 8
    base_delay: float = 0.25
    max_delay: float = 30.0
    #: a single call is given up after this many seconds of retrying
    max_elapsed: float = 300.0
    instant: bool = False

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        if self.instant:
            return 0.0
        ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return (rng or random).uniform(0.0, ceiling)

    def gives_up(self, attempt: int, elapsed: float) -> bool:
        """True when ``attempt`` failures or ``elapsed`` seconds exhaust the policy."""
        return attempt >= self.max_attempts or elapsed >= self.max_elapsed
