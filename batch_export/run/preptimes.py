"""The preparation-time distribution, learnt from interval-censored outcomes, and a check plan.

A check at ``t_b`` (seconds since the POST) that finds the export, after one
at ``t_a`` that found the placeholder, says the file became ready in
``(t_a, t_b]`` — never when exactly. ``PrepTimes`` keeps a histogram on a
log-spaced grid and folds each such interval in with one self-consistency
(EM) step: the interval's unit of weight is shared among the bins it covers in
proportion to their current mass. Old outcomes fade (a half-life of about
``memory`` outcomes), so a platform that slows down is followed.

``plan()`` turns the histogram into the checks that minimise, for a request
still pending at a grid point, the expected number of further checks plus
``wait_cost`` checks per second the file then waits unfetched (a waiting file
holds a ``--max-pending`` slot): a dynamic programme over the grid, solved
backwards, O(grid²) per solve, re-solved every ``replan_every`` outcomes at
first and every tenth of ``memory`` once thousands are in.
"""

from __future__ import annotations

import bisect
import math

__all__ = ["PrepTimes"]

_FIRST_EDGE = 0.01  # seconds; nothing is planned sooner
_RATIO = 1.12  # grid spacing: checks land within 12 % of the chosen moment
_LAST_EDGE = 3600.0


def _grid() -> list[float]:
    edges = [0.0, _FIRST_EDGE]
    while edges[-1] < _LAST_EDGE:
        edges.append(edges[-1] * _RATIO)
    return edges


class PrepTimes:
    """Histogram of time-to-ready and the check plan it implies."""

    def __init__(
        self, *, wait_cost: float = 0.05, memory: int = 2000, replan_every: int = 50
    ) -> None:
        self.edges = _grid()
        bins = len(self.edges) - 1
        # A faint prior, even in log-time from 0.1 s to 60 s: an interval
        # that covers no observed mass yet is still shared out sensibly.
        low = bisect.bisect_right(self.edges, 0.1)
        high = bisect.bisect_right(self.edges, 60.0)
        self.mass = [0.0] * bins
        for j in range(low, high):
            self.mass[j] = 1.0 / (high - low)
        self.wait_cost = wait_cost
        self.observed = 0
        self._weight = 1.0  # grows instead of decaying every old bin
        self._growth = 2.0 ** (1.0 / memory)
        self._replan_every = replan_every
        #: re-solved every ``replan_every`` outcomes at first, at most every tenth of ``memory``
        self._replan_most = max(replan_every, memory // 10)
        self._replan_at = replan_every
        self._next: list[int] | None = None

    def observe(self, after: float, ready_by: float) -> None:
        """A request was not ready ``after`` seconds from its POST and was ready at ``ready_by``."""
        edges, mass = self.edges, self.mass
        lo = max(0, bisect.bisect_right(edges, after) - 1)
        hi = min(len(mass) - 1, bisect.bisect_left(edges, ready_by) - 1)
        hi = max(lo, hi)
        # the floor keeps an interval of zero-mass bins from vanishing
        floor = 1e-9 * self._weight
        # Only the two end bins are partly covered; every bin between lies
        # inside (after, ready_by) whole, its overlap exactly 1, so its share
        # is its mass plus the floor: summed in C, and updated in one pass
        # (this runs once per export).
        first = self._share(lo, after, ready_by, floor)
        weight = self._weight
        if hi == lo:
            mass[lo] += weight if first > 0.0 else 0.0  # the whole unit, or nothing to share it
        else:
            last = self._share(hi, after, ready_by, floor)
            inner = mass[lo + 1 : hi]
            total = first + last + sum(inner) + floor * len(inner)
            if total <= 0.0:
                total = 1.0
            scale = weight / total
            mass[lo] += scale * first
            mass[lo + 1 : hi] = [m + (m + floor) * scale for m in inner]
            mass[hi] += scale * last
        self.observed += 1
        self._weight *= self._growth
        if self._weight > 1e100:  # rescale long before floats overflow
            self.mass = [m / self._weight for m in self.mass]
            self._weight = 1.0
        if self.observed >= self._replan_at:
            self._next = None
            # Further apart as outcomes pile up: a solve costs ~0.5 ms, and
            # once thousands are in, fifty more barely move the plan (every
            # fifty was 1 % of the CPU of a run saving 600 exports a second).
            step = max(self._replan_every, self.observed // 4)
            self._replan_at = self.observed + min(step, self._replan_most)

    def _share(self, j: int, after: float, ready_by: float, floor: float) -> float:
        """Bin ``j``'s claim on the interval: the part of it the interval covers, times its mass."""
        left, right = self.edges[j], self.edges[j + 1]
        overlap = (min(right, ready_by) - max(left, after)) / (right - left)
        return max(overlap, 0.0) * (self.mass[j] + floor)

    def survival(self, t: float) -> float:
        """P(not ready at ``t``) under the current histogram."""
        total = sum(self.mass)
        j = bisect.bisect_right(self.edges, t) - 1
        if j >= len(self.mass):
            return 0.0
        before = sum(self.mass[:j])
        left, right = self.edges[j], self.edges[j + 1]
        inside = self.mass[j] * (t - left) / (right - left)
        return max(0.0, 1.0 - (before + inside) / total)

    def next_check(self, elapsed: float) -> float:
        """Seconds since the POST at which a request still pending at ``elapsed`` is next checked."""
        plan = self._next if self._next is not None else self._solve()
        i = min(len(plan) - 1, max(0, bisect.bisect_right(self.edges, elapsed) - 1))
        if plan[i] <= i:  # later than anything seen so far: back off
            return elapsed * 1.5
        return self.edges[plan[i]]

    def _solve(self) -> list[int]:
        """The plan: for each grid point i (pending there), the grid point of the next check."""
        edges, mass = self.edges, self.mass
        total = sum(mass) or 1.0
        n = len(edges)
        # cdf[k] = P(T <= edges[k]); first[k] = E[T; T <= edges[k]] (mass at bin midpoints)
        cdf, first = [0.0] * n, [0.0] * n
        for j, m in enumerate(mass):
            p = m / total
            cdf[j + 1] = cdf[j] + p
            first[j + 1] = first[j] + p * (edges[j] + edges[j + 1]) / 2
        last = max((j + 1 for j, m in enumerate(mass) if m / total > 1e-6), default=n - 1)
        # past the last mass: one check catches it (plan[i] == i means "back off")
        plan = list(range(n))
        value = [1.0] * n
        for i in range(last - 1, -1, -1):
            alive = 1.0 - cdf[i]
            if alive <= 1e-12:
                plan[i], value[i] = last, 1.0
                continue
            best, best_j = math.inf, last
            for j in range(i + 1, last + 1):
                caught = cdf[j] - cdf[i]
                waited = edges[j] * caught - (first[j] - first[i])
                cost = 1.0 + (self.wait_cost * waited + (1.0 - cdf[j]) * value[j]) / alive
                if cost < best:
                    best, best_j = cost, j
            plan[i], value[i] = best_j, best
        self._next = plan
        return plan
