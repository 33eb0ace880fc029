"""The run's outputs for people and tools: ``manifest.jsonl`` and ``summary.json``.

The manifest describes the archive, not the last command: one line per
target whose export DIR holds (whichever run's input named it), then one per
target of this run's input that is not done, then one per invalid input row
of this run, each with the same keys::

    kind, id, status (done|failed|invalid|pending), request_id, file, bytes,
    sha256, compressed, attempts, ambiguous_submits, reissued, error,
    submitted_at, saved_at, run

``submitted_at`` and ``saved_at`` (ISO 8601 UTC, milliseconds) say when the
request behind a done export was made and when the export was saved; ``run``
is the number of the run that saved it (``runs.jsonl`` says what each run
read). ``pending`` appears only when a run was stopped before finishing.
Both files are replaced atomically (temporary file, fsync, rename) and are
owner-only: they name the people whose data was exported. Neither ever holds
a secret.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from ..durable import append_line, write_atomically
from ..input.reader import InvalidRow
from .journal import DONE, FAILED, Journal, TargetState, TargetView
from .recorded import RecordedFiles

__all__ = [
    "MANIFEST_NAME",
    "SUMMARY_NAME",
    "ArchiveCounts",
    "RunCounts",
    "RunSettings",
    "iso_time",
    "write_manifest",
    "write_summary",
]

MANIFEST_NAME = "manifest.jsonl"
SUMMARY_NAME = "summary.json"
RUNS_NAME = "runs.jsonl"


@dataclass
class RunCounts:
    """How many targets ended in each status."""

    done: int = 0
    failed: int = 0
    invalid: int = 0
    pending: int = 0
    bytes: int = 0

    @property
    def total(self) -> int:
        return self.done + self.failed + self.invalid + self.pending


@dataclass
class ArchiveCounts:
    """What the whole archive holds, whichever inputs put it there."""

    done: int = 0
    bytes: int = 0
    #: done targets that this run's input does not name
    not_in_input: int = 0


@dataclass(frozen=True)
class RunSettings:
    """What ``summary.json`` tells about the run's settings (never a secret)."""

    kind: str
    api_url: str
    api_version: int
    rate: float | None
    concurrency: int
    max_pending: int
    timeout: float
    gzip: bool
    #: whether a report address was given (not the address)
    report: bool
    #: whether push mode was on
    push: bool


def _entry(
    kind: str, target_id: str, state: TargetState | TargetView, status: str
) -> dict[str, Any]:
    return {
        "kind": kind,
        "id": target_id,
        "status": status,
        "request_id": state.request_id,
        "file": None,
        "bytes": 0,
        "sha256": None,
        "compressed": None,
        "attempts": state.attempts,
        "ambiguous_submits": state.ambiguous,
        "reissued": state.reissued,
        "error": state.error,
        "submitted_at": None,
        "saved_at": None,
        "run": None,
    }


def done_line(
    kind: str,
    target_id: str,
    record: dict[str, Any],
    state: TargetState | TargetView,
    file: str | None,
) -> dict[str, Any]:
    """The manifest entry of a done target, from its last ``done`` journal line.

    ``file`` is where that line says the export is, never a recomputed name:
    a change of naming must not orphan an earlier run's exports.
    """
    entry = _entry(kind, target_id, state, "done")
    gzip = bool(record.get("gzip"))
    entry.update(
        request_id=record.get("rid"),
        file=file,
        bytes=int(record.get("bytes", 0)),
        sha256=record.get("sha256"),
        compressed="gzip" if gzip else None,
        error=None,
        submitted_at=iso_time(record.get("submitted")),
        saved_at=iso_time(record.get("ts")),
        run=record.get("run"),
    )
    store = record.get("store")
    if isinstance(store, dict):
        entry["store"] = store  # the destination's own record: checksum, version, lock
    origin = record.get("origin")
    if isinstance(origin, dict):
        entry["origin"] = origin  # push mode: the delivery's signed headers, as checked
    return entry


def open_line(kind: str, target_id: str, state: TargetState | TargetView) -> dict[str, Any]:
    """The manifest entry of a target that is not done: failed, or pending after a stop."""
    return _entry(kind, target_id, state, "failed" if state.status == FAILED else "pending")


def invalid_line(kind: str, row: InvalidRow) -> dict[str, Any]:
    """The manifest entry of an input row whose ID cannot be used."""
    entry = _entry(kind, row.value, TargetState(), "invalid")
    entry["error"] = row.reason
    return entry


