"""Riding out an unreachable platform: one gate that every request passes.

"Failed to connect" on the live platform is typically not a hiccup on one
connection but a service issue lasting minutes (API notes, "Observed in the
field"). A refused connection, a name that does not resolve, a TLS handshake
that fails or a connect timeout says nothing about the target being
exported, so it must never fail a target. Instead:

- the first such failure closes the gate: every request waits in ``admit``;
- one request at a time goes through as a *probe*, at growing intervals
  (0.5 s, 1 s, 2 s … at most ``max_probe_interval``);
- any HTTP answer to any request opens the gate again and wakes everyone;
- if the platform stays unreachable for ``outage_timeout`` seconds (or
  ``startup_timeout`` when it was never reached in this run, which means a
  wrong URL or no network far more often than an outage), every waiter gets
  ``OutageError``, which stops the run resumably.

Time comes from an injectable clock, like the limiter's, so tests can drive it.
"""

from __future__ import annotations

import asyncio
import contextlib
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


class OutageGate:
    """Holds requests while the platform cannot be reached, and probes until it can."""

    def __init__(
        self,
        *,
        outage_timeout: float = 900.0,
        startup_timeout: float = 20.0,
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
        self._down_since: float | None = None
        self._error: UnreachableError | None = None
        self._interval = first_probe
        self._next_probe = 0.0
        self._probing = False
        self._fatal: OutageError | None = None
        self._changed = asyncio.Event()
        #: outages seen in this run, for the summary
        self.outages = 0

    def __repr__(self) -> str:
        state = "up" if self._down_since is None else f"down since {self._down_since:.1f}"
        return f"<OutageGate {state} reached={self.reached} outages={self.outages}>"

    @property
    def down(self) -> bool:
        """True while the platform is believed unreachable (requests are held)."""
        return self._down_since is not None

    async def admit(self) -> bool:
        """Wait until a request may go; True when it goes as the outage's probe."""
        while True:
            if self._fatal is not None:
                raise self._fatal
            if self._down_since is None:
                return False
            now = self._clock()
            if not self._probing and now >= self._next_probe:
                self._probing = True
                return True
            self._changed.clear()
            wait = None if self._probing else max(0.0, self._next_probe - now)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=wait)

    def answered(self) -> None:
        """Some request got an HTTP answer: the platform is reachable."""
        self.reached = True
        if self._down_since is None:
            return
        lasted = self._clock() - self._down_since
        host = self._error.host if self._error is not None else "the platform"
        log.warning("%s is reachable again after %s; resuming", host, _duration(lasted))
        self._down_since = None
        self._error = None
        self._probing = False
        self._interval = self.first_probe
        self._changed.set()

    def probe_ended(self) -> None:
        """A probe ended with neither an answer nor a connect failure (cancelled, reset…)."""
        if self._probing:
            self._probing = False
            self._changed.set()

    def unreachable(self, error: UnreachableError, *, probe: bool) -> None:
        """A request could not connect: open an outage, or extend the current one."""
        now = self._clock()
        self._error = error
        if self._down_since is None:
            self._down_since = now
            self._interval = self.first_probe
            self.outages += 1
            if self.reached:
                log.warning(
                    "cannot reach %s: %s; holding every request and probing for up to %s "
                    "(--outage-timeout)",
                    error.host,
                    error.reason,
                    _duration(self.outage_timeout),
                )
        elif not probe:
            return  # a request sent before the outage began: no news
        else:
            self._interval = min(self.max_probe_interval, self._interval * 2)
            self._probing = False
        limit = self.outage_timeout if self.reached else self.startup_timeout
        deadline = self._down_since + limit
        if now >= deadline:
            self._fatal = self._give_up(error, now - self._down_since)
        else:
            # The last probe goes at the deadline, not after it.
            self._next_probe = min(now + self._interval, deadline)
        self._changed.set()

    def _give_up(self, error: UnreachableError, lasted: float) -> OutageError:
        if not self.reached:
            return OutageError(
                f"cannot reach {error.host}: {error.reason} "
                "(check --api-url and the network; nothing was exported)",
                host=error.host,
            )
        return OutageError(
            f"cannot reach {error.host}: {error.reason} for {_duration(lasted)}, "
            f"longer than --outage-timeout {_duration(self.outage_timeout)}; "
            "stopping — rerun the same command to resume",
            host=error.host,
        )
