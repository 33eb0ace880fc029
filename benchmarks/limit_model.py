"""The real rate limiter and limit search against model platforms, in virtual time.

No HTTP and no waiting: the limiter's clock and sleep are a virtual clock, and
a few hundred callers send through it against a platform model that answers
at once (a token bucket like the simulator's, a sliding or a fixed one-second
window, optionally refusing a share of requests at random). What comes out
is the search's own cost: how long ``need`` accepted requests took against
``need / rate`` (the ideal), and how many were refused. It is the offline
model PERFORMANCE.md quotes; the live figures are ``run.py``'s limit-unknown
and limit-strict scenarios.

    python benchmarks/limit_model.py              # every platform below
    python benchmarks/limit_model.py --only bucket:100:20:6000
"""

from __future__ import annotations

import argparse
import asyncio
import random
from dataclasses import dataclass
from typing import Protocol

from batch_export.platform.limits import RateLimiter
from batch_export.simulator.ratelimit import make_limiter

CALLERS = 400


class Platform(Protocol):
    def take(self, now: float) -> bool:
        """Whether a request at ``now`` is accepted."""


class SimulatorLimit:
    """The simulator's own limit of one shape, answering yes or no."""

    def __init__(self, shape: str, rate: float, burst: int) -> None:
        self._limit = make_limiter(shape, rate, max(1, burst))

    def take(self, now: float) -> bool:
        return self._limit.take("account", now) == 0.0


#: the model's platform names and the simulator's limit shapes
SHAPES = {"bucket": "bucket", "sliding": "sliding-window", "fixed": "fixed-window"}


def make_platform(kind: str, rate: float, burst: int) -> Platform:
    """The platform model named ``kind``: the simulator's limit of that shape."""
    return SimulatorLimit(SHAPES[kind], rate, burst)


@dataclass(frozen=True)
class Case:
    kind: str
    rate: float
    burst: int
    need: int
    noise: float = 0.0
    #: where in a second the run starts (a fixed window's answers depend on it)
    phase: float = 0.0

    @classmethod
    def parse(cls, text: str) -> Case:
        """``kind:rate:burst:need[:noise[:phase]]``."""
        parts = text.split(":")
        noise = float(parts[4]) if len(parts) > 4 else 0.0
        phase = float(parts[5]) if len(parts) > 5 else 0.0
        return cls(parts[0], float(parts[1]), int(parts[2]), int(parts[3]), noise, phase)


CASES = [
    Case("bucket", 100, 20, 6000),
    Case("bucket", 50, 10, 400),
    Case("bucket", 20, 5, 800),
    Case("bucket", 300, 20, 18000),
    Case("bucket", 100, 100, 6000),
    Case("bucket", 100, 5, 6000),
    Case("bucket", 10, 2, 600),
    Case("sliding", 100, 0, 6000),
    Case("fixed", 100, 0, 6000),
    Case("fixed", 100, 0, 6000, phase=0.4),
    Case("fixed", 100, 0, 6000, phase=0.9),
    Case("bucket", 100, 20, 6000, 0.003),
]


@dataclass
class Outcome:
    seconds: float
    refused: int
    sent: int
    found: float | None


async def _run(case: Case, seed: int) -> Outcome:
    now = [case.phase]

    async def sleep(seconds: float) -> None:
        await asyncio.sleep(0)
        now[0] += max(seconds, 1e-6)

    limiter = RateLimiter(None, clock=lambda: now[0], sleep=sleep)
    # Sends leave exactly at their slots here (no journal commit in between),
    # and a sleep moves the one virtual clock for everybody: no wire spacing.
    limiter.wire_spacing = 0.0
    platform = make_platform(case.kind, case.rate, case.burst)
    rng = random.Random(seed)
    accepted = refused = sent = 0
    deadline = case.need / case.rate * 5 + 30

    async def caller() -> None:
        nonlocal accepted, refused, sent
        while accepted < case.need:
            grant = await limiter.sending(await limiter.acquire())
            sent += 1
            if platform.take(now[0]) and not (case.noise and rng.random() < case.noise):
                accepted += 1
            else:
                refused += 1
                limiter.on_throttled(1.0, grant.pace, grant.at)

    callers = [asyncio.ensure_future(caller()) for _ in range(CALLERS)]
    while accepted < case.need and now[0] < deadline:
        await asyncio.sleep(0)
    for task in callers:
        task.cancel()
    await asyncio.gather(*callers, return_exceptions=True)
    return Outcome(now[0] - case.phase, refused, sent, limiter.found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", help="kind:rate:burst:need[:noise[:phase]]")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    cases = [Case.parse(text) for text in args.only] if args.only else CASES
    print(
        "| platform | rate | burst | requests | noise | phase | took (s) | lost (s) "
        "| refused | found |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for case in cases:
        out = asyncio.run(_run(case, args.seed))
        ideal = case.need / case.rate
        share = 100 * out.refused / max(1, out.sent)
        print(
            f"| {case.kind} | {case.rate:g} | {case.burst} | {case.need} | {case.noise:g} "
            f"| {case.phase:g} "
            f"| {out.seconds:.2f} | {out.seconds - ideal:.2f} | {out.refused} ({share:.2f} %) "
            f"| {out.found} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
