"""The simulator's three limit shapes, on explicit clocks: what each one accepts and refuses."""

from __future__ import annotations

import pytest

from batch_export.simulator.config import LIMIT_SHAPES, SimulatorConfig
from batch_export.simulator.ratelimit import (
    FixedWindows,
    SlidingWindows,
    TokenBuckets,
    make_limiter,
)
from batch_export.simulator.state import SimState


def _accepted(limiter: FixedWindows | SlidingWindows, times: list[float]) -> int:
    return sum(limiter.take("account", at) == 0.0 for at in times)


def test_a_fixed_window_takes_twice_its_limit_across_a_boundary() -> None:
    """10 a calendar second: 10 at the end of one second and 10 more at the start of the next."""
    window = FixedWindows(10)
    late = [0.9 + i * 0.001 for i in range(12)]
    early = [1.0 + i * 0.001 for i in range(12)]
    assert _accepted(window, late) == 10
    assert window.take("account", 0.95) == pytest.approx(0.05)  # Retry-After: to the next second
    assert _accepted(window, early) == 10
    assert window.take("other", 1.5) == 0.0  # each account counts alone


def test_a_sliding_window_never_takes_more_than_its_limit_in_a_second() -> None:
    window = SlidingWindows(10)
    assert _accepted(window, [0.9 + i * 0.001 for i in range(12)]) == 10
    assert window.take("account", 1.0) == pytest.approx(0.9)  # until the oldest leaves
    assert window.take("account", 1.901) == 0.0


def test_the_shape_is_chosen_by_the_config() -> None:
    assert isinstance(make_limiter("fixed-window", 5, 3), FixedWindows)
    assert isinstance(make_limiter("sliding-window", 5, 3), SlidingWindows)
    assert isinstance(make_limiter("bucket", 5, 3), TokenBuckets)
    with pytest.raises(ValueError, match="limit_shape"):
        SimulatorConfig(rate_limit=5, limit_shape="leaky")


def test_the_mixed_wire_draws_a_shape_per_platform_from_its_seed() -> None:
    """Every shape comes up over a few seeds; excluding the group plays the configured one."""
    shapes = {
        SimState(SimulatorConfig(wire="mixed", seed=seed, rate_limit=20)).stats.limit_shape
        for seed in range(12)
    }
    assert shapes == set(LIMIT_SHAPES)
    pinned = SimulatorConfig(
        wire="mixed",
        seed=1,
        rate_limit=20,
        limit_shape="sliding-window",
        mixed_exclude=frozenset({"limit-shape"}),
    )
    state = SimState(pinned)
    assert isinstance(state.rate_limit, SlidingWindows)
    assert state.stats.snapshot()["limit_shape"] == "sliding-window"
    assert SimState(SimulatorConfig()).stats.limit_shape is None  # no limit, no shape
