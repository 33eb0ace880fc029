"""The expiring-files live test's scenario, run many times in one process: requests per export.

``tests/test_scheduling_live.py::test_files_that_expire_soon_are_fetched_in_time``
asserts a bound; this prints the figure of every run, so a flaky bound can be
told from a drifting model. The simulator serves from a thread of this
process (the test fixture's ``SimThread``), as in the test: the exporter and
the platform share one interpreter, which is what made the readiness
model's failure show (answers to a whole window of checks arrive together).

    python benchmarks/expiring_inprocess.py [--runs 10] [--targets 240]

Prints one line per run: exit code, requests per export, 404s for expired
files, submits.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from batch_export.simulator import SimulatorConfig
from tests.conftest import SimThread, api_args, run_cli, write_ids


def one_run(targets: int) -> str:
    """One export of ``targets`` against a platform whose files expire 0.5 s after ready."""
    with tempfile.TemporaryDirectory() as tmp:
        # a limit cache of its own: a remembered limit must not leak between runs
        os.environ["BATCH_EXPORT_CACHE_DIR"] = str(Path(tmp) / "cache")
        config = SimulatorConfig(
            prepare_delay="0.3:0.6", export_size=1000, seed=5, expire_after=0.5
        )
        sim = SimThread(config)
        try:
            ids = write_ids(Path(tmp) / "ids.csv", range(1, targets + 1))
            args = ["run", str(ids), "--out", str(Path(tmp) / "out"), *api_args(sim)]
            outcome = run_cli([*args, "--max-pending", "30", "--rate", "200"], sim.token)
            stats = sim.stats()
        finally:
            sim.stop()
    per_export = stats["requests_total"] / targets
    return (
        f"exit {outcome.exit_code}  requests/export {per_export:.3f}  "
        f"expired {stats['expired_seen']}  submits {stats['requests']['POST datarequest']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--targets", type=int, default=240)
    args = parser.parse_args()
    for run in range(args.runs):
        print(f"run {run}: {one_run(args.targets)}", flush=True)


if __name__ == "__main__":
    main()
