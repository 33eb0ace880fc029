"""What a run has done so far, counted once, and shown many ways.

The pipeline tells ``RunTally`` what happens to each target (submitted, its
file ready and downloading, saved with its size, failed, re-requested);
everything that shows progress reads the same numbers from a
``ProgressSnapshot``: the bars on a terminal, the ``--stats-interval`` log
lines, the ``--metrics-file``, and the Python API's ``on_progress``
callback. ``Ticker`` hands each of these ``Observer``s a fresh snapshot at
its own interval, and a last one when the run ends.

Rates are over a recent window (``RATE_WINDOW`` seconds), so they follow
the run as it speeds up or is slowed down. Until a few exports are saved
there is no measured rate, so the ETA starts from the pace the client is
allowed (two requests per export: a POST and a GET) and moves to the
measured rate as saves come in: stable from the first seconds, right later.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

__all__ = ["RATE_WINDOW", "Observer", "ProgressSnapshot", "RunTally", "Ticker"]

log = logging.getLogger(__name__)

#: seconds of recent history the rates are measured over
RATE_WINDOW = 60.0
#: saves in the window before the measured rate alone sets the ETA
_TRUSTED_SAVES = 20
#: requests per export when nothing fails: the POST and one GET
_REQUESTS_PER_EXPORT = 2.0


@dataclass(frozen=True)
class ProgressSnapshot:
    """The run's counts and rates at one moment. Counts are this run's unless named otherwise."""

    #: distinct targets of the input, and how many of them were done before this run
    total: int
    already_done: int
    #: input rows whose ID cannot be used (not targets)
    invalid: int
    #: targets with an open data request (resumed ones included)
    submitted: int
    #: files being downloaded right now
    downloading: int
    saved: int
    failed: int
    #: requests asked again after the platform expired or forgot them
    reissued: int
    bytes_saved: int
    elapsed_seconds: float
    #: exports saved per second, and bytes per second, over the recent window
    rate: float
    bytes_rate: float
    #: seconds until every remaining target is done at the current rate (None: unknown)
    eta_seconds: float | None
    #: why requests are held right now: "throttled" (429 or overload), "outage", or None
    paused: str | None
    #: the pace the client may send at now, requests per second
    request_rate: float
    #: the highest pace the account was seen to accept (limit search; None with --rate)
    rate_found: float | None
    #: when the snapshot was taken (epoch seconds)
    at: float
    #: the client's counts so far: ``requests`` per endpoint, ``responses`` per
    #: HTTP status, ``retries``, ``throttled``, ``overloaded``, ``outages``, …
    #: (``PlatformClient.traffic()``; empty before the client exists)
    traffic: dict[str, Any] = field(default_factory=dict)

    @property
    def remaining(self) -> int:
        """Targets of this input neither done nor failed yet."""
        return max(0, self.total - self.already_done - self.saved - self.failed)

    @property
    def done(self) -> int:
        """Targets of this input done, before or during this run."""
        return self.already_done + self.saved

    def to_json(self) -> dict[str, Any]:
        """The snapshot as JSON-ready data, with the derived counts."""
        data = asdict(self)
        data.update(remaining=self.remaining, done=self.done)
        return data


class RunTally:
    """The counters the pipeline advances; ``snapshot()`` reads them with the rates.

    ``pace``, ``paused`` and ``found`` are read from the rate limiter and the
    outage gate when a snapshot is taken (the client exists only once the
    run has started, so they are plugged in then: ``watch``).
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.started = clock()
        self.total = 0
        self.already_done = 0
        self.invalid = 0
        self.submitted_count = 0
        self.saved_count = 0
        self.failed_count = 0
        self.reissued_count = 0
        self.bytes_saved = 0
        self._downloading: set[str] = set()
        #: (time, saved so far, bytes so far), one sample per second at most
        self._samples: collections.deque[tuple[float, int, int]] = collections.deque()
        self._pace: Callable[[], float] = lambda: 0.0
        self._paused: Callable[[], str | None] = lambda: None
        self._found: Callable[[], float | None] = lambda: None
        self._traffic: Callable[[], dict[str, Any]] = dict

    def start(self, *, total: int, already_done: int, invalid: int, resumed: int) -> None:
        """The plan: how many targets, how many done already, how many resumed with a request."""
        self.total, self.already_done, self.invalid = total, already_done, invalid
        self.submitted_count = resumed
        self.started = self._clock()
        self._samples.clear()
        self._samples.append((self.started, 0, 0))

    def watch(
        self,
        *,
        pace: Callable[[], float],
        paused: Callable[[], str | None],
        found: Callable[[], float | None],
        traffic: Callable[[], dict[str, Any]] = dict,
    ) -> None:
        """Where the pace, the pause, the limit found and the request counts are read from."""
        self._pace, self._paused, self._found = pace, paused, found
        self._traffic = traffic

    # -- what the pipeline reports ----------------------------------------------

    def submitted(self) -> None:
        self.submitted_count += 1

    def ready(self, target_id: str) -> None:
        """A download of the target's file began (again, after a cut: counted once)."""
        self._downloading.add(target_id)

    def saved(self, target_id: str, size: int) -> None:
        self._downloading.discard(target_id)
        self.saved_count += 1
        self.bytes_saved += size

    def failed(self, target_id: str) -> None:
        self._downloading.discard(target_id)
        self.failed_count += 1

    def reissued(self, target_id: str) -> None:
        self._downloading.discard(target_id)
        self.reissued_count += 1

    # -- reading ------------------------------------------------------------------

    def snapshot(self) -> ProgressSnapshot:
        """The counts now, with the recent rates and the ETA they give."""
        now = self._clock()
        self._sample(now)
        first_time, first_saved, first_bytes = self._samples[0]
        span = now - first_time
        window_saved = self.saved_count - first_saved
        if span < 1.0:  # too short to measure: a handful of saves would read as hundreds a second
            span, window_saved = 0.0, 0
        rate = window_saved / span if span > 0 else 0.0
        bytes_rate = (self.bytes_saved - first_bytes) / span if span > 0 else 0.0
        pace = self._pace()
        remaining = max(0, self.total - self.already_done - self.saved_count - self.failed_count)
        return ProgressSnapshot(
            total=self.total,
            already_done=self.already_done,
            invalid=self.invalid,
            submitted=self.submitted_count,
            downloading=len(self._downloading),
            saved=self.saved_count,
            failed=self.failed_count,
            reissued=self.reissued_count,
            bytes_saved=self.bytes_saved,
            elapsed_seconds=round(now - self.started, 3),
            rate=round(rate, 3),
            bytes_rate=round(bytes_rate, 1),
            eta_seconds=_eta(remaining, rate, window_saved, pace),
            paused=self._paused(),
            request_rate=round(pace, 2),
            rate_found=self._found(),
            at=now,
            traffic=self._traffic(),
        )

    def _sample(self, now: float) -> None:
        if now - self._samples[-1][0] >= 1.0:
            self._samples.append((now, self.saved_count, self.bytes_saved))
        while len(self._samples) > 1 and now - self._samples[1][0] >= RATE_WINDOW:
            self._samples.popleft()


