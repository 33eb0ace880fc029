"""Telling a refusal for pace from an overloaded platform, by what a pause does.

Every refusal ("slower": a 429, or the load balancer's 503/504) pauses the
rate limiter. After the pause, a platform that refused for *pace* has room
again (a bucket refilled, a window moved on), so the first requests after
it are taken. A platform that refuses those too is *overloaded*: the field's
"Loadbalancer Error" episodes last minutes and say nothing about the
account's limit. Charged to the limit search, each probe refused after its
pause would step the pace down, to the search's floor within seconds, and
the remembered limit with it; the run would then crawl back up for minutes.

So ``OverloadProbe`` watches the requests sent after each pause. One refused
before any of them was answered is overload: the limiter keeps its pace and
pauses longer (2, 4, 8 ... ``MAX_OVERLOAD_PAUSE`` seconds; the requests of one
round of probes double it once). The first answer to a request sent after a
pause ends the episode. The client reports answers (``answered``); a caller
that does not leaves the probing state ``PROBE_WINDOW`` seconds after a pause
that drew no refusal, so nothing stays stuck in it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

__all__ = ["MAX_OVERLOAD_PAUSE", "PROBE_WINDOW", "OverloadProbe"]

log = logging.getLogger("batch_export.platform.limits")

#: the pause after the first refusal of an episode's probes; it doubles from there
FIRST_OVERLOAD_PAUSE = 2.0
#: the longest pause while the platform refuses even the request after a pause
MAX_OVERLOAD_PAUSE = 16.0
#: a round of probes that drew no refusal for this long after its pause has passed
PROBE_WINDOW = 2.0


class OverloadProbe:
    """Whether the requests sent after the limiter's last pause show an overload."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._probing = False  # see ``probing``
        self._probe_from = math.inf  # requests sent from here on probe (a pause's end)
        self._round_from = math.inf  # ... and from here on, the latest round of probes
        self._streak = 0  # rounds in a row whose probes were refused
        self._since = 0.0  # when the first of them was
        #: refusals of a request sent after a pause (overload: not the search's news)
        self.refusals = 0

    def __repr__(self) -> str:
        return f"<OverloadProbe probing={self.probing} streak={self._streak}>"

    @property
    def probing(self) -> bool:
        """Whether requests sent since the last pause ended may still show an overload.

        True from a refusal until a request sent after its pause was answered,
        or until ``PROBE_WINDOW`` seconds after the pause passed without a
        refusal of one."""
        return self._probing and self._clock() < self._round_from + PROBE_WINDOW

    def paused(self, until: float) -> None:
        """The limiter holds every caller until ``until``: what is sent after it probes."""
        if not self.probing:  # a new episode, if it is one
            self._probing = True
            self._probe_from = until
            self._streak = 0
        self._round_from = until

    def answered(self, sent_at: float) -> None:
        """A request that left at ``sent_at`` got an answer that was not "slower"."""
        if not self._probing or sent_at < self._probe_from:
            return
        self._probing = False
        if self._streak >= 2:
            log.warning(
                "the platform takes requests again after %.0f s of overload",
                self._clock() - self._since,
            )
        self._streak = 0

    def refused(self, sent_at: float | None) -> float | None:
        """A refusal of the request sent at ``sent_at``: None when it is news about the pace.

        Else it is overload: the seconds the limiter should pause now, or 0.0
        when another request of the same round already set that pause."""
        if sent_at is None or not self.probing or sent_at < self._probe_from:
            return None
        self.refusals += 1
        if sent_at < self._round_from:
            return 0.0
        self._streak += 1
        if self._streak == 1:
            self._since = self._clock()
        elif self._streak == 2:
            log.warning(
                "the platform refuses even the first request after a pause (overloaded); "
                "probing at growing intervals up to %.0f s, at the pace from before",
                MAX_OVERLOAD_PAUSE,
            )
        return min(MAX_OVERLOAD_PAUSE, FIRST_OVERLOAD_PAUSE * 2.0 ** (self._streak - 1))
