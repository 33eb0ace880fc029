"""``batch-export status``: running / stopped / finished from the lock and the journal, the
rate only while running, ISO times, text and JSON that agree, failures by cause, and
``--failed-ids`` fed back to ``run``."""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import stat
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from batch_export.evidence.statedir import LOCK_NAME, RunLock, probe_lock
from batch_export.evidence.status import format_status
from batch_export.input.ids import Target, TargetKind
from batch_export.input.reader import TargetReader

from .conftest import (
    SimThread,
    StartSimulator,
    api_args,
    run_cli,
    spawn_cli,
    wait_for_journal,
    write_ids,
)

#: an ISO 8601 UTC time as status writes it
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
#: the keys that hold a time
TIME_KEYS = ("checked_at", "since", "ended_at", "last_saved_at", "eta_at")


def _status(out: Path) -> dict[str, Any]:
    result = run_cli(["status", str(out), "--json"], None)
    assert result.exit_code == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    for key in TIME_KEYS:
        assert report[key] is None or ISO.match(report[key]), (key, report[key])
    return report


def _spawn_slow_run(
    sim: SimThread, tmp_path: Path, count: int = 40
) -> tuple[subprocess.Popen[str], Path]:
    """A run that is still working when status looks: exports take seconds to prepare."""
    ids = write_ids(tmp_path / "ids.csv", range(1, count + 1))
    out = tmp_path / "out"
    proc = spawn_cli(
        ["run", str(ids), "--out", str(out), *api_args(sim)],
        sim.token,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # the header, the run line and the first submission: the pipeline is working
    assert wait_for_journal(out, 3, proc), "the run ended before it started working"
    return proc, out


def _no_rate(report: dict[str, Any]) -> None:
    assert report["exports_per_second"] is None and report["eta_seconds"] is None
    assert report["eta_at"] is None and report["rate_window_seconds"] is None


def test_a_live_run_is_running_with_its_pid(simulator: StartSimulator, tmp_path: Path) -> None:
    """While a run works, status says running, with that process's pid and when it started."""
    sim = simulator(prepare_delay="3:4")
    proc, out = _spawn_slow_run(sim, tmp_path)
    try:
        report = _status(out)
        assert report["state"] == "running"
        assert report["pid"] == proc.pid
        assert report["run"] == 1 and report["since"] is not None
        assert report["exit_code"] is None and report["stopped_by"] is None
        text = run_cli(["status", str(out)], None).stdout
        assert f"running since {report['since']} (pid {proc.pid}, run 1)" in text
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_after_sigterm_it_is_stopped_by_sigterm_with_no_rate(
    simulator: StartSimulator, tmp_path: Path
) -> None:
    """After SIGTERM: stopped by SIGTERM, exit code 143, when; no rate and no ETA."""
    sim = simulator(prepare_delay="1:2")
    proc, out = _spawn_slow_run(sim, tmp_path)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143
    report = _status(out)
    assert report["state"] == "stopped" and report["stopped_by"] == "SIGTERM"
    assert report["exit_code"] == 143 and report["ended_at"] is not None
    assert report["pid"] is None
    _no_rate(report)
    text = run_cli(["status", str(out)], None).stdout
    assert "stopped by SIGTERM at" in text and "exit code 143" in text
    assert "ETA" not in text and "  rate " not in text


def test_after_sigkill_it_is_stopped_killed(simulator: StartSimulator, tmp_path: Path) -> None:
    """A run killed with SIGKILL (a run line, no summary) is stopped, killed, with no exit code."""
    sim = simulator(prepare_delay="3:4")
    proc, out = _spawn_slow_run(sim, tmp_path)
    proc.kill()
    proc.wait(timeout=30)
    report = _status(out)
    assert report["state"] == "stopped" and report["stopped_by"] == "killed"
    assert report["exit_code"] is None and report["ended_at"] is not None
    _no_rate(report)
    assert "stopped: killed at" in run_cli(["status", str(out)], None).stdout


def _finished_run(sim: SimThread, tmp_path: Path, count: int = 10) -> tuple[Path, int]:
    ids = write_ids(tmp_path / "ids.csv", range(1, count + 1))
    out = tmp_path / "out"
    result = run_cli(["run", str(ids), "--out", str(out), *api_args(sim)], sim.token)
    return out, result.exit_code


def test_a_finished_run_is_finished_and_two_calls_agree(
    simulator: StartSimulator, tmp_path: Path
) -> None:
    """A finished run: finished, exit code 0, no rate; text and JSON of two calls say the same."""
    out, code = _finished_run(simulator(), tmp_path)
    assert code == 0
    first = _status(out)
    assert first["state"] == "finished" and first["exit_code"] == 0 and first["done"] == 10
    assert first["ended_at"] is not None and first["remaining"] == 0
    _no_rate(first)
    text = run_cli(["status", str(out)], None).stdout.rstrip("\n")
    second = _status(out)
    checked = re.search(r"\(checked (\S+)\)", text)
    assert checked is not None
    # Only the moment of the check differs; every figure is the same.
    assert {**first, "checked_at": None} == {**second, "checked_at": None}
    assert text == format_status({**second, "checked_at": checked.group(1)})
    assert "finished at" in text and "exit code 0" in text


def test_failures_group_into_one_cause_with_examples(
    simulator: StartSimulator, tmp_path: Path
) -> None:
    """Profiles the platform does not know fail with one cause: a count and their IDs as examples."""
    missing = {"3", "5", "7"}
    out, code = _finished_run(simulator(missing_ids=frozenset(missing)), tmp_path)
    assert code == 1
    report = _status(out)
    assert report["state"] == "finished" and report["exit_code"] == 1
    failures = report["failures"]
    assert failures["total"] == 3 and len(failures["causes"]) == 1
    cause = failures["causes"][0]
    assert cause["count"] == 3 and set(cause["examples"]) == missing
    assert "404" in cause["cause"] and "<id>" in cause["cause"]
    assert not any(target in cause["cause"] for target in missing)
    text = run_cli(["status", str(out)], None).stdout
    assert f"3  {cause['cause']}" in text
    assert "e.g. " + ", ".join(cause["examples"]) in text


def test_failed_ids_fed_back_to_run_retries_exactly_those(
    simulator: StartSimulator, tmp_path: Path
) -> None:
    """--failed-ids prints a CSV of the failed IDs only; `run` on it retries exactly those."""
    missing = {"3", "5", "7"}
    out, _ = _finished_run(simulator(missing_ids=frozenset(missing)), tmp_path)
    listed = run_cli(["status", str(out), "--failed-ids"], None)
    assert listed.exit_code == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0] == "profile_id" and sorted(lines[1:]) == sorted(missing)
    assert "3 failed target(s)" in listed.stderr  # the count goes to stderr, not into the CSV
    retry = tmp_path / "retry.csv"
    retry.write_text(listed.stdout, encoding="utf-8")
    healed = simulator()  # the profiles exist now
    again = run_cli(["run", str(retry), "--out", str(out), *api_args(healed)], healed.token)
    assert again.exit_code == 0, again.stderr
    posted = healed.stats()["posts_per_target"]
    assert set(posted) == {f"profile:{target}" for target in missing}
    final = _status(out)
    assert final["failed"] == 0 and final["done"] == 10 and final["failures"]["causes"] == []


