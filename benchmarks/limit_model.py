"""The real rate limiter and limit search against model platforms, in virtual time.

No HTTP and no waiting: the limiter's clock and sleep are a virtual clock, and
a few hundred callers send through it against a platform model that answers
at once (a token bucket like the simulator's, a sliding or a fixed one-second
window, or no limit but the client's own ceiling; optionally refusing a share
of requests at random, or every request during an overload episode, or with
a limit that falls mid-run). What comes out
is the search's own cost: how long ``need`` accepted requests took against
``need / rate`` (the ideal), and how many were refused. It is the offline
model PERFORMANCE.md quotes; the live figures are ``run.py``'s limit-unknown
and limit-strict scenarios.

    python benchmarks/limit_model.py              # every platform below
    python benchmarks/limit_model.py --only bucket:100:20:6000
    python benchmarks/limit_model.py --only bucket:100:20:6000:episode=20+60
    python benchmarks/limit_model.py --only none:400:0:8000:0.02
    python benchmarks/limit_model.py --only bucket:100:20:6000:fall=30+50

``episode=S+L`` refuses every request from second S for L seconds (the
field's "Loadbalancer Error" overload lasts minutes); ``fall=S+R`` drops the
limit to R a second at second S (the ideal then counts both rates).
"""

from __future__ import annotations

import argparse
import asyncio
import math
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


class NoLimit:
    """A platform without a limit: every request is accepted (the rate is only the ideal's)."""

    def take(self, now: float) -> bool:
        return True


def make_platform(kind: str, rate: float, burst: int) -> Platform:
    """The platform model named ``kind``: the simulator's limit of that shape, or none."""
    if kind == "none":
        return NoLimit()
    return SimulatorLimit(SHAPES[kind], rate, burst)


def _pair(text: str | None) -> tuple[float, float] | None:
    """``S+X`` as (S, X); None for None."""
    if text is None:
        return None
    first, second = text.split("+")
    return float(first), float(second)


@dataclass(frozen=True)
class Case:
    kind: str
    rate: float
    burst: int
    need: int
    noise: float = 0.0
    #: where in a second the run starts (a fixed window's answers depend on it)
    phase: float = 0.0
    #: (start, seconds): every request in it is refused, whatever the pace
    episode: tuple[float, float] | None = None
    #: (start, rate): the limit falls to ``rate`` at ``start``
    fall: tuple[float, float] | None = None

    @classmethod
    def parse(cls, text: str) -> Case:
        """``kind:rate:burst:need[:noise[:phase]][:episode=S+L][:fall=S+R]``."""
        fields = text.split(":")
        named = dict(part.split("=", 1) for part in fields if "=" in part)
        parts = [part for part in fields if "=" not in part]
        noise = float(parts[4]) if len(parts) > 4 else 0.0
        phase = float(parts[5]) if len(parts) > 5 else 0.0
        episode, fall = _pair(named.get("episode")), _pair(named.get("fall"))
        rate, burst, need = float(parts[1]), int(parts[2]), int(parts[3])
        return cls(parts[0], rate, burst, need, noise, phase, episode, fall)

    def ideal(self) -> float:
        """Seconds the ``need`` requests take at the limit (both limits, when it falls).

        Random refusals add their pauses (one second each, at least one per
        ``1 / noise`` requests): no pace avoids those. So does an episode."""
        plain = self.need / self.rate
        if self.fall is not None and plain > self.fall[0]:
            start, fallen = self.fall
            plain = start + (self.need - start * self.rate) / fallen
        return plain + self.need * self.noise + (self.episode[1] if self.episode else 0.0)


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
    Case("none", 400, 0, 8000, 0.02),
    Case("bucket", 100, 20, 6000, episode=(20.0, 60.0)),
    Case("bucket", 20, 5, 1200, episode=(10.0, 30.0)),
    Case("bucket", 100, 20, 6000, fall=(30.0, 50.0)),
]


@dataclass
class Outcome:
    seconds: float
    refused: int
    sent: int
    found: float | None
    accepted: int


class ModelPlatform:
    """What the platform of one case answers a request sent at ``at`` (virtual seconds)."""

    def __init__(self, case: Case, seed: int) -> None:
        self.case = case
        self._limit = make_platform(case.kind, case.rate, case.burst)
        self._fallen = make_platform(case.kind, case.fall[1], case.burst) if case.fall else None
        self._fall_at = case.fall[0] if case.fall else math.inf
        self._rng = random.Random(seed)

    def takes(self, at: float) -> bool:
        case = self.case
        since = at - case.phase
        if case.episode and case.episode[0] <= since < sum(case.episode):
            return False
        limit = self._limit
        if self._fallen is not None and since >= self._fall_at:
            limit = self._fallen
        return limit.take(at) and not (case.noise and self._rng.random() < case.noise)


async def _run(case: Case, seed: int) -> Outcome:
    now = [case.phase]

    async def sleep(seconds: float) -> None:
        await asyncio.sleep(0)
        now[0] += max(seconds, 1e-6)

    limiter = RateLimiter(None, clock=lambda: now[0], sleep=sleep)
    # Sends leave exactly at their slots here (no journal commit in between),
    # and a sleep moves the one virtual clock for everybody: no wire spacing.
    limiter.wire_spacing = 0.0
    # No platform limit: the client's own ceiling is a fixed pace as fast as
    # the ideal's, so the search can neither lose nor win against it.
    ceiling = RateLimiter(case.rate, burst=1, clock=lambda: now[0], sleep=sleep)
    platform = ModelPlatform(case, seed)
    accepted = refused = sent = 0

    async def caller() -> None:
        nonlocal accepted, refused, sent
        while accepted < case.need:
            if case.kind == "none":
                await ceiling.acquire()
            grant = await limiter.sending(await limiter.acquire())
            sent += 1
            if platform.takes(now[0]):
                accepted += 1
                if limiter.overload.probing:
                    limiter.overload.answered(grant.at)
            else:
                refused += 1
                limiter.on_throttled(1.0, grant.pace, grant.at)

    callers = [asyncio.ensure_future(caller()) for _ in range(CALLERS)]
    deadline = case.ideal() * 5 + 30
    while accepted < case.need and now[0] < deadline:
        await asyncio.sleep(0)
    for task in callers:
        task.cancel()
    await asyncio.gather(*callers, return_exceptions=True)
    return Outcome(now[0] - case.phase, refused, sent, limiter.found, accepted)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only",
        action="append",
        help="kind:rate:burst:need[:noise[:phase]][:episode=S+L][:fall=S+R]",
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    cases = [Case.parse(text) for text in args.only] if args.only else CASES
    print(
        "| platform | rate | burst | requests | noise | phase | fault | took (s) | lost (s) "
        "| refused | found |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for case in cases:
        out = asyncio.run(_run(case, args.seed))
        ideal = case.ideal()
        share = 100 * out.refused / max(1, out.sent)
        fault = (
            f"episode {case.episode[0]:g}+{case.episode[1]:g} s"
            if case.episode
            else f"falls to {case.fall[1]:g}/s at {case.fall[0]:g} s"
            if case.fall
            else ""
        )
        print(
            f"| {case.kind} | {case.rate:g} | {case.burst} | {case.need} | {case.noise:g} "
            f"| {case.phase:g} | {fault} "
            f"| {out.seconds:.2f}{'' if out.accepted >= case.need else f' ({out.accepted} done)'} "
            f"| {out.seconds - ideal:.2f} | {out.refused} ({share:.2f} %) "
            f"| {out.found} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
