"""How fast and how often: the client-side rate limiter and the retry policy.

Both read time from an injectable clock and sleep through an injectable
function (the event loop's by default), so tests of pacing and backoff run
without really waiting.

The limiter is a GCRA ("virtual scheduling") token bucket: each caller reserves
the next free slot in first-come-first-served order, in O(1), and sleeps until
it. Bursts are kept small (``burst`` slots) because the platform's limit is per
account and shared with everything else using the token.

Without a configured rate it *finds* the account's limit: it starts low,
doubles while callers queue up and nothing is throttled ("slow start"), and on
the first 429 settles just below the throughput the platform accepted; after
that it probes upward slowly, so that throttling stays rare. Any 429 pauses
every caller for the server's ``Retry-After``: the limit is shared, so one
throttled request means all of them would be.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

__all__ = ["RateLimiter", "RetryPolicy"]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


def _loop_clock() -> float:
    return asyncio.get_running_loop().time()


class RateLimiter:
    """Paces requests to ``rate`` per second, adaptively when ``rate`` is None.

    ``acquire()`` is called once per HTTP request; ``on_accepted()`` and
    ``on_throttled()`` report what the platform answered.
    """

    #: starting rate when the account's limit is unknown (requests/second)
    initial_rate = 8.0
    #: lowest rate the adaptive mode falls to, however often it is throttled
    min_rate = 0.5
    #: after a throttle, run at this fraction of the throughput that was accepted
    backoff_factor = 0.93
    #: probe upward by this fraction per second in which callers had to queue
    probe_growth = 0.004

    def __init__(
        self,
        rate: float | None,
        *,
        burst: int = 4,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self.adaptive = rate is None
        self._rate = self.initial_rate if rate is None else float(rate)
        self._burst = burst
        self._clock = clock or _loop_clock
        self._sleep = sleep or asyncio.sleep
        self._tat = -math.inf  # theoretical arrival time of the next request
        self._paused_until = -math.inf
        self._slow_start = self.adaptive
        # per-second bookkeeping for the adaptive mode
        self._second_start = -math.inf
        self._queued_this_second = False
        self._accepted_window: list[tuple[float, int]] = []
        self.throttled = 0

    @property
    def rate(self) -> float:
        """The current pace in requests per second."""
        return self._rate

    def __repr__(self) -> str:
        mode = "adaptive" if self.adaptive else "fixed"
        return (
            f"<RateLimiter {mode} rate={self._rate:.2f}/s burst={self._burst} "
            f"slow_start={self._slow_start} throttled={self.throttled}>"
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

    def on_accepted(self) -> None:
        """The platform answered a request without throttling it."""
        if not self.adaptive:
            return
        second = math.floor(self._clock())
        window = self._accepted_window
        if window and window[-1][0] == second:
            window[-1] = (second, window[-1][1] + 1)
        else:
            window.append((second, 1))
            while len(window) > 3:
                window.pop(0)

    def on_throttled(self, retry_after: float | None) -> None:
        """The platform answered 429: pause everyone, and in adaptive mode slow down."""
        now = self._clock()
        self.throttled += 1
        already_paused = now < self._paused_until
        pause = retry_after if retry_after is not None else 1.0
        self._paused_until = max(self._paused_until, now + max(0.0, pause))
        if self.adaptive and not already_paused:
            accepted = self._accepted_rate(now)
            target = accepted if accepted > 0 else self._rate / 2
            self._rate = max(self.min_rate, min(self._rate, target) * self.backoff_factor)
            self._slow_start = False
        # Requests reserved before the pause must not fire in a burst right after it.
        self._tat = max(self._tat, self._paused_until)

    def _accepted_rate(self, now: float) -> float:
        """Accepted responses per second over the last full seconds."""
        current = math.floor(now)
        full = [count for second, count in self._accepted_window if second < current]
        return sum(full) / len(full) if full else 0.0

    def _tick(self, now: float) -> None:
        """Once a second, grow the adaptive rate if callers had to queue for slots."""
        if not self.adaptive or now - self._second_start < 1.0:
            return
        if self._queued_this_second:
            if self._slow_start:
                self._rate *= 2.0
            else:
                self._rate *= 1.0 + self.probe_growth
        self._queued_this_second = False
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