def test_failed_ids_and_json_together_is_a_usage_error(tmp_path: Path) -> None:
    """--json and --failed-ids print different things: asking for both is refused (exit 2)."""
    result = run_cli(["status", str(tmp_path), "--json", "--failed-ids"], None)
    assert result.exit_code == 2 and result.stdout == ""


def test_run_lock_says_who_holds_it_owner_only(tmp_path: Path) -> None:
    """A held RunLock's file names this pid and an ISO start, 0600; the probe sees it, then not."""
    assert probe_lock(tmp_path).held is False  # no lock file yet: no run, and none created
    assert not (tmp_path / LOCK_NAME).exists()
    with RunLock(tmp_path):
        path = tmp_path / LOCK_NAME
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        holder = json.loads(path.read_text(encoding="utf-8"))
        assert holder["pid"] == os.getpid() and ISO.match(holder["started"])
        probe = probe_lock(tmp_path)
        assert probe.held is True and probe.pid == os.getpid()
        assert probe.started == holder["started"]
    assert probe_lock(tmp_path).held is False


def test_a_run_starting_during_a_status_probe_still_gets_the_lock(tmp_path: Path) -> None:
    """A run that meets the probe's brief shared lock waits for it instead of failing."""
    (tmp_path / LOCK_NAME).touch()
    fd = os.open(tmp_path / LOCK_NAME, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # what probe_lock holds for an instant
    release = threading.Timer(0.05, os.close, args=(fd,))
    release.start()
    try:
        with RunLock(tmp_path):
            assert probe_lock(tmp_path).held is True
    finally:
        release.join()


def test_status_creates_nothing_in_dir(simulator: StartSimulator, tmp_path: Path) -> None:
    """status reads DIR without creating a file in it, not even the lock file."""
    out, _ = _finished_run(simulator(), tmp_path, count=3)
    (out / LOCK_NAME).unlink()
    before = sorted(path.name for path in out.iterdir())
    report = _status(out)
    assert report["state"] == "finished"
    assert sorted(path.name for path in out.iterdir()) == before


@pytest.mark.parametrize(
    "kind, header, target",
    [("subprofile", "subprofile_id", "12"), ("email", "email", "o'neil+x@example.com")],
)
def test_failed_ids_csv_is_read_back_for_its_kind(
    tmp_path: Path, kind: str, header: str, target: str
) -> None:
    """The CSV's header is the kind's ID column, and the input reader reads the ID back."""
    records = [
        {"format": "batch-export-journal", "version": 1, "kind": kind},
        {"ts": 1.0, "ev": "failed", "id": target, "error": "HTTP 400 from POST datarequest"},
    ]
    journal = "".join(json.dumps(record) + "\n" for record in records)
    (tmp_path / "journal.jsonl").write_text(journal, encoding="utf-8")
    result = run_cli(["status", str(tmp_path), "--failed-ids"], None)
    assert result.exit_code == 0 and result.stdout.splitlines()[0] == header
    retry = tmp_path / "retry.csv"
    retry.write_text(result.stdout, encoding="utf-8")
    read = [item for item in TargetReader(retry, TargetKind(kind)) if isinstance(item, Target)]
    assert [item.id for item in read] == [target]


def test_status_during_and_after_a_run(simulator: StartSimulator, tmp_path: Path) -> None:
    """A run in progress: running, its pid, done so far, a rate and an ETA; then finished."""
    sim = simulator(prepare_delay="0.3:0.8")
    ids = write_ids(tmp_path / "ids.csv", range(1, 121))
    out = tmp_path / "out"
    proc = spawn_cli(
        ["run", str(ids), "--out", str(out), *api_args(sim), "--rate", "40"],
        sim.token,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # Polling status is what is tested here; the deadline bounds it.
        deadline = time.monotonic() + 60
        seen_in_progress = None
        while time.monotonic() < deadline and proc.poll() is None:
            result = run_cli(["status", str(out), "--json"], None)
            if result.exit_code == 0:
                report = json.loads(result.stdout)
                if report["remaining"] > 0 and (report["exports_per_second"] or 0) > 0:
                    seen_in_progress = report
                    break
            time.sleep(0.05)
        assert seen_in_progress is not None, "never saw the run in progress"
        assert seen_in_progress["targets"] == 120 and seen_in_progress["pid"] == proc.pid
        assert seen_in_progress["open_requests"] + seen_in_progress["not_started"] > 0
        assert seen_in_progress["state"] == "running" and seen_in_progress["done"] > 0
        assert seen_in_progress["eta_seconds"] > 0 and ISO.match(seen_in_progress["eta_at"])
    finally:
        proc.wait(timeout=120)
    assert proc.returncode == 0
    final = _status(out)
    assert final["done"] == 120 and final["remaining"] == 0 and final["failed"] == 0
    assert final["state"] == "finished"
    text = run_cli(["status", str(out)], None)
    assert "done" in text.stdout and "120" in text.stdout


def test_a_run_that_holds_the_lock_before_its_journal_is_running(tmp_path: Path) -> None:
    """A run that has the lock but no journal yet is running (exit 0), not 'not an archive'."""
    with RunLock(tmp_path):
        report = _status(tmp_path)
    assert report["state"] == "running" and report["pid"] == os.getpid()
    assert report["done"] == 0 and report["kind"] is None
    # the lock let go and still no journal: not a batch-export directory
    assert run_cli(["status", str(tmp_path)], None).exit_code == 2
