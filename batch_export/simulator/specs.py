"""The textual specs a config takes: preparation-delay distributions and byte sizes.

``parse_delay`` turns 'S', 'LO:HI' or 'longtail:LO:HI:P:FACTOR' into a seeded
distribution; ``parse_size`` turns '512', '20k', '1.5m' or '1g' into bytes.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = [
    "DelayDistribution",
    "FixedDelay",
    "LongTailDelay",
    "UniformDelay",
    "parse_delay",
    "parse_size",
]


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
