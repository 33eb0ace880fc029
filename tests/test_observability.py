"""Logs and metrics a scheduler can use: progress lines, JSON records with fields, events, metrics."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import signal
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from batch_export.platform.limits import RetryPolicy
from batch_export.platform.settings import ApiSettings
from batch_export.redaction import Secret
from batch_export.run import metrics
from batch_export.run.metrics import MetricsFile
from batch_export.run.options import RunOptions
from batch_export.run.orchestrate import run_export
from batch_export.run.tally import RunTally

from .conftest import StartSimulator, api_args, run_cli, spawn_cli, write_ids

PROGRESS = re.compile(r"^batch-export: INFO: progress: (\d+)/(\d+) done")


def _records(stderr: str) -> list[dict[str, Any]]:
    """Every stderr line as a JSON object (fails on a line that is not one)."""
    return [json.loads(line) for line in stderr.splitlines() if line.strip()]


def _events(records: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    return [record for record in records if record.get("event") == event]


def _journal_has(out: Path, needle: str) -> bool:
    try:
        return needle in (out / "journal.jsonl").read_text(encoding="utf-8")
    except FileNotFoundError:
        return False


def _sigterm_once(proc: subprocess.Popen[str], out: Path, needle: str) -> str:
    """SIGTERM ``proc`` once its journal holds ``needle`` (deadline 60 s); its stderr."""
    deadline = time.monotonic() + 60
    while not _journal_has(out, needle):
        assert proc.poll() is None, "the run ended before it could be stopped"
        assert time.monotonic() < deadline, f"the journal never had {needle}"
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    return stderr


def test_progress_lines_come_every_interval_and_end_with_a_final_one(
    simulator: StartSimulator, tmp_path: Path
) -> None:
    """--stats-interval 0.2 logs progress lines (without -v) whose counts grow, the last one complete."""
    sim = simulator(prepare_delay="0.3:1.2")
    ids = write_ids(tmp_path / "ids.csv", range(1, 41))
    result = run_cli(
        [
            "run",
            str(ids),
            "--out",
            str(tmp_path / "out"),
            *api_args(sim),
            "--stats-interval",
            "0.2",
        ],
        sim.token,
    )
    assert result.exit_code == 0, result.stderr
    done = [int(m.group(1)) for line in result.stderr.splitlines() if (m := PROGRESS.match(line))]
    assert len(done) >= 4, result.stderr
    assert done == sorted(done) and done[0] < done[-1] == 40
    last = [line for line in result.stderr.splitlines() if PROGRESS.match(line)][-1]
    assert "rate " in last and "ETA " in last and "pace " in last


def test_quiet_silences_progress_lines_and_events(
    simulator: StartSimulator, tmp_path: Path
) -> None:
    """-q leaves stderr empty on a clean run: no progress lines, no start or end events."""
    sim = simulator()
    ids = write_ids(tmp_path / "ids.csv", range(1, 6))
    result = run_cli(
        [
            "run",
            str(ids),
            "--out",
            str(tmp_path / "o"),
            *api_args(sim),
            "-q",
            "--stats-interval",
            "0.1",
        ],
        sim.token,
    )
    assert result.exit_code == 0
    assert result.stderr == ""


def test_json_records_carry_event_and_counts_as_members(
    simulator: StartSimulator, tmp_path: Path
) -> None:
    """--log-format json: every stderr line is JSON; events and progress carry fields, never JSON in message."""
    sim = simulator(prepare_delay="0.3:1.0", missing_ids=frozenset({"3"}))
    ids = write_ids(tmp_path / "ids.csv", [*range(1, 21), "abc"])
    result = run_cli(
        [
            "run", str(ids), "--out", str(tmp_path / "out"), *api_args(sim),
            "--log-format", "json", "--stats-interval", "0.2",
        ],
        sim.token,
    )  # fmt: skip
    assert result.exit_code == 1, result.stderr  # one target failed, one row invalid
    records = _records(result.stderr)
    for record in records:
        assert {"time", "level", "logger", "message"} <= set(record)
        assert '{"' not in record["message"], record  # no JSON inside the sentence
    progress = _events(records, "progress")
    assert len(progress) >= 3
    assert all(
        isinstance(r["counts"], dict) and "eta_seconds" in r and "rate" in r for r in progress
    )
    assert progress[-1]["final"] is True and progress[-1]["counts"]["remaining"] == 0
    (started,) = _events(records, "run_started")
    assert (started["targets"], started["todo"], started["invalid"]) == (20, 20, 1)
    (finished,) = _events(records, "run_finished")
    assert finished["counts"] == {
        "done": 19, "failed": 1, "invalid": 1, "pending": 0, "total": 21,
        "bytes": finished["counts"]["bytes"],
    }  # fmt: skip
    assert (finished["exit_code"], finished["interrupted"], finished["error"]) == (1, None, None)
    assert "rate_found" in finished and finished["requests_total"] > 0
    assert not _events(records, "run_stopped")


def test_sigterm_logs_run_stopped_and_never_run_finished(
    simulator: StartSimulator, tmp_path: Path
) -> None:
    """A run stopped by SIGTERM ends with one run_stopped record (interrupted, exit 143, how far)."""
    sim = simulator(prepare_delay="2:3")
    ids = write_ids(tmp_path / "ids.csv", range(1, 30))
    out = tmp_path / "out"
    proc = spawn_cli(
        ["run", str(ids), "--out", str(out), *api_args(sim), "--log-format", "json"],
        sim.token,
        stdout=subprocess.DEVNULL,
    )
    records = _records(_sigterm_once(proc, out, '"ev":"submitted"'))
    assert not _events(records, "run_finished")
    (stopped,) = _events(records, "run_stopped")
    assert (stopped["interrupted"], stopped["exit_code"]) == ("SIGTERM", 143)
    assert stopped["counts"]["total"] == 29 and stopped["counts"]["pending"] > 0
    assert "stopped by SIGTERM after" in stopped["message"]


def test_a_resumed_run_logs_what_was_carried_over(
    simulator: StartSimulator, tmp_path: Path
) -> None:
    """The rerun of a stopped run logs run_resumed: targets already done, open requests, stale files."""
    sim = simulator(prepare_delay="0.2:4")
    ids = write_ids(tmp_path / "ids.csv", range(1, 41))
    out = tmp_path / "out"
    proc = spawn_cli(
        ["run", str(ids), "--out", str(out), *api_args(sim)], sim.token, stdout=subprocess.DEVNULL
    )
    _sigterm_once(proc, out, '"ev":"done"')
    first = json.loads((out / "summary.json").read_text())["counts"]
    assert first["done"] >= 1 and first["pending"] >= 1
    next(out.glob("exports/**/*.json")).unlink()  # one saved file lost: stale
    result = run_cli(
        ["run", str(ids), "--out", str(out), *api_args(sim), "--log-format", "json"], sim.token
    )
    assert result.exit_code == 0, result.stderr
    records = _records(result.stderr)
    assert not _events(records, "run_started")
    (resumed,) = _events(records, "run_resumed")
    assert resumed["run"] == 2 and resumed["stale"] == 1
    assert resumed["already_done"] == first["done"] - 1
    assert 1 <= resumed["resumed"] <= first["pending"]
    assert f"{resumed['already_done']} of 40 targets already done" in resumed["message"]


def _families(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Each metric family's samples by label set (``out_dir`` left out)."""
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "out_dir"))
            found.setdefault(sample.name, {})[labels] = sample.value
    return found


