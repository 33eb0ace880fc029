"""Readiness checks against the simulator: expiring files, forgotten requests, request counts.

Real HTTP, the real exporter; only counts are asserted (never wall time).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .conftest import StartSimulator, api_args, read_manifest, run_cli, write_ids


def _run(sim_factory: StartSimulator, tmp_path: Path, n: int, **config: object) -> dict[str, Any]:
    sim = sim_factory(prepare_delay="0.3:0.6", export_size=1_000, seed=5, **config)
    ids = write_ids(tmp_path / "ids.csv", range(1, n + 1))
    out = tmp_path / "out"
    args = ["run", str(ids), "--out", str(out), *api_args(sim), "--max-pending", "30"]
    result = run_cli([*args, "--rate", "200"], sim.token)
    assert result.exit_code == 0, result.stderr
    entries = read_manifest(out)
    assert len(entries) == n
    assert {e["status"] for e in entries} == {"done"}
    stats: dict[str, Any] = sim.stats()
    return stats


def test_files_that_expire_soon_are_fetched_in_time(
    simulator: StartSimulator, tmp_path: Path
) -> None:
    """Files gone 0.5 s after ready: every target done, and the checks learn to come in time.

    The first checks (at 1 s) lose files ready before 0.5 s; once the model
    has seen that, first checks move before the expiry. Without learning the
    exporter of before this model cost ~4.6 requests per export here.
    """
    n = 240
    stats = _run(simulator, tmp_path, n, expire_after=0.5)
    assert stats["expired_seen"] > 0  # the platform did expire files
    assert stats["requests_total"] <= 3.2 * n  # ~2.6 measured; ~4.6 before the model learnt expiry


def test_forgotten_requests_are_asked_again_without_early_checks(
    simulator: StartSimulator, tmp_path: Path
) -> None:
    """15 % of requests forgotten, files never expiring: all done, no check made early for it."""
    n = 200
    stats = _run(simulator, tmp_path, n, forget_rate=0.15)
    assert stats["forgotten"] > 10  # the platform did forget
    assert stats["expired_seen"] == 0
    # each POST costs ~1 + 1.1 checks; forgotten ones are posted again (1/0.85)
    assert stats["requests"]["POST datarequest"] <= 1.35 * n
    assert stats["requests_total"] <= 2.75 * n
