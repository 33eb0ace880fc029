"""When to ask whether a data request is ready: learnt, not fixed.

Each check costs one request from the account's budget, so the ideal is one
check per export, made just after the file is ready. The platform does not say
how long preparation takes, and it varies per person, so the model learns it
from outcomes — and, where files expire, how long they stay.

The first check of a request uses a stochastic-approximation quantile tracker
(Robbins–Monro on the log of its delay): a check that finds the export ready
shortens the delay a little, one that finds the placeholder lengthens it more,
so it settles where a fraction ``targets[0]`` (97 %) of first checks succeed.
It needs no timestamps of the (unobservable) moment a file became ready. Once
the plan below has 100 outcomes, the first check is the earlier of the two:
on a long-tailed platform the tracker wanders on the flat stretch between the
quick files and the tail, while the plan finds where the quick ones end.

Later checks follow a plan: ``PrepTimes`` (preptimes.py) learns the whole
time-to-ready distribution from the interval-censored outcomes (placeholder at
``t_a``, ready at ``t_b``: ready in ``(t_a, t_b]``) and picks each next check
from the distribution given "not ready yet", trading one more check against
the seconds a file would wait unfetched, holding a ``--max-pending`` slot.
Until it has seen a few later outcomes, a later check waits twice the
request's age.

404s ("unknown or expired request ID") go to ``ExpiryModel`` (expiry.py),
which caps the first check's delay and the interval between later checks
below the expiry it can prove, and does not move for a platform that only
forgets requests.
"""

from __future__ import annotations

import math
import random
from typing import Literal

from .expiry import ExpiryModel
from .preptimes import PrepTimes

__all__ = ["Outcome", "ReadinessModel"]

Outcome = Literal["ready", "pending", "gone"]

#: later outcomes PrepTimes needs before its plan replaces the age backoff
_PLAN_AFTER = 5
#: outcomes PrepTimes needs before its plan replaces the first-check tracker
_PLAN_FIRST_AFTER = 100
#: before the plan: a later check waits this multiple of the request's age (at least)
_BACKOFF = 2.0
#: weight of the newest check in the moving shares of 404s (about the last 20 of a kind)
_SHARE_WEIGHT = 0.05
#: how far (a factor) an outcome's wait may be from a tracker's delay and still count
_STALE = 1.05


