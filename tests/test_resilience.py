"""Crash safety and fault tolerance: faults, kills, signals, expiry, torn journals."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from batch_export.errors import ExportError
from batch_export.evidence.journal import Journal, TargetState, TargetTable, replay
from batch_export.input.ids import Target, TargetKind
from batch_export.platform.limits import RetryPolicy
from batch_export.platform.settings import ApiSettings
from batch_export.redaction import Secret
from batch_export.run.options import RunOptions
from batch_export.run.orchestrate import run_export
from batch_export.run.tally import RunTally
from batch_export.run.target import Exporter
from batch_export.storage.local import LocalSink, prepare_out_dir

from .conftest import (
    SimThread,
    StartSimulator,
    api_args,
    journal_lines,
    read_manifest,
    run_cli,
    run_subprocess,
    spawn_cli,
    wait_for_journal,
    write_ids,
)
from .test_run import assert_files_verify


def _comparable(entries: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """What must match between an undisturbed and a disturbed run."""
    return sorted(
        (e["kind"], e["id"], e["status"], e["file"], e["bytes"], e["sha256"]) for e in entries
    )


def test_mixed_faults_every_target_done(simulator: StartSimulator, tmp_path: Path) -> None:
    """5% mixed faults (5xx, resets mid-body, truncation, slow) on 500 targets: all done and verified."""
    sim = simulator(
        fault_rate=0.05, slow_seconds=0.3, prepare_delay="0.05:0.3", export_size=3_000, seed=11
    )
    out = tmp_path / "out"
    ids = write_ids(tmp_path / "ids.csv", range(1, 501))
    result = run_cli(
        ["run", str(ids), "--out", str(out), *api_args(sim), "--concurrency", "32"], sim.token
    )
    assert result.exit_code == 0, result.stderr
    entries = read_manifest(out)
    assert len(entries) == 500
    assert {e["status"] for e in entries} == {"done"}
    assert_files_verify(out, entries)
    stats = sim.stats()
    assert sum(stats["faults"].values()) > 20  # the faults really happened
    # Duplicated POSTs only where a POST's answer was lost (recorded as ambiguous).
    ambiguous = {f"profile:{e['id']}": e["ambiguous_submits"] for e in entries}
    for key, posts in stats["created_per_target"].items():
        assert posts <= 1 + ambiguous[key], key


async def test_a_stall_while_a_large_export_streams_is_retried_not_a_disk_error(
    simulator: StartSimulator, tmp_path: Path
) -> None:
    """A read timeout in the middle of a streamed (> 64 KB) export is the network's fault.

    aiohttp's read timeout is an OSError; met while the store reads the body,
    it must still be retried like any lost connection, not stop the run as a
    disk error.
    """
    sim = simulator(
        fault_rate=0.2,
        fault_kinds=("stall",),
        slow_seconds=2.0,
        export_size=200_000,
        prepare_delay="0",
        seed=3,
    )
    ids = write_ids(tmp_path / "ids.csv", range(1, 41))
    options = RunOptions(
        input=str(ids),
        out_dir=tmp_path / "out",
        api=ApiSettings(api_url=sim.base_url, token=Secret(sim.token), read_timeout=0.3),
        retry=RetryPolicy(instant=True),
        handle_signals=False,
    )
    result = await asyncio.wait_for(run_export(options), 120)
    assert result.exit_code == 0, result.summary.get("error")
    entries = read_manifest(tmp_path / "out")
    assert {e["status"] for e in entries} == {"done"}
    assert_files_verify(tmp_path / "out", entries)
    assert sim.stats()["faults"].get("stall", 0) > 0  # the stalls really happened
    assert result.summary["retries"] > 0


def test_sigkill_at_random_moments_then_resume(simulator: StartSimulator, tmp_path: Path) -> None:
    """Killed with SIGKILL three times at random moments, reruns end identical to an undisturbed run."""
    sim = simulator(prepare_delay="0.1:0.6", export_size=4_000, seed=5)
    ids = write_ids(tmp_path / "ids.csv", range(1, 151))
    reference = tmp_path / "reference"
    assert (
        run_cli(["run", str(ids), "--out", str(reference), *api_args(sim)], sim.token).exit_code
        == 0
    )
    created_before = dict(sim.stats()["created_per_target"])

    out = tmp_path / "out"
    args = ["run", str(ids), "--out", str(out), *api_args(sim), "--rate", "150", "--no-progress"]
    rng = random.Random(2)
    kills = 0
    for _ in range(3):
        proc = spawn_cli(args, sim.token)
        target_lines = journal_lines(out) + rng.randint(20, 80)
        if wait_for_journal(out, target_lines, proc):
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.communicate(timeout=60)
    assert kills >= 1
    final = run_cli(args, sim.token)
    assert final.exit_code == 0, final.stderr
    entries = read_manifest(out)
    assert _comparable(entries) == _comparable(read_manifest(reference))
    assert_files_verify(out, entries)
    assert not list((out / ".partial").iterdir())
    # No target submitted twice unless its POST was in flight at a kill (journalled as ambiguous).
    created = sim.stats()["created_per_target"]
    ambiguous = {f"profile:{e['id']}": e["ambiguous_submits"] for e in entries}
    for key, total in created.items():
        posts = total - created_before.get(key, 0)
        assert posts <= 1 + ambiguous[key], (key, posts)


def test_sigint_exits_130_and_rerun_completes(simulator: StartSimulator, tmp_path: Path) -> None:
    """SIGINT stops the run with exit 130, a consistent manifest, and the rerun finishes."""
    sim = simulator(prepare_delay="0.5:1.5", export_size=2_000)
    ids = write_ids(tmp_path / "ids.csv", range(1, 201))
    out = tmp_path / "out"
    args = ["run", str(ids), "--out", str(out), *api_args(sim), "--rate", "60", "--no-progress"]
    proc = spawn_cli(args, sim.token)
    assert wait_for_journal(out, 40, proc)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    entries = read_manifest(out)
    assert len(entries) == 200
    assert {e["status"] for e in entries} <= {"done", "pending"}
    assert "pending" in {e["status"] for e in entries}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] == "SIGINT"
    assert not list((out / ".partial").iterdir())
    final = run_cli(args, sim.token)
    assert final.exit_code == 0, final.stderr
    assert {e["status"] for e in read_manifest(out)} == {"done"}


def test_sigint_while_every_window_slot_is_taken(simulator: StartSimulator, tmp_path: Path) -> None:
    """A stop reaches the feeder waiting for a --max-pending slot: nothing new starts, exit 130."""
    sim = simulator(prepare_delay="2:3", export_size=1_000)
    ids = write_ids(tmp_path / "ids.csv", range(1, 101))
    out = tmp_path / "out"
    args = ["run", str(ids), "--out", str(out), *api_args(sim), "--max-pending", "5"]
    proc = spawn_cli([*args, "--no-progress"], sim.token)
    # header + run line + 5 x (submitting, submitted): the window is full
    assert wait_for_journal(out, 12, proc)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    events = [json.loads(line).get("ev") for line in (out / "journal.jsonl").open()]
    assert events.count("submitting") == 5
    entries = read_manifest(out)
    assert len(entries) == 100
    assert {e["status"] for e in entries} <= {"done", "pending"}
    assert sim.stats()["requests"].get("POST datarequest", 0) == 5


async def test_a_stop_before_the_run_starts_any_target_ends_it_cleanly(
    simulator: StartSimulator, tmp_path: Path
) -> None:
    """A signal handled before the feeder's first step: run() returns, nothing is submitted."""
    sim = simulator()
    out = prepare_out_dir(tmp_path / "out")
    journal = Journal.open(out, "profile")
    options = RunOptions(
        input="-",
        out_dir=out,
        api=ApiSettings(api_url=sim.base_url, token=Secret(sim.token)),
        handle_signals=False,
    )
    exporter = Exporter(options, RunTally(), LocalSink(out))
    exporter.request_stop("SIGTERM")
    try:
        await asyncio.wait_for(exporter.run(journal, ["1", "2", "3"], set()), 30)
    finally:
        await journal.close()
    assert exporter.window.stop_reason == "SIGTERM"
    assert not exporter.window.tasks
    assert sim.stats()["requests"].get("POST datarequest", 0) == 0


