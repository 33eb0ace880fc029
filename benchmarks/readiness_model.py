"""The real readiness model against a virtual platform whose files expire and requests get lost.

``ReadinessModel`` (``batch_export/run/scheduling.py``) decides when each
readiness check goes out; this drives it on a virtual clock, with nothing
else of the exporter, against the platform of ``run.py --scenario
expiring``: preparation uniform in ``--low..--high`` seconds, a ready file
gone ``--expire`` seconds later, and a share ``--forget`` of requests lost at
a uniform moment before they would be ready. ``--window`` requests are out
at once (``--max-pending``), submitted at most ``--rate`` a second; a request
found gone is submitted again. Outcomes come back in the order the checks
are due, late, as in a live run.

It prints requests per export over the whole run and per ``--phase``
seconds, beside the computed floor (``polling_scenarios.floor``), for each
seed. The live scenario takes ~7 minutes; this takes about a second, and
shows what the totals hide: whether the cost is in the model's steady state
or in its first seconds, while it knows nothing yet.

    python benchmarks/readiness_model.py [--forget 0.15] [--targets 1000] [--seeds 10]
"""

from __future__ import annotations

import argparse
import heapq
import random
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from polling_scenarios import floor

from batch_export.run.scheduling import ReadinessModel

__all__ = ["Played", "play"]


@dataclass
class Played:
    """One run's counts, in total and per phase of virtual time."""

    requests: int = 0
    exports: int = 0
    gone: int = 0
    end: float = 0.0
    #: phase number -> [requests, exports] of the requests made in that phase
    phases: dict[int, list[int]] = field(default_factory=dict)

    def count(self, at: float, phase: float, exported: bool) -> None:
        self.requests += 1
        self.exports += exported
        row = self.phases.setdefault(int(at // phase), [0, 0])
        row[0] += 1
        row[1] += exported


@dataclass(frozen=True)
class Platform:
    low: float
    high: float
    expire: float
    forget: float


def play(
    platform: Platform, targets: int, window: int, rate: float, seed: int, phase: float
) -> Played:
    """Export ``targets`` through a fresh model; a lost request is asked for again."""
    model = ReadinessModel(rng=random.Random(seed))
    rng = random.Random(f"platform:{seed}")
    played = Played()
    # (due, seq, posted, ready, checks so far, last seen alive, lost at)
    due: list[tuple[float, int, float, float, int, float, float]] = []
    seq, submit_at, waiting, now = 0, 0.0, targets, 0.0
    while waiting or due:
        while waiting and len(due) < window:
            submit_at = max(submit_at + 1.0 / rate, now)
            prep = rng.uniform(platform.low, platform.high)
            lost = submit_at + prep * rng.random() if rng.random() < platform.forget else 1e300
            played.count(submit_at, phase, False)
            seq += 1
            first = submit_at + model.delay(0, 0.0)
            heapq.heappush(due, (first, seq, submit_at, submit_at + prep, 0, 0.0, lost))
            waiting -= 1
        now, _, posted, ready, checks, alive, lost = heapq.heappop(due)
        checks += 1
        age = now - posted
        if now >= ready + platform.expire or now >= lost:
            model.record(checks, alive, age, "gone")
            played.count(now, phase, False)
            played.gone += 1
            waiting += 1
        elif now >= ready:
            model.record(checks, alive, age, "ready")
            played.count(now, phase, True)
        else:
            model.record(checks, alive, age, "pending")
            played.count(now, phase, False)
            seq += 1
            later = now + model.delay(checks, age)
            heapq.heappush(due, (later, seq, posted, ready, checks, age, lost))
    played.end = now
    return played


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--low", type=float, default=0.5)
    parser.add_argument("--high", type=float, default=3.0)
    parser.add_argument("--expire", type=float, default=1.5)
    parser.add_argument("--forget", type=float, default=0.0)
    parser.add_argument("--window", type=int, default=60, help="requests out at once")
    parser.add_argument("--rate", type=float, default=50.0, help="submits per second at most")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--phase", type=float, default=10.0, help="seconds per phase row")
    args = parser.parse_args()
    if args.targets < 1 or args.seeds < 1 or args.window < 1 or args.rate <= 0:
        parser.error("--targets, --seeds and --window must be at least 1, --rate above 0")
    platform = Platform(args.low, args.high, args.expire, args.forget)
    best = floor(args.low, args.high, args.expire, args.forget)
    print(f"floor (best evenly spaced schedule, knowing the platform): {best:.3f}")
    print("| seed | requests per export | gone | virtual s | per phase: requests per export |")
    print("|---|---|---|---|---|")
    totals = []
    for seed in range(args.seeds):
        played = play(platform, args.targets, args.window, args.rate, seed, args.phase)
        assert played.exports == args.targets, "every target is exported in the end"
        per = played.requests / played.exports
        totals.append(per)
        phases = " ".join(
            f"{rq / ex:.2f}" if ex else "-" for _, (rq, ex) in sorted(played.phases.items())
        )
        print(f"| {seed} | {per:.3f} | {played.gone} | {played.end:.1f} | {phases} |")
    print(
        f"requests per export: mean {statistics.mean(totals):.3f}, "
        f"{min(totals):.3f}-{max(totals):.3f} over {args.seeds} seeds"
    )


if __name__ == "__main__":
    main()
