"""What the platform's answers say about its token bucket: the rates that fit them.

The platform never states its limit, but a token bucket (``rate`` tokens a
second, at most ``burst`` stored, one taken per accepted request) leaves a
trace: every request it accepted found a token, and every one it refused
found none. Given the times requests were sent, each candidate ``rate`` fixes
how deep the bucket's *deficit* (tokens owed below full) was at each moment,
by Lindley's recursion: it grows by one per request and drains at ``rate``.
So for that rate:

* the burst is at least the deepest deficit any accepted request reached, and
* it is under the deficit a refused request would have reached.

One refusal fits every rate (with the burst chosen to match). Two refusals,
reached along different paths (the steep overshoot of the first doubling,
then a slow creep a little over the limit), fit only rates near the real
one: that is what ``SendTimeline.fit`` finds, and clean running afterwards
narrows it further (a pace that ran long unrefused rules out the rates it
would have drained the bucket at). A platform that is not a token bucket
(a fixed or sliding window), a refusal that was noise, or a limit shared
with another client, fits nothing; the search then falls back on the
refused paces alone.

The timeline is kept as segments (start, end, requests sent) of at most
``SEGMENT`` seconds: requests are assumed evenly spread within one, which is
how the limiter sends them. Only the last ``HORIZON`` seconds are kept: the
deficit forgets what came before any pause longer than burst / rate.
"""

from __future__ import annotations

import bisect
import math
from collections import deque

__all__ = ["SendTimeline"]

#: the longest segment (seconds): the resolution of the timeline
SEGMENT = 0.25
#: a gap this much shorter or longer than the segment's spacing so far starts a new segment
UNEVEN = 0.5
#: seconds of history kept
HORIZON = 90.0
#: refusals kept (the oldest carry the least: the limit may have changed since)
MAX_REFUSALS = 6
#: tokens of slack in each comparison: the even spread within a segment is an
#: approximation, and requests reach the platform with some jitter
SLACK = 2.0
#: the deepest bucket considered, in seconds of its rate
MAX_BURST_SECONDS = 2.0
#: the least deficit (tokens) a refused request can have met: a bucket refuses only when empty
EMPTY = 1e-6
#: candidate rates per doubling on the coarse scan, and bisection steps at each edge
SCAN_PER_DOUBLING = 64
REFINE_STEPS = 8
#: a scan point this many tokens short of fitting may still sit beside a narrow band
LOOK = 5.0