def test_expired_requests_are_asked_again(simulator: StartSimulator, tmp_path: Path) -> None:
    """Files that expire before download are re-requested and every target still ends done."""
    sim = simulator(prepare_delay="0.05:0.1", expire_after=0.4, export_size=1_000)
    ids = write_ids(tmp_path / "ids.csv", range(1, 41))
    out = tmp_path / "out"
    # A slow client: the first checks arrive after the 0.4 s availability window.
    result = run_cli(
        ["run", str(ids), "--out", str(out), *api_args(sim), "--rate", "30"], sim.token
    )
    entries = read_manifest(out)
    reissued = sum(e["reissued"] for e in entries)
    assert reissued > 0
    done = [e for e in entries if e["status"] == "done"]
    failed = [e for e in entries if e["status"] == "failed"]
    assert len(done) + len(failed) == 40
    assert all("expired" in e["error"] or "forgot" in e["error"] for e in failed)
    assert result.exit_code == (0 if not failed else 1)
    assert sim.stats()["expired_seen"] > 0


def test_torn_final_journal_line_is_tolerated(simulator: StartSimulator, tmp_path: Path) -> None:
    """A half-written last journal line (a crash mid-write) is dropped and the run resumes."""
    sim = simulator()
    ids = write_ids(tmp_path / "ids.csv", range(1, 21))
    out = tmp_path / "out"
    args = ["run", str(ids), "--out", str(out), *api_args(sim)]
    assert run_cli(args, sim.token).exit_code == 0
    with (out / "journal.jsonl").open("ab") as handle:
        handle.write(b'{"ts": 1.0, "ev": "submitted", "id": "3", "ri')
    again = run_cli(args, sim.token)
    assert again.exit_code == 0, again.stderr
    assert {e["status"] for e in read_manifest(out)} == {"done"}
    assert (out / "journal.jsonl").read_bytes().endswith(b"\n")


