"""Per-account rate limits, on the event loop's clock: a token bucket, or a one-second window.

Like the real platform's undocumented limit, it is shared by everything that
uses one access token: the key is the account, not the connection. The
platform does not say how it counts, so the simulator can play the three
usual shapes (``--limit-shape``): a token bucket (``rate`` a second, at most
``burst`` stored), a fixed window (at most ``rate`` requests in each calendar
second) and a sliding window (at most ``rate`` in any one second). Each
``take`` answers 0.0 (accepted) or the seconds until a request would be.
"""

from __future__ import annotations

import math
from collections import deque

__all__ = ["FixedWindows", "Limiter", "SlidingWindows", "TokenBuckets", "make_limiter"]


class TokenBuckets:
    """One token bucket per key: `rate` tokens/second, at most `burst` stored."""

    __slots__ = ("_buckets", "burst", "rate")

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._buckets: dict[str, list[float]] = {}  # key -> [tokens, last refill time]

    def take(self, key: str, now: float) -> float:
        """Take one token for `key`; 0.0 if allowed, else seconds until one is available."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = [self.burst, now]
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return 0.0
        bucket[0] = tokens
        return (1.0 - tokens) / self.rate

    @staticmethod
    def retry_after_seconds(wait: float) -> int:
        """The Retry-After value in whole seconds: rounded up, at least 1."""
        return max(1, math.ceil(wait))

    def __repr__(self) -> str:
        return (
            f"TokenBuckets(rate={self.rate:g}/s, burst={self.burst:g}, keys={len(self._buckets)})"
        )


class FixedWindows:
    """At most ``limit`` requests per key in each calendar second (``floor(now)``)."""

    __slots__ = ("_windows", "limit")

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self._windows: dict[str, list[int]] = {}  # key -> [second, requests in it]

    def take(self, key: str, now: float) -> float:
        """Count one request for ``key``; 0.0 if allowed, else seconds until the next window."""
        second = math.floor(now)
        window = self._windows.get(key)
        if window is None or window[0] != second:
            window = self._windows[key] = [second, 0]
        if window[1] < self.limit:
            window[1] += 1
            return 0.0
        return second + 1 - now

    def __repr__(self) -> str:
        return f"FixedWindows(limit={self.limit:g}/s, keys={len(self._windows)})"


class SlidingWindows:
    """At most ``limit`` requests per key in any one second."""

    __slots__ = ("_times", "limit")

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self._times: dict[str, deque[float]] = {}  # key -> accepted requests of the last second

    def take(self, key: str, now: float) -> float:
        """Count one request for ``key``; 0.0 if allowed, else seconds until one leaves the window."""
        times = self._times.setdefault(key, deque())
        while times and times[0] <= now - 1.0:
            times.popleft()
        if len(times) < self.limit:
            times.append(now)
            return 0.0
        return times[0] + 1.0 - now

    def __repr__(self) -> str:
        return f"SlidingWindows(limit={self.limit:g}/s, keys={len(self._times)})"


Limiter = TokenBuckets | FixedWindows | SlidingWindows


def make_limiter(shape: str, rate: float, burst: int) -> Limiter:
    """The limit of ``shape`` (one of ``LIMIT_SHAPES``); ``burst`` only shapes a bucket."""
    if shape == "fixed-window":
        return FixedWindows(rate)
    if shape == "sliding-window":
        return SlidingWindows(rate)
    return TokenBuckets(rate, burst)
