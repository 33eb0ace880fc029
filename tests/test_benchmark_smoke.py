"""The benchmark harness runs end to end in smoke mode (no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = [
    "rate-bound",
    "overhead",
    "memory-1g",
    "memory-csv",
    "memory-resume",
    "one-at-a-time",
    "long-tail",
    "expiring",
    "limit-unknown",
    "limit-strict",
]


@pytest.fixture(scope="module")
def smoke_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run `python benchmarks/run.py --smoke` once for every test in this module."""
    results = tmp_path_factory.mktemp("bench-results")
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "run.py"),
            "--smoke",
            "--results-dir",
            str(results),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return proc, results


@pytest.mark.timeout(320)
def test_smoke_completes(smoke_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    """The smoke run exits 0: no scenario raised inside the harness."""
    proc, _ = smoke_run
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.timeout(320)
def test_smoke_table_has_every_scenario(
    smoke_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    """The printed markdown table has figure rows and a timing row for every scenario."""
    proc, _ = smoke_run
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("| scenario | run | figure | measured | goal | met |")
    for name in SCENARIOS:
        figure_rows = [
            line for line in lines if line.startswith(f"| {name} | ") and line.count("|") == 7
        ]
        assert figure_rows, f"no rows for {name}"
        assert any(line.startswith(f"| {name} | ") and line.count("|") == 3 for line in lines)
    assert "| harness | error |" not in proc.stdout


@pytest.mark.timeout(320)
def test_smoke_writes_json_per_scenario(
    smoke_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    """Each scenario leaves a readable <scenario>.json with its table rows and raw figures."""
    _, results = smoke_run
    for name in SCENARIOS:
        data = json.loads((results / f"{name}.json").read_text())
        assert data["scenario"] == name
        assert data["smoke"] is True
        assert data["table_rows"]


@pytest.mark.timeout(120)
def test_the_limit_model_runs_the_real_search() -> None:
    """``limit_model.py`` drives the real limiter against a bucket: one row, the limit found."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "limit_model.py"), "--only", "bucket:20:5:300"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| bucket |")]
    assert len(rows) == 1
    found = float(rows[0].rstrip(" |").rsplit("|", 1)[-1])
    assert 15.0 <= found <= 21.0


#: a small run of the readiness bench: 200 targets, two seeds, 15 % of requests forgotten
SMALL_EXPIRING = ("--targets", "200", "--seeds", "2", "--forget", "0.15")


@pytest.mark.timeout(120)
def test_the_readiness_model_bench_exports_every_target() -> None:
    """``readiness_model.py`` drives the real model: every target exported, at least 2 requests each."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "readiness_model.py"), *SMALL_EXPIRING],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    rows = [line.split("|") for line in lines if line.startswith(("| 0 |", "| 1 |"))]
    assert len(rows) == 2
    for row in rows:
        # One submit and one check at the least. 3.19-3.70 over ten seeds on
        # 2026-12-03 (200 targets are all learning); far above, the model broke.
        assert 2.0 <= float(row[2]) < 4.5
        assert int(row[3]) > 0  # 15 % forgotten: some requests were found gone
