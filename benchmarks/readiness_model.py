"""The real readiness model against a virtual platform whose files expire and requests get lost.

``ReadinessModel`` (``batch_export/run/scheduling.py``) decides when each
readiness check goes out; this drives it on a virtual clock, with nothing
else of the exporter, against the platform of ``run.py --scenario
expiring``: preparation uniform in ``--low..--high`` seconds, a ready file
gone ``--expire`` seconds later, and a share ``--forget`` of requests lost at
a uniform moment before they would be ready; ``--window`` requests out at
once (``--max-pending``), submitted at most ``--rate`` a second. The run is
``tests/virtual_polling.py``'s, the one the scheduling tests bound.

It prints requests per export over the whole run and per ``--phase``
seconds, beside the computed floor (``polling_scenarios.floor``), for each
seed. The live scenario takes ~7 minutes; this takes about a second, and
shows what the totals hide: whether the cost is in the model's steady state
or in its first seconds, while it knows nothing yet.

    python benchmarks/readiness_model.py [--forget 0.15] [--targets 1000] [--seeds 10]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from polling_scenarios import floor

from batch_export.run.scheduling import ReadinessModel
from tests.virtual_polling import play_concurrently

__all__ = ["main"]


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
    best = floor(args.low, args.high, args.expire, args.forget)
    print(f"floor (best evenly spaced schedule, knowing the platform): {best:.3f}")
    print("| seed | requests per export | gone | virtual s | per phase: requests per export |")
    print("|---|---|---|---|---|")
    totals = []
    for seed in range(args.seeds):
        played = play_concurrently(
            ReadinessModel(rng=random.Random(seed)),
            args.targets,
            low=args.low,
            high=args.high,
            expire=args.expire,
            window=args.window,
            rate=args.rate,
            seed=seed,
            forget=args.forget,
            phase=args.phase,
        )
        assert played.exports == args.targets, "every target is exported in the end"
        per = played.per_export
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
