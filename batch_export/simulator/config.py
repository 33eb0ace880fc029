"""The simulator's configuration and the parsers for its textual specs.

Everything that makes one simulated platform behave differently from another
(limits, delays, sizes, faults, hostile targets) lives in one frozen
dataclass, so a test can state the world it runs in in one expression and the
CLI only has to parse strings into it.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

__all__ = [
    "BEHAVIOURS",
    "DEFAULT_TOKEN",
    "FAULT_KINDS",
    "DelayDistribution",
    "FixedDelay",
    "LongTailDelay",
    "SimulatorConfig",
    "UniformDelay",
    "parse_delay",
    "parse_size",
]

DEFAULT_TOKEN = "sim-0123456789abcdef0123456789abcdef"  # noqa: S105 - a public dummy
FAULT_KINDS: tuple[str, ...] = ("500", "503", "reset", "truncate", "slow", "stall")
BEHAVIOURS: frozenset[str] = frozenset(
    {
        "wrong-id",
        "wrong-type",
        "no-info",
        "not-json",
        "placeholder-ready",
        "short-body",
        "no-request-id",
        "html-error",
        "huge-error",
        "bad-request",
    }
)


@runtime_checkable
class DelayDistribution(Protocol):
    """Anything that draws a preparation delay (seconds) from a seeded RNG."""

    def sample(self, rng: random.Random) -> float: ...


@dataclass(frozen=True)
class FixedDelay:
    """Every request takes exactly `seconds` to prepare."""

    seconds: float

    def sample(self, rng: random.Random) -> float:
        """The fixed value; the RNG is untouched so other draws stay stable."""
        return self.seconds

    def __repr__(self) -> str:
        return f"FixedDelay({self.seconds:g}s)"


@dataclass(frozen=True)
class UniformDelay:
    """Preparation takes a uniformly drawn time between `low` and `high`."""

    low: float
    high: float

    def sample(self, rng: random.Random) -> float:
        """One uniform draw."""
        return rng.uniform(self.low, self.high)

    def __repr__(self) -> str:
        return f"UniformDelay({self.low:g}s..{self.high:g}s)"


@dataclass(frozen=True)
class LongTailDelay:
    """Uniform `low..high`, but with probability `p` multiplied by a factor.

    Models people with years of mail: most files are ready at once, a few take
    10-20 times longer. The factor is drawn uniformly in [factor/2, factor].
    """

    low: float
    high: float
    p: float
    factor: float

    def sample(self, rng: random.Random) -> float:
        """A uniform draw, stretched for the unlucky fraction `p`."""
        value = rng.uniform(self.low, self.high)
        if rng.random() < self.p:
            value *= rng.uniform(self.factor / 2, self.factor)
        return value

    def __repr__(self) -> str:
        return (
            f"LongTailDelay({self.low:g}s..{self.high:g}s, p={self.p:g}, factor<={self.factor:g})"
        )


_DELAY_HELP = (
    "accepted: SECONDS (e.g. '2'), LOW:HIGH (e.g. '0.5:3') or "
    "longtail:LOW:HIGH:P:FACTOR (e.g. 'longtail:0.2:1:0.05:20')"
)


def _number(text: str, spec: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(
            f"bad delay spec {spec!r}: {text!r} is not a number; {_DELAY_HELP}"
        ) from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"bad delay spec {spec!r}: {text!r} must be a finite number >= 0")
    return value


def parse_delay(spec: str) -> DelayDistribution:
    """Parse a preparation-delay spec into a distribution (ValueError if malformed)."""
    text = spec.strip()
    parts = text.split(":")
    if parts[0].lower() == "longtail":
        if len(parts) != 5:
            raise ValueError(f"bad delay spec {spec!r}: {_DELAY_HELP}")
        low, high, p, factor = (_number(x, spec) for x in parts[1:])
        if high < low:
            raise ValueError(f"bad delay spec {spec!r}: HIGH must be >= LOW")
        if p > 1:
            raise ValueError(f"bad delay spec {spec!r}: P is a probability (0..1)")
        if factor < 1:
            raise ValueError(f"bad delay spec {spec!r}: FACTOR must be >= 1")
        return LongTailDelay(low, high, p, factor)
    if len(parts) == 1:
        return FixedDelay(_number(parts[0], spec))
    if len(parts) == 2:
        low, high = _number(parts[0], spec), _number(parts[1], spec)
        if high < low:
            raise ValueError(f"bad delay spec {spec!r}: HIGH must be >= LOW")
        return UniformDelay(low, high)
    raise ValueError(f"bad delay spec {spec!r}: {_DELAY_HELP}")


_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]?)b?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1_000, "m": 1_000_000, "g": 1_000_000_000}


def parse_size(spec: str | int) -> int:
    """Parse '512', '20k', '1.5m', '1g' (decimal units) into bytes (ValueError if malformed)."""
    if isinstance(spec, int):
        if spec < 0:
            raise ValueError(f"bad size {spec!r}: must be >= 0")
        return spec
    match = _SIZE_RE.match(spec)
    if match is None:
        raise ValueError(
            f"bad size {spec!r}: accepted: a byte count with an optional decimal unit "
            "k, m or g (e.g. 512, 20k, 1.5m, 1g)"
        )
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])


@dataclass(frozen=True)
class SimulatorConfig:
    """How the simulated platform behaves; see docs/simulator.md for each knob."""

    token: str = DEFAULT_TOKEN
    seed: int = 0
    rate_limit: float | None = None
    burst: int = 20
    retry_after_http_date: bool = False
    prepare_delay: str | DelayDistribution = "0.5:3"
    export_size: int = 20_000
    export_sizes: Mapping[str, int] = field(default_factory=dict)
    expire_after: float | None = 600.0
    jwt_lifetime: float = 86400.0
    fault_rate: float = 0.0
    fault_kinds: tuple[str, ...] = FAULT_KINDS
    slow_seconds: float = 2.0
    missing_ids: frozenset[str] = frozenset()
    id_as_string: bool = False
    behaviours: Mapping[str, str] = field(default_factory=dict)
    redirect_to: str | None = None
    databases: Mapping[str, int] = field(default_factory=dict)
    collections: Mapping[str, int] = field(default_factory=dict)
    wrap_id_lists: bool = False
    record_requests: bool = True

    def __post_init__(self) -> None:
        """Reject impossible worlds at construction, not at the first request."""
        if not self.token:
            raise ValueError("token must not be empty")
        if self.rate_limit is not None and not self.rate_limit > 0:
            raise ValueError("rate_limit must be > 0 requests/second, or None for unlimited")
        if self.burst < 1:
            raise ValueError("burst must be >= 1")
        if self.export_size < 0 or any(v < 0 for v in self.export_sizes.values()):
            raise ValueError("export sizes must be >= 0 bytes")
        if self.expire_after is not None and self.expire_after < 0:
            raise ValueError("expire_after must be >= 0 seconds, or None for never")
        if not self.jwt_lifetime > 0:
            raise ValueError("jwt_lifetime must be > 0 seconds")
        if not 0.0 <= self.fault_rate <= 1.0:
            raise ValueError("fault_rate is a probability: 0..1")
        unknown = [k for k in self.fault_kinds if k not in FAULT_KINDS]
        if unknown or (self.fault_rate > 0 and not self.fault_kinds):
            raise ValueError(f"fault_kinds: accepted: {', '.join(FAULT_KINDS)}; got {unknown}")
        if self.slow_seconds < 0:
            raise ValueError("slow_seconds must be >= 0")
        bad = sorted({v for v in self.behaviours.values() if v not in BEHAVIOURS})
        if bad:
            raise ValueError(
                f"unknown behaviour(s) {bad}; accepted: {', '.join(sorted(BEHAVIOURS))}"
            )
        if self.redirect_to is not None and not self.redirect_to.startswith(
            ("http://", "https://")
        ):
            raise ValueError("redirect_to must be an http(s) base URL")
        if any(v < 0 for v in (*self.databases.values(), *self.collections.values())):
            raise ValueError("database/collection sizes must be >= 0")
        if isinstance(self.prepare_delay, str):
            parse_delay(self.prepare_delay)  # raises ValueError with the reason

    @property
    def delay(self) -> DelayDistribution:
        """The preparation delay as a distribution, whatever form it was given in."""
        if isinstance(self.prepare_delay, str):
            return parse_delay(self.prepare_delay)
        return self.prepare_delay

    def size_for(self, target_id: str) -> int:
        """Export size (bytes, before clamping to the minimum) for one target."""
        return self.export_sizes.get(target_id, self.export_size)
