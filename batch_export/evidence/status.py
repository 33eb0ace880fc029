"""``batch-export status``: what the export in a state directory has done, and whether it runs.

Read-only and lock-free: the journal is append-only, so reading it while a
run appends is safe (a line being written is simply not counted yet), and
the lock is only tested, never waited for (``statedir.probe_lock``).
Nothing in DIR is created or changed.

``collect_status`` gathers everything into one dict, the ``--json`` output,
and ``format_status`` (``status_format.py``) only words that dict, so the
text and the JSON always say the same. Times are ISO 8601 UTC. Rate and ETA
are given only while a run is running, over the ``done`` lines of its last
``RATE_WINDOW`` seconds: a stopped or finished directory has none.
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..errors import ConfigError
from .causes import FailureGroups
from .checkpoint import replay_journal
from .manifest import iso_time
from .replay import (
    FAILED,
    JOURNAL_NAME,
    JournalDamage,
    TargetTable,
)
from .report_data import journal_kind
from .statedir import probe_lock
from .status_format import format_status
from .status_state import RUNNING, run_state

__all__ = [
    "ID_HEADERS",
    "RATE_WINDOW",
    "collect_status",
    "format_status",
    "write_failed_ids",
]

#: throughput is measured over this many most recent seconds of saved files
RATE_WINDOW = 300.0
#: example IDs shown per failure cause
EXAMPLES = 5
#: the header ``--failed-ids`` writes for each kind: the first name the input
#: reader recognises for it (``input/reader.py``), so ``run`` reads the file as is
ID_HEADERS = {"profile": "profile_id", "subprofile": "subprofile_id", "email": "email"}


class _RecentTimes(list[float]):
    """The ``done`` times replay appends, keeping only those at or after ``cutoff``.

    A million saved files are a million floats (32 MB) if all are kept; the
    rate needs the last few minutes', and the rest only their latest.
    """

    def __init__(self, cutoff: float) -> None:
        super().__init__()
        self.cutoff = cutoff
        self._latest = -math.inf

    @property
    def latest(self) -> float | None:
        """The latest time appended (None if none was)."""
        return self._latest if self._latest != -math.inf else None

    def extend(self, values: Iterable[float]) -> None:
        """``append`` each of ``values``, at C speed."""
        values = values if isinstance(values, Sequence) else list(values)
        if values:
            self._latest = max(self._latest, max(values))
            list.extend(self, [value for value in values if value >= self.cutoff])

    def append(self, value: float) -> None:
        # Once per done line: no None test, no super() call.
        if value > self._latest:
            self._latest = value
        if value >= self.cutoff:
            list.append(self, value)


@dataclass
class _Journal:
    """A journal replayed for status: the states, its run lines and what was damaged."""

    header: dict[str, Any]
    states: TargetTable
    runs: list[dict[str, Any]]
    damage: JournalDamage
    recent: _RecentTimes
    #: when the journal file was last written (None if there is none yet)
    mtime: float | None = None


def _read_journal(out_dir: Path, cutoff: float) -> _Journal:
    path = out_dir / JOURNAL_NAME
    states = TargetTable(None)
    runs: list[dict[str, Any]] = []
    recent = _RecentTimes(cutoff)
    try:
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        if probe_lock(out_dir).held:  # a run that is starting: its journal comes next
            return _Journal({}, states, runs, JournalDamage(), recent)
        raise ConfigError(
            f"{out_dir} has no {JOURNAL_NAME}; is it a batch-export output directory?"
        ) from None
    # A last line without its newline is being written right now (or torn by
    # a crash): not counted yet, and no cause for alarm. Damaged lines are.
    # Numeric IDs kept as integers; from the checkpoint a run's end wrote, if it is sound.
    found = replay_journal(out_dir, journal_kind(path), done_times=True)
    assert found.done_times is not None
    recent.extend(found.done_times)
    return _Journal(found.header or {}, found.states, found.runs, found.damage, recent, mtime)


def collect_status(out_dir: Path, now: float | None = None) -> dict[str, Any]:
    """Everything ``status`` says about ``out_dir`` at ``now`` (default: the clock), as JSON."""
    now = time.time() if now is None else now
    journal = _read_journal(out_dir, now - RATE_WINDOW)
    # The lock is tested after the journal is read: a run that ended in
    # between has written its summary by then (see status_state).
    state = run_state(out_dir, journal.runs, journal.mtime)
    last_run = journal.runs[-1] if journal.runs else {}
    tally = journal.states.tally()  # by status, and the counters summed
    total = int(last_run.get("targets", len(journal.states)))
    remaining = max(0, total - tally["done"] - tally["failed"])
    return {
        "directory": str(out_dir),
        "kind": journal.header.get("kind"),
        "checked_at": iso_time(now),
        **state,
        "targets": total,
        "invalid_rows": int(last_run.get("invalid", 0)),
        "done": tally["done"],
        "failed": tally["failed"],
        "open_requests": tally["submitted"],
        "submitting": tally["submitting"],
        "not_started": max(0, total - len(journal.states)) + tally["new"],
        "remaining": remaining,
        "bytes": tally["bytes"],
        "reissued": tally["reissued"],
        "ambiguous_submits": tally["ambiguous"],
        "last_saved_at": iso_time(journal.recent.latest),
        **_rate(journal, state, remaining, now),
        "failures": _failures(journal.states),
        "damaged_lines": journal.damage.lines,
        "damaged_count": journal.damage.count,
        "journal_damage": journal.damage.describe(),
    }


def _rate(journal: _Journal, state: dict[str, Any], remaining: int, now: float) -> dict[str, Any]:
    """Exports per second over the running run's recent window, and the ETA at that pace.

    Only while running: the window starts ``RATE_WINDOW`` seconds ago, or
    when this run started if that is later (the run before it is no measure).
    """
    rate: dict[str, Any] = {
        "rate_window_seconds": None,
        "exports_per_second": None,
        "eta_seconds": None,
        "eta_at": None,
    }
    if state["state"] != RUNNING:
        return rate
    started = journal.runs[-1].get("ts") if journal.runs else None
    start = max(now - RATE_WINDOW, float(started) if started is not None else now - RATE_WINDOW)
    span = now - start
    if span < 1:  # a second of a run says nothing about its pace
        return rate
    per_second = sum(1 for t in journal.recent if start <= t <= now) / span
    rate |= {"rate_window_seconds": round(span), "exports_per_second": round(per_second, 3)}
    if per_second > 0 and remaining:
        eta = round(remaining / per_second)
        rate |= {"eta_seconds": eta, "eta_at": iso_time(now + eta)}
    return rate


def _failures(states: TargetTable) -> dict[str, Any]:
    """Failed targets by cause (``causes.failure_cause``): every cause, a count, example IDs."""
    groups = FailureGroups(max_examples=EXAMPLES)
    for slot in states.slots_with(FAILED):
        groups.add(states.errors.get(slot), states.id_of(slot))
    return {
        "total": groups.total,
        "causes": [
            {"cause": group.cause, "count": group.count, "examples": group.examples}
            for group in groups.groups()
        ],
        "other_causes": groups.overflowed,
    }


def write_failed_ids(out_dir: Path, stream: IO[str]) -> int:
    """Write the failed targets of ``out_dir`` as a CSV ``run`` reads; how many were written.

    Failed targets only: a target the run had not finished (pending, never
    started) is resumed by rerunning the original command, and one never
    started is not even in the journal. The header is the kind's ID column.
    """
    journal = _read_journal(out_dir, time.time())
    kind = journal.header.get("kind")
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow([ID_HEADERS.get(str(kind), "id")])
    count = 0
    states = journal.states
    for slot in states.slots_with(FAILED):
        writer.writerow([states.id_of(slot)])
        count += 1
    return count
