"""What ``batch-export report`` shows, gathered from an archive directory (no HTML here).

Everything is read from the files a run leaves (``manifest.jsonl``,
``runs.jsonl``, ``journal.jsonl``) and from a fresh verification, streamed
line by line: the manifest of a million targets is never held whole. Keys
added by newer versions (a run's ``input``, ``rate_found``, ``run``; the
seal and signature results of verification) are read with ``.get()``, so an
archive made by an older version gives a report that says "not recorded"
instead of failing. The journal is replayed as ``status`` replays it
(``checkpoint.replay_journal``: the compact target table, from the
checkpoint when it is sound): the report shows only its ``done`` times, run
lines and damage, and a million targets' states as objects would be ~300 MB.
"""

from __future__ import annotations

import hashlib
import inspect
import time
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import ConfigError, ExportError
from .causes import FailureGroups
from .checkpoint import replay_journal
from .jsonlines import json_object, numbered_objects
from .manifest import MANIFEST_NAME, RUNS_NAME
from .replay import JOURNAL_NAME
from .verify import verify_directory

__all__ = [
    "STATUSES",
    "JournalRun",
    "ManifestFacts",
    "ReportData",
    "gather",
    "journal_kind",
    "parse_time",
    "read_journal",
]

#: the manifest's statuses, in the order the report lists them
STATUSES = ("done", "failed", "invalid", "pending")
#: example IDs kept per failure cause
EXAMPLES = 5


@dataclass
class ManifestFacts:
    """The manifest, counted: statuses, bytes, failures and invalid rows by cause."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    bytes: int = 0
    #: lines that are not a JSON object (verification lists them as problems)
    unreadable: int = 0
    kinds: set[str] = field(default_factory=set)
    failures: FailureGroups = field(default_factory=lambda: FailureGroups(EXAMPLES))
    invalid: FailureGroups = field(default_factory=lambda: FailureGroups(EXAMPLES))
    sha256: str = ""

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class JournalRun:
    """A run as the journal's ``run`` line records its start, and its summary if it has one."""

    started: float
    #: the ``runs.jsonl`` line of the run, None if it never finished (killed, crashed)
    summary: dict[str, Any] | None


@dataclass
class ReportData:
    """Everything the report shows."""

    directory: Path
    title: str
    generated_at: str
    version: str
    manifest: ManifestFacts
    #: one ``runs.jsonl`` line per finished run, each with its ``run`` number set
    runs: list[dict[str, Any]]
    #: ``runs.jsonl`` lines that could not be read
    unreadable_runs: int
    #: every ``run`` line of the journal, in order
    journal_runs: list[JournalRun]
    #: timestamps of the journal's ``done`` lines (8 bytes each)
    done_times: Sequence[float]
    journal_found: bool
    journal_damage: str | None
    #: ``VerifyReport.to_json``, or None when verification could not run
    verification: dict[str, Any] | None
    #: why verification could not run
    verification_error: str | None
    #: whether ``--key`` was given
    keys_given: bool
    #: whether the keys given were passed to verification (this version can check them)
    keys_checked: bool


