"""How fast and how often: the client-side rate limiter and the retry policy.

Both read time from an injectable clock and sleep through an injectable
function (the event loop's by default), so tests of pacing and backoff run
without really waiting.

The limiter is a GCRA ("virtual scheduling") token bucket whose slots are
handed out when they come due, not reserved when a caller arrives: waiting
callers sit in two first-come-first-served queues, and each slot goes to the
oldest *urgent* caller (a readiness check or download of a requested export)
before the oldest ordinary one (a new submit). So a check never queues
behind hundreds of submits, and a pause after a refusal voids nothing: no
caller holds a slot until it is granted. Each acquire is O(1). Bursts are
kept small (``burst`` slots) because the platform's limit is per account and
shared with everything else using the token.

Without a configured rate it *finds* the account's limit (``LimitSearch``,
in ``limit_search``), starting from a remembered pace when there is one.
``acquire`` returns the pace at which the slot was granted; the client hands
it back with a refusal (``on_throttled``), so the search charges each 429 or
overload answer to the pace its request was sent at. Any refusal pauses every
caller for the server's ``Retry-After`` (one second without one): the limit
is shared, so one throttled request means all of them would be.

A pause is also a test: a platform that refuses even the requests sent
after it is overloaded, which is no news about the limit (``overload``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import NamedTuple

from ..errors import ConfigError
from .limit_search import LimitSearch
from .overload import OverloadProbe

__all__ = ["Grant", "LimitSearch", "RateLimiter", "RetryPolicy", "check_rate"]


def check_rate(rate: float | None) -> None:
    """Refuse a ``--rate`` that is not a positive number of requests per second."""
    if rate is not None and not rate > 0:
        raise ConfigError(
            "--rate must be greater than 0 (requests per second); "
            "omit it to let the tool find the limit"
        )


log = logging.getLogger(__name__)

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

#: a pause after a refusal that names no Retry-After
DEFAULT_PAUSE = 1.0
#: how often the search hears whether callers queued (seconds)
TICK = 0.25


class Grant(NamedTuple):
    """A slot the limiter granted: the pace it was granted at, and when (the limiter's clock).

    The client hands both back with a refusal, so the search can tell what
    was sent before that request and what after it."""

    pace: float
    at: float


def _loop_clock() -> float:
    return asyncio.get_running_loop().time()


class RateLimiter:
    """Paces requests to ``rate`` per second, adaptively when ``rate`` is None.

    ``acquire()`` is called once per HTTP request and returns the pace its
    slot was granted at; ``on_throttled()`` reports a 429 or overload answer,
    with that pace. ``start`` is a remembered pace for the search to begin
    from (ignored with a fixed ``rate``); ``on_settled`` is called once each
    time the search settles, with the pace found.
    """

    #: how long (seconds) an ordinary caller may be overtaken by urgent ones
    patience = 1.0
    #: the least gap between two requests leaving, in slots (1 / rate each)
    wire_spacing = 0.75

    def __init__(
        self,
        rate: float | None,
        *,
        burst: int = 4,
        start: float | None = None,
        on_settled: Callable[[float], None] | None = None,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive")  # a user's --rate is check_rate's
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self.search = LimitSearch(start) if rate is None else None
        self._rate = self.search.rate if self.search else float(rate or 0)
        #: the pace the run started at, and where it came from (for the summary)
        self.start_rate = self._rate
        self.origin = "--rate" if rate is not None else ("remembered" if start else "search")
        self._burst = burst
        self._clock = clock or _loop_clock
        self._sleep = sleep or asyncio.sleep
        self._on_settled = on_settled
        self._tat = -math.inf  # theoretical arrival time of the next request
        self._paused_until = -math.inf
        self._last_send = -math.inf
        self._tick_start = -math.inf
        self._queued_this_tick = False
        self._throttled_this_tick = False
        # Waiting callers by class, oldest first: (when they may go, their future).
        self._urgent: deque[tuple[float, asyncio.Future[Grant]]] = deque()
        self._normal: deque[tuple[float, asyncio.Future[Grant]]] = deque()
        self._dispatcher: asyncio.Task[None] | None = None
        self._recent: deque[float] = deque()  # grant times of the last second (searching)
        self._first_grant = math.inf
        self.throttled = 0
        #: whether a refusal is an overload rather than the pace's (the client reports answers)
        self.overload = OverloadProbe(self._clock)

    @property
    def rate(self) -> float:
        """The current pace in requests per second."""
        return self._rate

    @property
    def paused(self) -> bool:
        """Whether every request is held now, after a 429 or an overload answer."""
        return self._clock() < self._paused_until

    @property
    def pause_left(self) -> float:
        """Seconds until requests go again after a refusal (0.0 when not paused)."""
        return max(0.0, self._paused_until - self._clock())

    @property
    def found(self) -> float | None:
        """The highest pace the account was seen to accept, when searching for it (else None)."""
        if self.search is None or self.search.low is None:
            return None
        return round(self.search.low, 2)

    @property
    def settled(self) -> float | None:
        """The pace the search settled at (worth remembering), else None."""
        if self.search is None or not self.search.settled:
            return None
        return self.found

    @property
    def waiting(self) -> int:
        """Callers queued for a slot now (cancelled ones may still be counted)."""
        return len(self._urgent) + len(self._normal)

    def __repr__(self) -> str:
        mode = f"adaptive {self.search!r}" if self.search else "fixed"
        return (
            f"<RateLimiter {mode} rate={self._rate:.2f}/s burst={self._burst} "
            f"throttled={self.throttled}>"
        )

    async def acquire(self, urgent: bool = False) -> Grant:
        """Wait for a slot; returns it (the pace it was granted at, and when).

        Urgent callers are served before ordinary ones; within a class, first
        come, first served.
        """
        now = self._clock()
        self._tick(now)
        # A caller takes a free slot at once only if nobody due before it waits.
        if urgent:
            ahead = self._urgent or (self._normal and self._normal[0][0] <= now)
        else:
            ahead = self._urgent or self._normal
        if not ahead and self._grant(now):
            return Grant(self._rate, now)
        future: asyncio.Future[Grant] = asyncio.get_running_loop().create_future()
        if urgent:
            self._urgent.append((now, future))
        else:
            self._normal.append((now + self.patience, future))
        self._queued_this_tick = True
        if self._dispatcher is None:
            self._dispatcher = asyncio.ensure_future(self._dispatch())
        try:
            return await future
        except asyncio.CancelledError:
            # The last waiter gone (a run cancelled): no dispatcher outlives it.
            if self._dispatcher is not None and self._next_queue() is None:
                self._dispatcher.cancel()
                self._dispatcher = None
            raise

    async def sending(self, grant: Grant) -> Grant:
        """The request granted ``grant`` is about to leave: space it, and time it.

        Slots are paced, but between a slot and the wire a submit waits for
        its journal line, and one slow commit releases several submits at
        once: a strict bucket (burst 5) refuses such a bunch even at half
        its rate. So requests also leave at least ``wire_spacing / rate``
        apart (a bunch goes out at a third over the pace, not at once). The
        slot comes back timed when its request left, and the bucket fit
        hears of it.
        """
        now = self._clock()
        at = max(now, self._last_send + self.wire_spacing / self._rate)
        self._last_send = at
        if at > now:
            await self._sleep(at - now)
        if self.search is not None:
            self.search.timeline.sent(at)
        return Grant(grant.pace, at)

    def on_throttled(
        self,
        retry_after: float | None,
        sent_rate: float | None = None,
        sent_at: float | None = None,
    ) -> None:
        """The platform said "slower" to a request sent at ``sent_rate``: pause everyone.

        In adaptive mode the search is told, charged to ``sent_rate`` (the
        value ``acquire`` returned for that request; None means the pace now)
        -- unless the request left after a pause and nothing sent since was
        answered: that is overload, and the pause doubles instead.
        """
        now = self._clock()
        self.throttled += 1
        pause = retry_after if retry_after is not None else DEFAULT_PAUSE
        backoff = self.overload.refused(sent_at)
        if backoff is not None:  # overloaded: the pause grows, the pace stays
            if backoff:
                self._pause(now, max(pause, backoff))
                self._throttled_this_tick = True  # nothing ran clean this tick
                self._after_pause()
            return
        self._pause(now, pause)
        if self.search is not None and self.search.throttled(
            sent_rate, self._recent_pace(now), sent_at, now
        ):
            self._rate = self.search.rate
            self._throttled_this_tick = True
            log.debug("refused at %s req/s: now %r", sent_rate, self.search)
            if self.search.settled and self._on_settled is not None:  # the fit settled it
                self._on_settled(self._rate)
        self._after_pause()

    def _pause(self, now: float, seconds: float) -> None:
        """Hold every caller until ``seconds`` from ``now``; what is sent after it probes."""
        self._paused_until = max(self._paused_until, now + max(0.0, seconds))
        self.overload.paused(self._paused_until)

    def _after_pause(self) -> None:
        # After the pause, one slot and then the pace: not a burst of every
        # caller that waited, which a sliding-window platform would refuse.
        self._tat = max(self._tat, self._paused_until + (self._burst - 1) / self._rate)

    def _grant(self, now: float) -> bool:
        """Take the slot due now, if there is one."""
        if now < self._paused_until:
            return False
        self._first_grant = min(self._first_grant, now)
        interval = 1.0 / self._rate
        if self._tat - (self._burst - 1) * interval > now + 1e-9:  # rounding costs no sleep
            return False
        self._tat = max(self._tat, now) + interval
        if self.search is not None:  # kept while searching: the pace of the last second
            self._recent.append(now)
            while self._recent[0] < now - 1.0:
                self._recent.popleft()
        return True

    def _recent_pace(self, now: float) -> float | None:
        """The pace the platform took over the last second (None before any slot).

        Slots granted, less one burst: a token bucket lets a burst through on
        top of its rate, and ours is the best guess at the size of its.
        """
        while self._recent and self._recent[0] < now - 1.0:
            self._recent.popleft()
        if len(self._recent) <= self._burst:
            return None
        return (len(self._recent) - self._burst) / max(0.25, min(1.0, now - self._first_grant))

    def _due(self) -> float:
        """When the next slot comes due."""
        return max(self._paused_until, self._tat - (self._burst - 1) / self._rate)

    def _next_queue(self) -> deque[tuple[float, asyncio.Future[Grant]]] | None:
        """The queue whose first caller is served next (cancelled callers are dropped).

        Earliest deadline first: an urgent caller's deadline is its arrival,
        an ordinary caller's ``patience`` seconds later. Within a class that
        is first come, first served; across classes a check overtakes the
        submits of the last ``patience`` seconds, never older ones.
        """
        for queue in (self._urgent, self._normal):
            while queue and queue[0][1].done():
                queue.popleft()
        if not self._urgent:
            return self._normal or None
        if not self._normal:
            return self._urgent
        return self._urgent if self._urgent[0][0] <= self._normal[0][0] else self._normal

    async def _dispatch(self) -> None:
        """Hand each slot, as it comes due, to the caller first in line."""
        try:
            while (queue := self._next_queue()) is not None:
                now = self._clock()
                self._tick(now)
                if self._grant(now):
                    queue.popleft()[1].set_result(Grant(self._rate, now))
                    continue
                self._queued_this_tick = True
                await self._sleep(max(0.0, self._due() - now))
        finally:
            if self._dispatcher is asyncio.current_task():
                self._dispatcher = None

    def _tick(self, now: float) -> None:
        """Every TICK seconds, tell the limit search whether callers had to queue."""
        elapsed = now - self._tick_start
        if self.search is None or elapsed < TICK:
            return
        if self._queued_this_tick and not self._throttled_this_tick and not self.paused:
            settled = self.search.busy(min(elapsed, 1.0), now)
            if self.search.rate != self._rate:
                self.search.timeline.paced(now)
                log.debug("busy and clean: now %r", self.search)
            self._rate = self.search.rate
            if settled and self._on_settled is not None:
                self._on_settled(self._rate)
        self._queued_this_tick = False
        self._throttled_this_tick = False
        self._tick_start = now


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
