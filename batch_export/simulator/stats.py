"""Counters and the request log behind ``GET /_sim/stats`` and ``/_sim/log``.

Tests of the exporter assert on these (requests per endpoint, POSTs per
target, 429s sent, credentials seen), so the shape is part of the contract:
see docs/simulator.md. Everything is O(1) per request.
"""

from __future__ import annotations

from collections import Counter, deque
from typing import Any

from .config import AUTH_FAULT_KINDS, FAULT_KINDS, JUNK_BEHAVIOURS, THROTTLE_STYLES
from .wire import WIRE_VARIANTS

__all__ = ["ENDPOINTS", "LOG_CAP", "Stats"]

ENDPOINTS: tuple[str, ...] = (
    "POST datarequest",
    "GET datarequest",
    "GET status",
    "GET data",
    "POST authenticate",
    "GET profileids",
    "GET subprofileids",
)
FAULT_NAMES: tuple[str, ...] = FAULT_KINDS
LOG_CAP = 200_000  # entries kept for /_sim/log (the most recent ones)


class Stats:
    """Everything the simulator counts; `snapshot()` is the JSON of /_sim/stats."""

    def __init__(self, record_requests: bool = True) -> None:
        self.record_requests = record_requests
        self.log: deque[tuple[float, str, str, int]] = deque(maxlen=LOG_CAP)
        #: how the rate limit counts (set once by the wire; not a counter, so never reset)
        self.limit_shape: str | None = None
        self.reset()

    def reset(self) -> None:
        """Zero every counter and empty the log (POST /_sim/reset-stats)."""
        self.requests: Counter[str] = Counter(dict.fromkeys(ENDPOINTS, 0))
        self.posts_per_target: Counter[str] = Counter()
        self.created = 0
        self.created_per_target: Counter[str] = Counter()
        self.responses: Counter[str] = Counter()
        self.faults: Counter[str] = Counter(dict.fromkeys(FAULT_NAMES, 0))
        self.bytes_served = 0
        self.exports_served = 0
        self.expired_seen = 0
        self.forgotten = 0
        self.forgotten_seen = 0
        self.credentials_received = 0
        self.webhooks: Counter[str] = Counter({"sent": 0, "failed": 0, "refused": 0})
        self.report_emails: list[str] = []
        self.report_urls = 0
        self.throttled: Counter[str] = Counter(dict.fromkeys(THROTTLE_STYLES, 0))
        self.auth_faults: Counter[str] = Counter(dict.fromkeys(AUTH_FAULT_KINDS, 0))
        self.junk: Counter[str] = Counter(dict.fromkeys(JUNK_BEHAVIOURS, 0))
        self.trickles = 0
        self.outages = 0
        self.outage_seconds = 0.0
        self.wire: Counter[str] = Counter(dict.fromkeys(WIRE_VARIANTS, 0))
        self.log.clear()

    def record(self, t: float, method: str, endpoint: str, status: int) -> None:
        """Count one finished response that arrived at `t` (status 0 = connection aborted, no answer)."""
        self.responses[str(status)] += 1
        if self.record_requests:
            self.log.append((round(t, 6), method, endpoint, status))

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready copy of all counters."""
        return {
            "requests": dict(self.requests),
            "requests_total": sum(self.requests.values()),
            "posts_per_target": dict(self.posts_per_target),
            "created": self.created,
            "created_per_target": dict(self.created_per_target),
            "responses": dict(self.responses),
            "responses_429": self.responses.get("429", 0),
            "faults": dict(self.faults),
            "bytes_served": self.bytes_served,
            "exports_served": self.exports_served,
            "expired_seen": self.expired_seen,
            "forgotten": self.forgotten,
            "forgotten_seen": self.forgotten_seen,
            "credentials_received": self.credentials_received,
            "webhooks": dict(self.webhooks),
            "reports": {"email": list(self.report_emails), "url": self.report_urls},
            "throttled": dict(self.throttled),
            "auth_faults": dict(self.auth_faults),
            "junk": dict(self.junk),
            "trickles": self.trickles,
            "outages": self.outages,
            "outage_seconds": round(self.outage_seconds, 3),
            "wire": dict(self.wire),
            "limit_shape": self.limit_shape,
        }
