"""The platform ``batch-export run --simulate`` plays: the demo's world, stated once.

The mixed wire: every documented and observed answer of the platform at
random (placeholders with and without info, request IDs in any header or
body, 429 and load-balancer 503/504 throttling, empty replies, auth blips,
short outages), so the demo shows the exporter coping with them. Its limit
(50 req/s, like a modest account) is unknown to the exporter, which finds
it; a short outage every few seconds shows the outage gate at work. It lists
the demo database 42 and collection 7 (every simulator's default), so
``ids --simulate`` and then ``run --simulate`` is the README's migration flow.
"""

from __future__ import annotations

from .config import DEFAULT_COLLECTIONS, DEFAULT_DATABASES, SimulatorConfig

__all__ = ["demo_config"]


def demo_config() -> SimulatorConfig:
    """The simulated platform of the README's demo."""
    return SimulatorConfig(
        prepare_delay="0.2:1.5",
        export_size=20_000,
        seed=7,
        wire="mixed",
        rate_limit=50,
        burst=10,
        outage_every=6.0,
        outage_seconds=1.0,
        databases=dict(DEFAULT_DATABASES),
        collections=dict(DEFAULT_COLLECTIONS),
    )