def _eta(remaining: int, rate: float, window_saved: int, pace: float) -> float | None:
    """Seconds to finish: the measured rate, blended in from the allowed pace as saves come."""
    if remaining == 0:
        return 0.0
    allowed = pace / _REQUESTS_PER_EXPORT if pace > 0 else 0.0
    trust = min(1.0, window_saved / _TRUSTED_SAVES)
    if allowed > 0 and rate > 0:
        estimate = trust * rate + (1 - trust) * min(allowed, rate * 4)
    else:
        estimate = rate if rate > 0 else allowed
    return round(remaining / estimate, 1) if estimate > 0 else None


class Observer(Protocol):
    """Something that shows progress: handed a snapshot every ``interval`` seconds, and at the end."""

    #: seconds between ``tick`` calls (0: only ``close``)
    interval: float

    def tick(self, snapshot: ProgressSnapshot) -> None:
        """Show the run as it is now. Must not block: it runs on the event loop."""

    def close(self, snapshot: ProgressSnapshot) -> None:
        """The run's pipeline has ended (for whatever reason): show the last state, release."""


class Ticker:
    """Calls each observer's ``tick`` at its interval while the pipeline runs."""

    def __init__(self, tally: RunTally, observers: list[Observer]) -> None:
        self.tally = tally
        self.observers = observers
        self._task: asyncio.Task[None] | None = None

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """Tick while inside; then close every observer with the final snapshot."""
        ticking = [observer for observer in self.observers if observer.interval > 0]
        if ticking:
            self._task = asyncio.get_running_loop().create_task(self._tick(ticking))
        try:
            yield
        finally:
            if self._task is not None:
                self._task.cancel()
            self.close()

    def close(self) -> None:
        """Close every observer once, with the final snapshot (idempotent)."""
        observers, self.observers = self.observers, []
        if not observers:
            return
        final = self.tally.snapshot()
        for observer in observers:
            _safely(observer.close, final)

    async def _tick(self, observers: list[Observer]) -> None:
        loop = asyncio.get_running_loop()
        due = {id(observer): loop.time() + observer.interval for observer in observers}
        while True:
            now = loop.time()
            wake = min(due.values())
            if wake > now:
                await asyncio.sleep(wake - now)
                continue
            snapshot = self.tally.snapshot()
            for observer in observers:
                if due[id(observer)] <= now:
                    _safely(observer.tick, snapshot)
                    due[id(observer)] = now + observer.interval


def _safely(call: Callable[[ProgressSnapshot], None], snapshot: ProgressSnapshot) -> None:
    """Showing progress must never stop a run: a failing observer is logged and skipped."""
    try:
        call(snapshot)
    except Exception as exc:  # a broken callback, a full disk for the metrics file
        log.warning("progress report failed: %s", exc)
