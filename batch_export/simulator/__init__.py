"""An embedded simulator of the Copernica data request REST API (v1-v4).

It plays the other side of the wire for the demo, the tests and the
benchmarks, so it deliberately imports nothing from the exporter. See
docs/simulator.md for what it simulates.
"""

from .config import (
    BEHAVIOURS,
    DEFAULT_TOKEN,
    FAULT_KINDS,
    DelayDistribution,
    SimulatorConfig,
    parse_delay,
    parse_size,
)
from .server import Simulator, run_forever, serve_forever

__all__ = [
    "BEHAVIOURS",
    "DEFAULT_TOKEN",
    "FAULT_KINDS",
    "DelayDistribution",
    "Simulator",
    "SimulatorConfig",
    "parse_delay",
    "parse_size",
    "run_forever",
    "serve_forever",
]