class ReadinessModel:
    """Learns the preparation-time distribution; answers "how long until the next check"."""

    levels = 3

    def __init__(
        self,
        *,
        initial_delay: float = 1.0,
        targets: tuple[float, float, float] = (0.97, 0.5, 0.5),
        step: float = 0.08,
        min_delay: float = 0.05,
        max_interval: float = 60.0,
        wait_cost: float = 0.05,
        rng: random.Random | None = None,
    ) -> None:
        self.targets = targets
        self.step = step
        self.min_delay = min_delay
        self.max_interval = max_interval
        # delay[k] is measured from the previous check (from submission for k = 0)
        self.delays = [initial_delay, initial_delay, 2 * initial_delay]
        self.observations = [0] * self.levels
        self.prep = PrepTimes(wait_cost=wait_cost)
        self._rng = rng or random.Random()
        self.expiry = ExpiryModel(self._rng)
        self._later_outcomes = 0
        #: moving shares of first and of later checks that found the request gone
        self._gone_share = [0.0, 0.0]
        #: while most checks of a kind lose files, the longest wait (see _sound_alarm)
        self._alarm = [math.inf, math.inf]

    def __repr__(self) -> str:
        delays = ", ".join(f"{d:.2f}s" for d in self.delays)
        return (
            f"<ReadinessModel targets={self.targets} delays=[{delays}] n={self.observations} "
            f"{self.expiry!r}>"
        )

    def delay(self, checks_done: int, elapsed: float) -> float:
        """Seconds from now until check number ``checks_done + 1`` (``elapsed`` since the POST)."""
        if checks_done == 0:
            first = self.delays[0]
            if self.prep.observed >= _PLAN_FIRST_AFTER:
                # The plan finds the end of a body of quick files where the
                # tracker, on the flat stretch before a long tail, wanders; the
                # tracker bounds the plan, whose first-check intervals (0, t]
                # cannot show how early inside them files were ready.
                first = min(first, self.prep.next_check(0.0))
            base = min(first, self.expiry.first_cap(), self._alarm[0])
        else:
            if self._later_outcomes >= _PLAN_AFTER:
                base = self.prep.next_check(elapsed) - elapsed
            else:
                base = max(elapsed * _BACKOFF, self.delays[min(checks_done, self.levels - 1)])
            base = min(base, self.expiry.later_cap(), self._alarm[1])
        # a little jitter so requests submitted together do not poll in lockstep
        jittered = base * self._rng.uniform(0.97, 1.03)
        return min(self.max_interval, max(self.min_delay, jittered))

    def record(self, check_number: int, alive_at: float, at: float, outcome: Outcome) -> None:
        """Check ``check_number``, ``at`` seconds after the POST, found ``outcome``.

        ``alive_at`` is when the request was last seen alive: the previous
        check's placeholder, or 0.0 (the POST) for the first check.
        """
        waited = at - alive_at
        self.expiry.observe(check_number, waited, outcome == "gone")
        self._sound_alarm(0 if check_number == 1 else 1, outcome == "gone", waited)
        if outcome == "gone":
            if check_number == 1:
                # Ready and expired, or forgotten: no later first check would
                # have helped, so the tracker counts it as "not early".
                self._track(1, True, waited)
            return
        self._track(check_number, outcome == "ready", waited)
        if outcome == "ready":
            self.prep.observe(alive_at, at)
            if check_number > 1:
                self._later_outcomes += 1

    def _sound_alarm(self, kind: int, gone: bool, waited: float) -> None:
        """Keep checks of ``kind`` (0 first, 1 later) well short while most find files gone.

        ExpiryModel needs checks on both sides of an expiry to see it; while
        most checks of a kind come too late (a platform that forgot half its
        requests could not be helped anyway), each loss shortens that kind's
        checks by 30 % below the wait that lost the file, and each check that
        finds the request alive lets them lengthen by 5 %, until the learnt
        caps (or nothing) bound them.
        """
        self._gone_share[kind] += _SHARE_WEIGHT * (gone - self._gone_share[kind])
        if gone and self._gone_share[kind] > 0.5:
            self._alarm[kind] = max(self.min_delay, min(self._alarm[kind], waited * 0.7))
        elif not gone and self._alarm[kind] != math.inf:
            self._alarm[kind] *= 1.05
            if self._alarm[kind] > self.max_interval:
                self._alarm[kind] = math.inf

    def _track(self, check_number: int, ready: bool, waited: float) -> None:
        """Nudge a tracker by an outcome, if it says something about its current delay.

        Outcomes arrive late (--max-pending requests are out at once, each
        checked at the delay of its day): a placeholder after a shorter wait
        than today's delay, or an export after a longer one, says nothing
        new. Counting them anyway drove the first delay up ~60 steps before
        the first answer to a longer delay came back, and a 93 % target comes
        down only 0.6 % per success.
        """
        level = check_number - 1
        if level >= self.levels:
            return
        current = self.delays[level]
        if ready and waited > current * _STALE:
            return
        if not ready and waited * _STALE < current:
            return
        self.observe(check_number, ready)
        if level == 0:
            # a delay the expiry cap overrides must not climb unseen behind it
            self.delays[0] = min(self.delays[0], max(self.min_delay, self.expiry.first_cap()))

    def observe(self, check_number: int, ready: bool) -> None:
        """Nudge the tracker of check ``check_number`` (1-based) by one outcome."""
        level = check_number - 1
        if level >= self.levels:
            return
        self.observations[level] += 1
        # Robbins–Monro on log(delay): equilibrium where P(ready) == target.
        gradient = self.targets[level] - (1.0 if ready else 0.0)
        updated = self.delays[level] * math.exp(self.step * gradient)
        self.delays[level] = min(self.max_interval, max(self.min_delay, updated))
