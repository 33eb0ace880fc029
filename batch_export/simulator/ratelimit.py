"""Per-account token bucket, on the event loop's clock.

Like the real platform's undocumented limit, it is shared by everything that
uses one access token: the bucket key is the account, not the connection.
"""

from __future__ import annotations

import math

__all__ = ["TokenBuckets"]


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