class SendTimeline:
    """Requests sent and refusals seen, in the limiter's clock; the bucket rates that fit them."""

    def __init__(self) -> None:
        # Closed segments: first and last grant, and how many were granted (and not refused).
        self._starts: deque[float] = deque()
        self._ends: deque[float] = deque()
        self._counts: deque[int] = deque()
        self._open: list[float] = []  # the open segment's grants, to place a refusal exactly
        self._refusals: deque[float] = deque()  # send times, in order
        #: per refusal: how many requests before it in its segment, when counted exactly
        self._placed: dict[float, int] = {}

    def __repr__(self) -> str:
        return f"<SendTimeline segments={len(self._ends)} refusals={len(self._refusals)}>"

    @property
    def refusals(self) -> int:
        """How many refusals are on the timeline now."""
        return len(self._refusals)

    def sent(self, at: float) -> None:
        """One request sent at ``at`` (non-decreasing)."""
        open_ = self._open
        if open_:
            if at - open_[0] > SEGMENT:
                self._close(at)
            elif len(open_) > 1:
                # A segment is evenly spaced by assumption: requests that left
                # in a bunch (several submits waiting on one journal commit),
                # or after a lull, start one of their own.
                gap = at - open_[-1]
                spacing = (open_[-1] - open_[0]) / (len(open_) - 1)
                if gap < spacing * UNEVEN or gap * UNEVEN > spacing:
                    self._close(at)
        self._open.append(at)

    def paced(self, now: float) -> None:
        """The pace changed at ``now``: what follows is a segment of its own."""
        self._close(now)

    def refused(self, sent_at: float, now: float) -> None:
        """The request sent at ``sent_at`` was refused (heard at ``now``): no token then."""
        if sent_at < now - HORIZON:
            return
        if self._open and sent_at >= self._open[0]:
            # Counted exactly: of several grants at one instant, it is taken
            # as the last, which asks the least of the burst.
            self._placed[sent_at] = bisect.bisect_right(self._open, sent_at)
        self._close(now)
        bisect.insort(self._refusals, sent_at)  # answers may come back out of order
        if len(self._refusals) > MAX_REFUSALS:
            self._placed.pop(self._refusals.popleft(), None)

    def unsent(self, sent_at: float) -> None:
        """A request sent at ``sent_at`` was refused: it took no token, so it does not count."""
        if self._open and sent_at >= self._open[0]:
            index = bisect.bisect_right(self._open, sent_at) - 1
            del self._open[index]
            return
        for i in range(len(self._ends) - 1, -1, -1):
            if self._starts[i] <= sent_at:
                if self._counts[i] > 1:
                    self._counts[i] -= 1
                return

    def forget_refusals(self, keep_last: int = 0) -> None:
        """Drop the older refusals (the limit changed, or they were noise)."""
        while len(self._refusals) > keep_last:
            self._placed.pop(self._refusals.popleft(), None)

    def _close(self, now: float) -> None:
        """Close the open segment (from its first grant to its last), and forget old history."""
        if self._open:
            self._starts.append(self._open[0])
            self._ends.append(self._open[-1])
            self._counts.append(len(self._open))
            self._open = []
        while self._ends and self._ends[0] < now - HORIZON:
            self._starts.popleft()
            self._ends.popleft()
            self._counts.popleft()
        while self._refusals and self._refusals[0] < now - HORIZON:
            self._placed.pop(self._refusals.popleft(), None)

    def _bounds(self, rate: float) -> tuple[float, float]:
        """(the least burst the accepted requests need, the most the refusals allow) at ``rate``."""
        need = 1.0  # every bucket holds at least one token
        allow = math.inf
        deficit = 0.0  # after the last request so far
        last = -math.inf
        refusals = iter(self._refusals)
        pending = next(refusals, None)
        for start, end, count in zip(self._starts, self._ends, self._counts, strict=True):
            while pending is not None and pending < start:  # refused in a gap: drained since
                allow = min(allow, max(0.0, deficit - rate * (pending - last)) + 1.0)
                pending = next(refusals, None)
            deficit = max(0.0, deficit - rate * (start - last))
            span = end - start
            # Requests evenly spaced from the first to the last (how the limiter
            # sends them): the deficit moves linearly between the two.
            spacing = span / (count - 1) if count > 1 else 0.0
            after = max(1.0, deficit + count - rate * span)
            need = max(need, deficit + 1.0, after)
            while pending is not None and pending <= end:
                placed = self._placed.get(pending)
                if placed is not None:
                    before = placed
                elif spacing > 0:
                    before = min(count, math.floor((pending - start) / spacing) + 1)
                else:
                    before = count
                here = max(0.0, deficit + before - rate * (pending - start))
                allow = min(allow, here + 1.0)
                pending = next(refusals, None)
            deficit, last = after, end
        while pending is not None:  # refused after the last closed segment
            allow = min(allow, max(0.0, deficit - rate * (pending - last)) + 1.0)
            pending = next(refusals, None)
        return need, allow

    def least_burst(self, rate: float) -> float:
        """The smallest bucket (tokens) at ``rate`` that took every accepted request."""
        return self._bounds(rate)[0]

    def _margin(self, rate: float) -> float:
        """How much room a bucket at ``rate`` leaves for its burst (it fits when over zero)."""
        need, allow = self._bounds(rate)
        if allow <= 1.0 + EMPTY:
            # A refusal from a bucket this rate says was (almost) full: no burst fits.
            return -math.inf
        # A burst of more than a few seconds' worth is no rate limit anyone sets;
        # without this cap a slower rate with a huge bucket fits as well.
        return min(allow + SLACK, rate * MAX_BURST_SECONDS + 1.0) - need

    def fit(self, low: float, high: float, now: float) -> tuple[float, float] | None:
        """The range of rates in [low, high] a token bucket fits everything with, or None.

        Only meaningful with two refusals or more (one fits every rate). The
        fitting rates lie in narrow bands where the room is over zero (too
        slow a rate needs a deeper bucket than the refusals allow, too fast a
        one runs dry too late). The coarse scan finds the local peaks of the
        room, a ternary search sharpens each, and the answer spans every band
        found: clean running later rules the wrong ones out.
        """
        if len(self._refusals) < 2 or not 0 < low < high:
            return None
        self._close(now)
        steps = max(2, math.ceil(SCAN_PER_DOUBLING * math.log2(high / low)))
        grid = [low * (high / low) ** (i / steps) for i in range(steps + 1)]
        room = [self._margin(rate) for rate in grid]
        bands: list[tuple[float, float]] = []
        for i, here in enumerate(room):
            left_room = room[i - 1] if i > 0 else -math.inf
            right_room = room[i + 1] if i < steps else -math.inf
            if here < left_room or here < right_room or here < -LOOK:
                continue  # not a peak worth sharpening
            peak = self._peak(grid[max(0, i - 1)], grid[min(steps, i + 1)])
            if self._margin(peak) <= 0:
                continue
            below = next((j for j in range(i, -1, -1) if grid[j] < peak and room[j] <= 0), None)
            above = next((j for j in range(i, steps + 1) if grid[j] > peak and room[j] <= 0), None)
            bands.append(
                (
                    grid[0] if below is None else self._edge(grid[below], peak),
                    grid[steps] if above is None else self._edge(grid[above], peak),
                )
            )
        if not bands:
            return None
        return min(lo for lo, _ in bands), max(hi for _, hi in bands)

    def _peak(self, left: float, right: float) -> float:
        """Where the room peaks between ``left`` and ``right`` (ternary search)."""
        for _ in range(REFINE_STEPS * 2):
            a, b = left + (right - left) / 3, right - (right - left) / 3
            if self._margin(a) < self._margin(b):
                left = a
            else:
                right = b
        return (left + right) / 2

    def _edge(self, outside: float, inside: float) -> float:
        """Bisect between a rate that does not fit and one that does: the fitting edge."""
        for _ in range(REFINE_STEPS):
            middle = (outside + inside) / 2
            if self._margin(middle) > 0:
                inside = middle
            else:
                outside = middle
        return inside
