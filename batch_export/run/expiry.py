"""How long a ready file stays on the platform, learnt from the 404s of readiness checks.

The platform does not say when files expire, and a 404 ("unknown or expired
request ID") has two causes: the file was ready and expired before the
check, or the platform lost the request (forgot it). Only the first says
anything about expiry, and the two leave different traces:

- expiry needs the file to have been ready for longer than the expiry, so the
  share of checks that find it gone *jumps* once the time since the request
  was last seen alive (the gap) passes the expiry: below it almost none, above
  it many;
- forgetting happens while a file is being prepared, whatever the gap, so its
  share is about flat in the gap (and at most the forget rate).

So ``GapEvidence`` counts checks and 404s per log-spaced bucket of gap and
looks for the bucket edge where the 404 share steps up the most; only a step
that is large both in ratio and in absolute terms (``min_ratio``,
``min_rise``) and backed by enough 404s counts as an expiry bound. A platform
that forgets but never expires shows no such step, so its checks are not made
earlier. Two separate counts are kept: first checks (gap = time since the POST,
which includes the preparation) and later checks (gap = time since the
placeholder before), because the same expiry shows as different gaps in each.
"""

from __future__ import annotations

import bisect
import math
import random

__all__ = ["ExpiryModel", "GapEvidence"]

_RATIO = 1.1
_EDGES = [0.05 * _RATIO**k for k in range(150)]  # 0.05 s .. ~17 days


class GapEvidence:
    """Checks and 404s per bucket of gap; the gap above which 404s step up, if any."""

    def __init__(
        self,
        *,
        min_gone: int = 5,
        min_checks: int = 10,
        min_ratio: float = 2.0,
        min_rise: float = 0.15,
    ) -> None:
        self.checks = [0] * len(_EDGES)
        self.gone = [0] * len(_EDGES)
        self.min_gone = min_gone
        self.min_checks = min_checks
        self.min_ratio = min_ratio
        self.min_rise = min_rise
        self._bounds: tuple[float, float] | None = None
        self._stale = False

    def observe(self, gap: float, gone: bool) -> None:
        """One check, ``gap`` seconds after the request was last seen alive."""
        b = max(0, bisect.bisect_right(_EDGES, gap) - 1)
        self.checks[b] += 1
        if gone:
            self.gone[b] += 1
            self._stale = True
        elif self._bounds is not None and gap >= self._bounds[0]:
            self._stale = True  # alive above the bound: the step may lie higher

    @property
    def bound(self) -> float | None:
        """The gap (seconds) from which checks find files gone markedly more often, or None."""
        bounds = self.bounds
        return None if bounds is None else bounds[0]

    @property
    def bounds(self) -> tuple[float, float] | None:
        """Where the step may lie: from above the last gap checked below it to the first above.

        The two differ when no check had a gap in between (checks kept below
        the first bound never look there); ``ExpiryModel`` probes that range.
        """
        if self._stale:
            self._bounds = self._step()
            self._stale = False
        return self._bounds

    def _step(self) -> tuple[float, float] | None:
        total_checks, total_gone = sum(self.checks), sum(self.gone)
        if total_gone < self.min_gone:
            return None
        gains: dict[int, float] = {}  # bucket edge index -> gain of a step there
        lo_checks = lo_gone = 0
        for k in range(1, len(_EDGES)):
            lo_checks += self.checks[k - 1]
            lo_gone += self.gone[k - 1]
            hi_checks, hi_gone = total_checks - lo_checks, total_gone - lo_gone
            if lo_checks < self.min_checks:
                continue
            if hi_gone < self.min_gone:  # (min_gone checks above the edge are enough)
                break
            p_lo, p_hi = lo_gone / lo_checks, hi_gone / hi_checks
            if p_hi < self.min_ratio * p_lo or p_hi - p_lo < self.min_rise:
                continue
            # the log-likelihood gain of a step at this edge over one flat share
            gain = _loglik(lo_gone, lo_checks) + _loglik(hi_gone, hi_checks)
            gains[k] = gain - _loglik(total_gone, total_checks)
        best = max(gains.values(), default=0.0)
        if best <= 0:
            return None
        low = min(k for k, gain in gains.items() if gain == best)
        high = low
        # no check between low and the next buckets up: the step may lie that high
        while high + 1 < len(_EDGES) and self.checks[high] == 0:
            high += 1
        return _EDGES[low], _EDGES[high]


def _loglik(gone: int, checks: int) -> float:
    """Binomial log-likelihood of ``gone`` of ``checks`` at its own maximum."""
    if checks == 0 or gone in (0, checks):
        return 0.0
    p = gone / checks
    return gone * math.log(p) + (checks - gone) * math.log(1.0 - p)


class ExpiryModel:
    """Caps on the first check's delay and on the interval between later checks."""

    #: how far below a learnt bound checks are kept (the bound is within one bucket of the step)
    margin = 0.9
    #: the share of checks allowed up to the top of an unresolved bound range (see ``bounds``)
    explore = 0.1

    def __init__(self, rng: random.Random | None = None) -> None:
        self.first = GapEvidence()
        self.later = GapEvidence()
        self._rng = rng or random.Random()

    def __repr__(self) -> str:
        first, later = self.first.bounds, self.later.bounds
        return f"<ExpiryModel first-check bounds={first} later-check bounds={later}>"

    def observe(self, check_number: int, gap: float, gone: bool) -> None:
        """Check ``check_number`` came ``gap`` seconds after the request was last seen alive."""
        (self.first if check_number == 1 else self.later).observe(gap, gone)

    def first_cap(self) -> float:
        """Latest first check (seconds after the POST); inf while nothing bounds it."""
        return self._cap(self.first)

    def later_cap(self) -> float:
        """Longest interval between later checks; inf while nothing bounds it."""
        return self._cap(self.later)

    def _cap(self, evidence: GapEvidence) -> float:
        bounds = evidence.bounds
        if bounds is None:
            return math.inf
        low, high = bounds
        # Mostly below the lowest the step may be; now and then up to the
        # highest, so a range no check has looked into gets looked into.
        if high > low and self._rng.random() < self.explore:
            return high * self.margin
        return low * self.margin
