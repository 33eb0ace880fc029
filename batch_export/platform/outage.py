"""Riding out an unreachable platform: one gate that every request passes.

"Failed to connect" on the live platform is typically not a hiccup on one
connection but a service issue lasting minutes (API notes, "Observed in the
field"). A refused connection, a name that does not resolve, a TLS handshake
that fails or a connect timeout says nothing about the target being
exported, so it must never fail a target. Instead:

- the first such failure closes the gate: every request waits in ``admit``;
- one request at a time goes through as a *probe*, at growing intervals
  (0.5 s, 1 s, 2 s … at most ``max_probe_interval``); a probe that ends
  without an HTTP answer of any kind (a connect failure, an empty reply, a
  reset, a cancellation) counts as a failed probe;
- any HTTP answer from the platform opens the gate again and wakes everyone;
- if the platform stays unreachable for ``outage_timeout`` seconds, or for
  ``startup_timeout`` seconds from the first request when it never answered
  in this run (which means a wrong URL or no network far more often than an
  outage), every waiter gets ``OutageError``, which stops the run resumably.
  The deadline is checked by the clock whenever anyone waits, not only when
  a probe fails.

Time comes from an injectable clock, like the limiter's, so tests can drive it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ..errors import OutageError, UnreachableError

__all__ = ["OutageGate"]

log = logging.getLogger("batch_export.platform.outage")

Clock = Callable[[], float]


def _loop_clock() -> float:
    return asyncio.get_running_loop().time()


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    minutes, secs = divmod(seconds, 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class OutageGate:
    """Holds requests while the platform cannot be reached, and probes until it can."""

    def __init__(
        self,
        *,
        outage_timeout: float = 900.0,
        startup_timeout: float = 15.0,
        first_probe: float = 0.5,
        max_probe_interval: float = 60.0,
        clock: Clock | None = None,
    ) -> None:
        if outage_timeout <= 0 or startup_timeout <= 0:
            raise ValueError("outage timeouts must be positive")
        self.outage_timeout = outage_timeout
        self.startup_timeout = startup_timeout
        self.first_probe = first_probe
        self.max_probe_interval = max_probe_interval
        self._clock = clock or _loop_clock
        #: whether any request of this run got an HTTP answer
        self.reached = False
        self._first_request: float | None = None
        self._down_since: float | None = None
        self._error: UnreachableError | None = None
        self._interval = first_probe
        self._next_probe = 0.0
        #: generation of the probe in flight (0: none); an older probe's news is stale
        self._probe = 0
        self._generation = 0
        self._fatal: OutageError | None = None
        self._waiters: set[asyncio.Future[None]] = set()
        #: outages seen in this run, for the summary
        self.outages = 0

    def __repr__(self) -> str:
        state = "up" if self._down_since is None else f"down since {self._down_since:.1f}"
        return f"<OutageGate {state} reached={self.reached} outages={self.outages}>"

    @property
    def down(self) -> bool:
        """True while the platform is believed unreachable (requests are held)."""
        return self._down_since is not None

    async def admit(self) -> int:
        """Wait until a request may go; the probe's generation when it goes as one, else 0."""
        if self._first_request is None:
            self._first_request = self._clock()
        while True:
            if self._fatal is not None:
                raise self._fatal
            if self._down_since is None:
                return 0
            now = self._clock()
            if now >= self._deadline():
                self._give_up(now)
                continue
            if not self._probe and now >= self._next_probe:
                self._generation += 1
                self._probe = self._generation
                return self._probe
            wake_at = self._deadline() if self._probe else min(self._next_probe, self._deadline())
            await self._sleep_until(wake_at - now)

    async def _sleep_until(self, seconds: float) -> None:
        """Sleep ``seconds`` or until the gate changes; a cancellation is never swallowed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        timer = loop.call_later(max(0.0, seconds), _wake, future)
        self._waiters.add(future)
        try:
            await future
        finally:
            timer.cancel()
            self._waiters.discard(future)

    def _changed(self) -> None:
        for future in list(self._waiters):
            _wake(future)

    def answered(self) -> None:
        """The platform gave an HTTP answer: it is reachable."""
        self.reached = True
        if self._down_since is None:
            return
        lasted = self._clock() - self._down_since
        host = self._error.host if self._error is not None else "the platform"
        log.warning("%s is reachable again after %s; resuming", host, _duration(lasted))
        self._down_since = None
        self._error = None
        self._probe = 0
        self._interval = self.first_probe
        self._changed()

    def probe_ended(self, probe: int) -> None:
        """Probe ``probe`` ended with no HTTP answer and no connect failure: a failed probe too."""
        if probe and probe == self._probe:
            self._probe_failed(self._clock())

    def unreachable(self, error: UnreachableError, *, probe: int) -> None:
        """A request could not connect: open an outage, or extend the current one."""
        now = self._clock()
        self._error = error
        if self._down_since is None:
            self._down_since = now
            self._interval = self.first_probe
            self._next_probe = now + self._interval
            self.outages += 1
            if self.reached:
                log.warning(
                    "cannot reach %s: %s; holding every request and probing for up to %s "
                    "(--outage-timeout)",
                    error.host,
                    error.reason,
                    _duration(self.outage_timeout),
                )
            self._changed()
        elif probe and probe == self._probe:
            self._probe_failed(now)
        # Otherwise a request sent before the outage began, or a stale probe: no news.

    def _probe_failed(self, now: float) -> None:
        self._probe = 0
        self._interval = min(self.max_probe_interval, self._interval * 2)
        # The last probe goes at the deadline, not after it.
        self._next_probe = min(now + self._interval, self._deadline())
        self._changed()

    def _deadline(self) -> float:
        if self.reached:
            assert self._down_since is not None
            return self._down_since + self.outage_timeout
        start = self._first_request if self._first_request is not None else self._clock()
        return start + self.startup_timeout

    def _give_up(self, now: float) -> None:
        error = self._error
        host = error.host if error is not None else "the platform"
        reason = error.reason if error is not None else "no answer"
        if not self.reached:
            self._fatal = OutageError(
                f"cannot reach {host}: {reason} (nothing answered in this run; "
                "check the URL and the network)",
                host=host,
            )
        else:
            lasted = now - (self._down_since or now)
            self._fatal = OutageError(
                f"cannot reach {host}: {reason} for {_duration(lasted)}, "
                f"longer than --outage-timeout {_duration(self.outage_timeout)}; "
                "stopping — rerun the same command to resume",
                host=host,
            )
        self._changed()