def parse_time(value: object) -> float | None:
    """An ISO 8601 time (``2026-11-29T02:30:00Z``) as a Unix timestamp, None if it is not one."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def gather(out_dir: Path, *, keys: Sequence[Path] = (), title: str | None = None) -> ReportData:
    """Read and verify ``out_dir``; ``ConfigError`` if it is not an archive."""
    if not (out_dir / MANIFEST_NAME).is_file():
        raise ConfigError(
            f"{out_dir} has no {MANIFEST_NAME}; is it a batch-export output directory?"
        )
    manifest = read_manifest(out_dir / MANIFEST_NAME)
    runs, unreadable_runs = read_runs(out_dir / RUNS_NAME)
    journal = out_dir / JOURNAL_NAME
    done_times, run_lines, damage = read_journal(out_dir)
    verification, error, keys_checked = run_verification(out_dir, keys)
    return ReportData(
        directory=out_dir.resolve(),
        title=title or f"Archive report: {out_dir.resolve().name}",
        generated_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        version=__version__,
        manifest=manifest,
        runs=runs,
        unreadable_runs=unreadable_runs,
        journal_runs=match_runs(run_lines, runs),
        done_times=done_times,
        journal_found=journal.is_file(),
        journal_damage=damage,
        verification=verification,
        verification_error=error,
        keys_given=bool(keys),
        keys_checked=keys_checked,
    )


def read_journal(out_dir: Path) -> tuple[Sequence[float], list[dict[str, Any]], str | None]:
    """The journal's ``done`` times, its ``run`` lines and its damage (none of them if it has none).

    Replayed into the compact table ``status`` uses, which is dropped here:
    the report shows no target's state.
    """
    journal = out_dir / JOURNAL_NAME
    if not journal.is_file():
        return array("d"), [], None
    found = replay_journal(out_dir, journal_kind(journal), done_times=True)
    assert found.done_times is not None  # asked for
    return found.done_times, found.runs, found.damage.describe()


def journal_kind(path: Path) -> str | None:
    """The kind the journal's header names, read before a replay (None if unreadable).

    The replay's table keeps the kind's IDs compactly (numbers as integers)
    and uses a checkpoint of that kind only.
    """
    with path.open("rb") as handle:
        header = json_object(handle.readline())
    kind = header.get("kind") if header is not None else None
    return kind if isinstance(kind, str) else None


def _json_lines(path: Path) -> Iterator[dict[str, Any] | None]:
    """Each non-blank line of a JSONL file as an object, None for one that is not."""
    for _, record in numbered_objects(path):
        yield record


def read_manifest(path: Path) -> ManifestFacts:
    """Count the manifest's entries by status, their bytes, and group failures by cause."""
    facts = ManifestFacts()
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    facts.sha256 = digest.hexdigest()
    for entry in _json_lines(path):
        status = None if entry is None else entry.get("status")
        if entry is None or status not in facts.counts:
            facts.unreadable += 1
            continue
        facts.counts[status] += 1
        facts.kinds.add(str(entry.get("kind")))
        target_id = str(entry.get("id"))
        error = entry.get("error")
        message = error if isinstance(error, str) else None
        if status == "done":
            size = entry.get("bytes")
            facts.bytes += size if isinstance(size, int) else 0
        elif status == "failed":
            facts.failures.add(message, target_id)
        elif status == "invalid":
            facts.invalid.add(message, target_id)
    return facts


def read_runs(path: Path) -> tuple[list[dict[str, Any]], int]:
    """``runs.jsonl``'s summaries, each numbered (its own ``run``, else its position)."""
    runs: list[dict[str, Any]] = []
    unreadable = 0
    if not path.is_file():
        return runs, 0
    for position, record in enumerate(_json_lines(path), start=1):
        if record is None:
            unreadable += 1
            continue
        number = record.get("run")
        runs.append({**record, "run": number if type(number) is int else position})
    return runs, unreadable


def match_runs(lines: list[dict[str, Any]], runs: list[dict[str, Any]]) -> list[JournalRun]:
    """Pair each journal ``run`` line with the summary of the run it started.

    A run's summary starts at or before its journal line and finishes after
    it (the summary's times are whole seconds); a line no summary covers is
    a run that was killed or crashed before writing one.
    """
    spans = [
        (parse_time(run.get("started_at")), parse_time(run.get("finished_at")), run) for run in runs
    ]
    matched: list[JournalRun] = []
    used: set[int] = set()
    for line in lines:
        started = float(line.get("ts", 0))
        summary = None
        for index, (begin, end, run) in enumerate(spans):
            if index in used or begin is None or end is None:
                continue
            if begin - 1 <= started <= end + 1:
                summary = run
                used.add(index)
                break
        matched.append(JournalRun(started, summary))
    return matched


def run_verification(
    out_dir: Path, keys: Sequence[Path]
) -> tuple[dict[str, Any] | None, str | None, bool]:
    """Verify ``out_dir`` in-process: its JSON, or why it could not run, and if keys were used.

    Keys are passed only to a ``verify_directory`` that takes them (older
    ones check no signature): the report then says the signature was not
    checked rather than failing. A ``ConfigError`` (not an archive, a key
    file that is not a key) goes up: the command exits 2, as ``verify`` does.
    """
    options: dict[str, Any] = {}
    if keys and "keys" in inspect.signature(verify_directory).parameters:
        # Imported here: only a report given --key needs the signature code.
        from .signing import load_public_keys

        options["keys"] = load_public_keys(keys)
    try:
        report = verify_directory(out_dir, **options)
    except ConfigError:
        raise
    except (ExportError, OSError) as exc:
        # The bucket unreachable, a file unreadable: the report says so, it does not fail.
        return None, str(exc), bool(options)
    return report.to_json(out_dir), None, bool(options)