def test_second_sigint_stops_at_once_without_damage(
    simulator: StartSimulator, tmp_path: Path
) -> None:
    """Two SIGINTs in a row stop at once (exit 130) with no half file and a resumable journal."""
    sim = simulator(prepare_delay="0.2:0.6", export_size=300_000)
    ids = write_ids(tmp_path / "ids.csv", range(1, 121))
    out = tmp_path / "out"
    args = ["run", str(ids), "--out", str(out), *api_args(sim), "--no-progress"]
    proc = spawn_cli(args, sim.token)
    assert wait_for_journal(out, 60, proc)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert not list((out / ".partial").iterdir())
    assert_files_verify(out, read_manifest(out))
    final = run_cli(args, sim.token)
    assert final.exit_code == 0, final.stderr
    assert_files_verify(out, read_manifest(out))


#: the child sets its own file-size limit, then runs ``python -m batch_export``
#: (no preexec_fn: the test process has the simulator's thread running)
_LIMITED_CHILD = (
    "import resource, runpy, sys; "
    "limit = int(sys.argv.pop(1)); "
    "resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)); "
    "sys.argv[0] = 'batch-export'; "
    "runpy.run_module('batch_export', run_name='__main__')"
)


def _run_with_file_size_limit(
    sim: SimThread, tmp_path: Path, targets: int, limit: int
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """``batch-export run`` in a child whose files may not grow past ``limit`` bytes.

    Python ignores SIGXFSZ, so a write past the limit fails with EFBIG, as a
    write to a full disk fails with ENOSPC.
    """
    pytest.importorskip("resource")
    ids = write_ids(tmp_path / "ids.csv", range(1, targets + 1))
    out = tmp_path / "out"
    proc = run_subprocess(
        ["run", str(ids), "--out", str(out), *api_args(sim), "--no-progress"],
        sim.token,
        python_args=("-c", _LIMITED_CHILD, str(limit)),
    )
    return proc, out


def test_a_journal_that_cannot_grow_stops_the_run_with_a_message(
    simulator: StartSimulator, tmp_path: Path
) -> None:
    """A full disk under the journal ends the run cleanly.

    Every export file is smaller than the limit; the journal outgrows it after
    a few dozen lines. The run must stop with a specific message naming the
    journal, no traceback, and a journal that resumes: what was written is
    whole lines only.
    """
    sim = simulator(export_size=1_000)
    proc, out = _run_with_file_size_limit(sim, tmp_path, targets=200, limit=4096)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "journal" in proc.stderr and "File too large" in proc.stderr
    journal = (out / "journal.jsonl").read_bytes()
    assert len(journal) <= 4096
    states: dict[str, TargetState] = {}
    replay(out / "journal.jsonl", states)  # whole lines, or a torn tail it drops
    assert sim.stats()["requests"].get("POST datarequest", 0) < 200


@pytest.mark.parametrize("export_size", [5_000, 200_000], ids=["whole-body", "streamed"])
def test_an_export_that_cannot_be_written_stops_the_run_instead_of_retrying(
    simulator: StartSimulator, tmp_path: Path, export_size: int
) -> None:
    """A disk error while storing is the run's problem, not the network's.

    It must stop the run with "cannot write to DIR", not be mistaken for a lost
    connection and downloaded again and again, and leave no file behind under
    a final name.
    """
    sim = simulator(export_size=export_size)
    proc, out = _run_with_file_size_limit(sim, tmp_path, targets=3, limit=export_size // 2)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"cannot write to {out}" in proc.stderr and "File too large" in proc.stderr
    gets = sim.stats()["requests"].get("GET datarequest", 0)
    assert 1 <= gets <= 3  # one download per target at most: no retries of a disk error
    exports = out / "exports"
    assert not exports.exists() or not any(exports.rglob("*.json"))


async def test_a_failure_that_cannot_be_journaled_stops_the_run(tmp_path: Path) -> None:
    """Recording a target's failure on a full disk aborts the run instead of escaping.

    ``_fail`` runs inside ``_process``'s other except clauses, out of reach of
    its OSError clause, so it must handle a journal that cannot be written.
    """
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    options = RunOptions(
        input="-",
        out_dir=tmp_path,
        api=ApiSettings(api_url="http://127.0.0.1:9", token=Secret("x")),
        handle_signals=False,
    )
    exporter = Exporter(options, RunTally(), LocalSink(tmp_path))
    journal = Journal(
        tmp_path / "journal.jsonl", os.open("/dev/full", os.O_WRONLY), {}, TargetTable("profile")
    )
    exporter.journal = journal
    await exporter._fail(Target(TargetKind.PROFILE, "1"), "refused by the platform")
    assert exporter.window.stopping.is_set()
    assert exporter.window.fatal is not None and "cannot write to" in str(exporter.window.fatal)
    with pytest.raises(ExportError):
        await journal.close()
