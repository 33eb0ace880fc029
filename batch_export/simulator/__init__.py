"""An embedded simulator of the Copernica data request REST API (v1-v4).

It plays the other side of the wire for the demo, the tests and the
benchmarks, so it deliberately imports nothing from the exporter. See
docs/simulator.md for what it simulates.
"""

from .config import (
    AUTH_FAULT_KINDS,
    BEHAVIOURS,
    DEFAULT_TOKEN,
    FAULT_KINDS,
    JUNK_BEHAVIOURS,
    JUNK_FOREVER,
    MIXED_GROUPS,
    MIXED_RATES,
    PLACEHOLDER_WORDINGS,
    REQUEST_ID_PLACES,
    THROTTLE_STYLES,
    DelayDistribution,
    SimulatorConfig,
    parse_delay,
    parse_size,
)
from .server import Simulator, run_forever, serve_forever
from .wire import WIRE_VARIANTS

__all__ = [
    "AUTH_FAULT_KINDS",
    "BEHAVIOURS",
    "DEFAULT_TOKEN",
    "FAULT_KINDS",
    "JUNK_BEHAVIOURS",
    "JUNK_FOREVER",
    "MIXED_GROUPS",
    "MIXED_RATES",
    "PLACEHOLDER_WORDINGS",
    "REQUEST_ID_PLACES",
    "THROTTLE_STYLES",
    "WIRE_VARIANTS",
    "DelayDistribution",
    "Simulator",
    "SimulatorConfig",
    "parse_delay",
    "parse_size",
    "run_forever",
    "serve_forever",
]