def write_manifest(
    out_dir: Path,
    journal: Journal,
    kind: str,
    invalid: Iterable[InvalidRow],
) -> tuple[RunCounts, ArchiveCounts]:
    """Replace ``manifest.jsonl``; the counts of this run's input and of the whole archive.

    Every done target comes first, in the order they finished, read from
    their journal lines (targets of earlier inputs too: they are in the
    archive); then the failed and pending targets of this input (those the
    journal's table marks ``in_input``), in input order; then this input's
    invalid rows. Call once, after the journal is closed.
    """
    states = journal.states
    counts = RunCounts()
    archive = ArchiveCounts()

    def lines() -> Iterator[str]:
        for target_id, record, state in journal.final_done_records(only_input=False):
            # The line's own file; the default name if it names none.
            file = RecordedFiles.of_record(record) or journal.recorded_file(target_id)
            entry = done_line(kind, target_id, record, state, file)
            archive.done += 1
            archive.bytes += entry["bytes"]
            if state.in_input:
                counts.done += 1
                counts.bytes += entry["bytes"]
            else:
                archive.not_in_input += 1
            yield _encode(entry)
        for slot in states.input_slots():
            state = states.view(slot)
            if state.status == DONE:
                continue
            entry = open_line(kind, states.id_of(slot), state)
            if entry["status"] == "failed":
                counts.failed += 1
            else:
                counts.pending += 1
            yield _encode(entry)
        for row in invalid:
            counts.invalid += 1
            yield _encode(invalid_line(kind, row))

    write_atomically(out_dir / MANIFEST_NAME, lines())
    return counts, archive


def _encode(entry: dict[str, Any]) -> str:
    """One manifest line: compact JSON, UTF-8 as it is (orjson: a tenth of ``json``'s time).

    What orjson refuses (a lone surrogate in an invalid row's text, an
    integer past 64 bits) is written by ``json``, escaped; readers parse both alike.
    """
    try:
        return orjson.dumps(entry).decode() + "\n"
    except TypeError:  # orjson.JSONEncodeError is one
        return json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n"


def write_summary(
    out_dir: Path,
    *,
    settings: RunSettings,
    counts: RunCounts,
    traffic: dict[str, Any],
    extra: dict[str, Any],
    started: float,
    exit_code: int,
    interrupted: str | None,
    version: str,
    error: str | None,
) -> dict[str, Any]:
    """Write ``summary.json``: counts, timings, request totals; no secrets."""
    finished = time.time()
    api = urlsplit(settings.api_url)
    summary: dict[str, Any] = {
        "tool": "batch-export",
        "version": version,
        "kind": settings.kind,
        "api_host": api.hostname,
        "api_version": settings.api_version,
        "started_at": _iso(started),
        "finished_at": _iso(finished),
        "elapsed_seconds": round(finished - started, 3),
        "counts": {**asdict(counts), "total": counts.total},
        "requests": traffic.get("requests", {}),
        "requests_total": sum(traffic.get("requests", {}).values()),
        "responses": traffic.get("responses", {}),
        "retries": traffic.get("retries", 0),
        "throttled": traffic.get("throttled", 0),
        "overloaded": traffic.get("overloaded", 0),
        "outages": traffic.get("outages", 0),
        "cut_downloads": traffic.get("cut_downloads", 0),
        "jwt_refreshes": traffic.get("jwt_refreshes", 0),
        "rate_found": traffic.get("rate_found"),
        "rate_start": traffic.get("rate_start"),
        **extra,
        "exit_code": exit_code,
        "interrupted": interrupted,
        "error": error,
        "settings": {
            "rate": settings.rate,
            "concurrency": settings.concurrency,
            "max_pending": settings.max_pending,
            "timeout": settings.timeout,
            "gzip": settings.gzip,
            "report": settings.report,
            "push": settings.push,
        },
    }
    write_atomically(out_dir / SUMMARY_NAME, [json.dumps(summary, indent=2) + "\n"])
    # summary.json is the latest run; runs.jsonl keeps every run's, for audits.
    append_line(out_dir / RUNS_NAME, json.dumps(summary, separators=(",", ":")))
    return summary


def _iso(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def iso_time(timestamp: object) -> str | None:
    """A journal timestamp as ISO 8601 UTC with milliseconds; None for none."""
    if isinstance(timestamp, bool) or not isinstance(timestamp, (int, float)):
        return None
    seconds, millis = divmod(round(float(timestamp) * 1000), 1000)
    return f"{_iso_second(seconds)}.{millis:03d}Z"


@functools.lru_cache(maxsize=256)
def _iso_second(seconds: int) -> str:
    # A run saves hundreds of exports a second: most lines repeat the last one's second.
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
