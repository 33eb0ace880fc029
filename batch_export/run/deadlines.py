"""Every target's ``--timeout`` on one timer, instead of one timer per target.

A run holds up to ``--max-pending`` targets open, each with a deadline an
hour away by default; a timer apiece kept that many handles in the event
loop's heap, and every other timer of the run (aiohttp's per-read timeouts,
the checks' sleeps) paid for the heap's depth on each push and pop. The
deadlines all lie the same ``--timeout`` after their target started, so
the order they were set in is the order they fall due: an insertion-ordered
map of the open ones, and a single timer for the earliest.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable

__all__ = ["Deadlines"]

#: a deadline this close counts as due (the loop runs timers that much early)
_EARLY = 1e-3


class Deadlines:
    """Calls each watched target's expiry callback ``seconds`` after ``watch``, unless released."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        #: open targets, by their key, in the order their deadlines fall due
        self._due: OrderedDict[object, tuple[float, Callable[[], object]]] = OrderedDict()
        self._timer: asyncio.TimerHandle | None = None

    def watch(self, key: object, expired: Callable[[], object]) -> None:
        """Call ``expired()`` in ``seconds`` unless ``release(key)`` comes first."""
        loop = asyncio.get_running_loop()
        self._due[key] = (loop.time() + self.seconds, expired)
        if self._timer is None:
            self._arm(loop)

    def release(self, key: object) -> None:
        """Forget ``key``'s deadline (its target ended). The timer stays: it re-arms when it fires."""
        self._due.pop(key, None)

    def close(self) -> None:
        """Drop every deadline and the timer (the run is over)."""
        self._due.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def __len__(self) -> int:
        return len(self._due)

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._due:
            when = next(iter(self._due.values()))[0]
            self._timer = loop.call_at(when, self._fire, loop)
        else:
            self._timer = None

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time() + _EARLY
        due = self._due
        while due:
            key, (when, expired) = next(iter(due.items()))
            if when > now:
                break
            del due[key]
            expired()
        self._arm(loop)