async def _wait_for_file(path: Path, task: asyncio.Task[Any], deadline: float = 30.0) -> str:
    """The file's text once it exists, while ``task`` still runs (polled, with a deadline)."""
    end = time.monotonic() + deadline
    while not path.exists():
        assert not task.done(), "the run ended before its metrics file appeared"
        assert time.monotonic() < end, "no metrics file within the deadline"
        await asyncio.sleep(0.02)
    return path.read_text(encoding="utf-8")


async def test_the_metrics_file_is_written_during_the_run_and_at_its_end(
    simulator: StartSimulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--metrics-file: Prometheus text, owner-only, during the run and at the end with the simulator's counts."""
    monkeypatch.setattr(metrics, "WRITE_INTERVAL", 0.2)
    sim = simulator(prepare_delay="0.5:2", missing_ids=frozenset({"4", "5"}))
    ids = write_ids(tmp_path / "ids.csv", [*range(1, 31), "abc"])
    prom = tmp_path / "textfile" / "export.prom"
    prom.parent.mkdir()
    options = RunOptions(
        input=str(ids),
        out_dir=tmp_path / "out",
        api=ApiSettings(api_url=sim.base_url, token=Secret(sim.token)),
        retry=RetryPolicy(instant=True),
        handle_signals=False,
        metrics_file=prom,
    )
    task = asyncio.ensure_future(run_export(options))
    during = _families(await _wait_for_file(prom, task))
    assert during["batch_export_run_state"][(("state", "running"),)] == 1
    assert stat.S_IMODE(prom.stat().st_mode) == 0o600
    result = await asyncio.wait_for(task, 120)
    assert result.exit_code == 1
    text = prom.read_text(encoding="utf-8")
    assert sim.token not in text
    assert stat.S_IMODE(prom.stat().st_mode) == 0o600
    assert [p.name for p in prom.parent.iterdir()] == ["export.prom"]  # no staging left behind
    end = _families(text)
    targets = {
        dict(labels)["status"]: value for labels, value in end["batch_export_targets"].items()
    }
    assert targets == {"done": 28, "failed": 2, "pending": 0, "invalid": 1}
    served = {name: n for name, n in sim.stats()["requests"].items() if n}
    sent = {dict(labels)["endpoint"]: n for labels, n in end["batch_export_requests_total"].items()}
    assert sent == served
    codes = {dict(labels)["code"]: n for labels, n in end["batch_export_responses_total"].items()}
    assert codes["404"] >= 2 and sum(codes.values()) == sum(served.values())
    assert end["batch_export_saved_bytes_total"][()] == result.summary["counts"]["bytes"]
    assert end["batch_export_exit_code"][()] == 1
    assert end["batch_export_run_state"][(("state", "finished"),)] == 1
    assert end["batch_export_run_duration_seconds"][()] == result.summary["elapsed_seconds"]
    assert end["batch_export_last_success_time_seconds"][()] <= time.time()
    for name in ("retries", "throttled", "overloaded", "outages"):
        assert end[f"batch_export_{name}_total"][()] == result.summary[name]


class _Kept(logging.Handler):
    """Keeps every record it is handed (whatever other tests did to the package's loggers)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_a_metrics_file_that_cannot_be_written_is_warned_about_once(tmp_path: Path) -> None:
    """A metrics file in a missing directory gives one warning, however many writes fail; the run goes on."""
    tally = RunTally()
    tally.start(total=1, already_done=0, invalid=0, resumed=0)
    observer = MetricsFile(tmp_path / "missing" / "m.prom", out_dir=tmp_path)
    kept, logger = _Kept(), logging.getLogger("batch_export.run.metrics")
    level = logger.level
    logger.addHandler(kept)
    logger.setLevel(logging.WARNING)  # an earlier -q may have left the package at ERROR
    try:
        for _ in range(3):
            observer.tick(tally.snapshot())
        observer.close(tally.snapshot())
    finally:
        logger.removeHandler(kept)
        logger.setLevel(level)
    warnings = [r for r in kept.records if "cannot write the metrics file" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
