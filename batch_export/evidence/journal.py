"""The durable record of every target's progress: an append-only JSON-lines file.

``DIR/journal.jsonl`` starts with a header line (format version, target kind)
followed by one line per state change::

    {"ts": 1764331200.1, "ev": "submitting", "id": "1001"}
    {"ts": 1764331200.2, "ev": "submitted", "id": "1001", "rid": "dr_..."}
    {"ts": 1764331203.9, "ev": "done", "id": "1001", "rid": "dr_...", "file": "exports/...",
     "bytes": 20000, "sha256": "..."}

Push mode adds ``push-conflict`` (``rid``, ``first``, ``second``: the sha256
of two different deliveries), which reopens the target until the platform's
own copy has been fetched (``push.py``).

Replaying the lines in order rebuilds each target's state, so a killed run
resumes exactly where its last durable line left it. Lines are written by one
flusher task that appends everything queued since its last write and fsyncs
once ("group commit"): every ``record()`` returns only when its line is on
disk, yet a thousand concurrent targets cost one fsync, not a thousand.

Torn tail and damage are told apart, because they mean different things:

- A crash can only tear the *last* line: a write that stopped before its
  newline. ``open`` drops such a torn tail and truncates the file back to its
  last complete line before appending (``Journal.torn_tail``). That is
  routine after a kill or a power cut.
- A complete line anywhere else that is not JSON, or not a valid record (not
  an object, an event this version does not know, a field replay relies on
  missing or of the wrong type), is *damage*: no crash writes that, so the
  file was edited or the disk is failing. The line is skipped and left in
  the file, the good lines around it are replayed, and the run goes on
  (``Journal.damage``: 1-based line numbers, the first ``MAX_DAMAGED_LINES``
  kept, and the total count). Skipping a line costs redone work, not
  exports: a lost ``done`` line means one more download, a lost
  ``submitted`` line one ambiguous resubmit. (The exception is a lost
  ``push-conflict`` line, whose target then trusts its first pushed file
  unless the re-fetch's ``done`` line follows.)
- A damaged *header* (line 1) stops the run with ConfigError: without it
  nothing says which kind of export the directory holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..durable import fsync_dir, open_private, write_all
from ..errors import ConfigError, ExportError

__all__ = [
    "EVENTS",
    "JOURNAL_NAME",
    "Journal",
    "JournalDamage",
    "TargetState",
    "read_lines",
    "replay",
]

log = logging.getLogger("batch_export.evidence.journal")

JOURNAL_NAME = "journal.jsonl"
#: seconds the flusher waits to gather lines into one write + fsync
COMMIT_DELAY = 0.003
FORMAT = "batch-export-journal"
#: one compact encoder for every line (``json.dumps`` with options builds a new one per call)
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode
VERSION = 1
#: how many damaged line numbers are kept in memory (the count goes on)
MAX_DAMAGED_LINES = 100
#: how many of them a message lists
SHOWN_DAMAGED_LINES = 5

#: the warning after a torn last line was dropped: routine after a crash
TORN_MESSAGE = "journal: dropped 1 torn line left by a crash (its write never finished)"

#: every event a journal line may carry; any other is damage (add new ones here)
EVENTS = frozenset(
    {
        "submitting",
        "ambiguous",
        "submitted",
        "expired",
        "done",
        "failed",
        "stale",
        "push-conflict",
        "run",
    }
)

# Target statuses held in memory (manifest statuses are derived from these).
NEW = "new"
SUBMITTING = "submitting"  # a POST was (maybe) sent; no request ID known yet
SUBMITTED = "submitted"
DONE = "done"
FAILED = "failed"


class TargetState:
    """What the run needs to know about one target, kept small for millions of them.

    A finished target keeps no request ID, hash or file name in memory, nor
    its size if it finished in this run: those stay in its ``done`` journal
    line, from which the manifest is written (``Journal.final_done_records``);
    ``done_records`` counts those lines so the last one can be recognised.
    """

    __slots__ = (
        "ambiguous",
        "attempts",
        "bytes",
        "done_records",
        "error",
        "gzip",
        "in_input",
        "reissued",
        "request_id",
        "status",
    )

    def __init__(self) -> None:
        self.status = NEW
        self.request_id: str | None = None
        self.attempts = 0  # POSTs sent for this target, over all runs
        self.ambiguous = 0  # POSTs that may have created a request we never learnt of
        self.reissued = 0  # requests that expired or vanished and were asked again
        self.bytes = 0  # size of a file saved by an earlier run, for the cheap resume check
        self.gzip = False
        self.error: str | None = None
        self.done_records = 0
        self.in_input = False  # named in this run's input (the manifest lists only those)

    def apply(self, record: dict[str, Any], *, live: bool = False) -> None:
        """Fold one journal record into this state (``live``: a change made by this run)."""
        event = record.get("ev")
        if event == "submitting":
            self.status = SUBMITTING
            self.request_id = None
            self.attempts += 1
        elif event == "ambiguous":
            self.ambiguous += 1
        elif event == "submitted":
            self.status = SUBMITTED
            self.request_id = record.get("rid")
            self.error = None
        elif event == "expired":
            self.status = NEW
            self.request_id = None
            self.reissued += 1
        elif event == "done":
            self.status = DONE
            self.request_id = None
            # Only a size replayed from an earlier run is ever read (the resume
            # check in ``pipeline._plan``). One saved by this run stays in its
            # journal line: a million distinct int objects would be ~25 MB.
            self.bytes = 0 if live else int(record.get("bytes", 0))
            self.gzip = bool(record.get("gzip", False))
            self.error = None
            self.done_records += 1
        elif event == "failed":
            self.status = FAILED
            self.error = record.get("error")
        elif event == "push-conflict":
            # Two different pushed exports: the file is not trusted until the
            # platform's own copy is fetched, so replay reopens the request.
            self.status = SUBMITTED
            self.request_id = record.get("rid")
            self.error = None
        elif event == "stale":
            # a done target whose file went missing or bad: export it again
            self.status = NEW
            self.request_id = None
            self.error = record.get("error")


@dataclass
class JournalDamage:
    """What reading a journal found wrong with it: damaged lines and a torn tail."""

    #: 1-based numbers of damaged lines (the first ``MAX_DAMAGED_LINES`` of them)
    lines: list[int] = field(default_factory=list)
    #: why each of ``lines`` is damaged, in the same order
    reasons: list[str] = field(default_factory=list)
    #: every damaged line, including those whose numbers were not kept
    count: int = 0
    #: a last line without its newline (a crash mid-write) was dropped
    torn_tail: bool = False
    #: why line 1, the header, is damaged (None if it is fine)
    header: str | None = None
    #: byte offset just past the last complete line (where a torn tail begins)
    complete_end: int = 0

    def add(self, number: int, reason: str) -> None:
        """Note that line ``number`` is damaged, and why."""
        self.count += 1
        if len(self.lines) < MAX_DAMAGED_LINES:
            self.lines.append(number)
            self.reasons.append(reason)

    def warnings(self, name: str = JOURNAL_NAME) -> list[str]:
        """What a run should warn about: the damage, and a torn tail (a crash's mark)."""
        found = [TORN_MESSAGE] if self.torn_tail else []
        damaged = self.describe(name)
        if damaged is not None:
            found.insert(0, damaged)
        return found

    def describe(self, name: str = JOURNAL_NAME) -> str | None:
        """The warning about damaged lines (None if there are none).

        Worded so it cannot be taken for the routine news of a crash.
        """
        if not self.count:
            return None
        shown = [str(number) for number in self.lines[:SHOWN_DAMAGED_LINES]]
        more = self.count - len(shown)
        why = "; ".join(dict.fromkeys(self.reasons[:SHOWN_DAMAGED_LINES]))
        if self.count == 1:
            where, pronoun = f"line {shown[0]} is", "it was"
        else:
            listed = ", ".join(shown) if more else ", ".join(shown[:-1]) + " and " + shown[-1]
            where = f"lines {listed}{f' and {more} more' if more else ''} are"
            pronoun = "they were"
        return (
            f"{name}: {where} damaged ({why}); {pronoun} skipped and the good lines "
            "replayed. This is not the torn last line an interrupted write leaves: the "
            "file was changed, or the disk is failing"
        )


class Journal:
    """Append-only, fsync'd journal of target states, with group commit."""

    def __init__(
        self, path: Path, fd: int, header: dict[str, Any], states: dict[str, TargetState]
    ) -> None:
        self.path = path
        self.header = header
        self.kind = str(header.get("kind"))
        self.states = states
        self._fd = fd
        self._buffer: list[str] = []
        self._waiter: asyncio.Future[None] | None = None
        self._flusher: asyncio.Task[None] | None = None
        #: why the journal cannot be written any more, once a write has failed
        self._failure: str | None = None
        self._writing: asyncio.Future[None] | None = None
        self.fsyncs = 0
        self.commit_delay = COMMIT_DELAY
        #: what ``open`` found damaged or torn (see the module docstring)
        self.damage = JournalDamage()

    @property
    def damaged_lines(self) -> list[int]:
        """1-based numbers of the damaged lines skipped on replay (the first ones)."""
        return self.damage.lines

    @property
    def damaged_count(self) -> int:
        """How many damaged lines were skipped on replay."""
        return self.damage.count

    @property
    def torn_tail(self) -> bool:
        """Whether ``open`` dropped a torn last line, as a crash leaves."""
        return self.damage.torn_tail

    @property
    def torn_lines(self) -> int:
        """1 if a torn last line was dropped, else 0 (``torn_tail`` as a count)."""
        return int(self.damage.torn_tail)

    @property
    def skipped_lines(self) -> int:
        """The damaged lines skipped on replay (``damaged_count``)."""
        return self.damage.count

    def warnings(self) -> list[str]:
        """The messages a run logs about what ``open`` found: damage first, then a torn tail."""
        return self.damage.warnings(self.path.name)

    # -- opening and replay ---------------------------------------------------

    @classmethod
    def open(cls, out_dir: Path, kind: str) -> Journal:
        """Open (or create) the journal in ``out_dir`` and replay it."""
        path = out_dir / JOURNAL_NAME
        states: dict[str, TargetState] = {}
        header: dict[str, Any] = {"format": FORMAT, "version": VERSION, "kind": kind}
        damage = JournalDamage()
        if path.exists():
            read_header, good_end, damage = replay(path, states)
            if damage.header is not None:
                raise ConfigError(
                    f"{path}: line 1, the header, is damaged ({damage.header}); it says which "
                    "export the directory holds, so the run cannot go on: restore the file "
                    "from a backup, or use an empty --out directory"
                )
            if read_header is None:
                good_end = 0  # nothing usable (a header torn by a crash): start afresh
            else:
                _check_header(read_header, kind, path)
                header = read_header
            fd = os.open(path, os.O_WRONLY | os.O_APPEND)
            if good_end < os.fstat(fd).st_size:
                os.ftruncate(fd, good_end)
                os.fsync(fd)
            if read_header is None:
                write_all(fd, (json.dumps({**header, "created": time.time()}) + "\n").encode())
                os.fsync(fd)
        else:
            fd = open_private(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL)
            header["created"] = time.time()
            write_all(fd, (json.dumps(header) + "\n").encode())
            os.fsync(fd)
            fsync_dir(out_dir)
        journal = cls(path, fd, header, states)
        journal.damage = damage
        return journal

    # -- writing ----------------------------------------------------------------

    def state(self, target_id: str) -> TargetState:
        """The state of a target, created empty on first sight."""
        found = self.states.get(target_id)
        if found is None:
            found = self.states[target_id] = TargetState()
        return found

    async def record(self, event: str, target_id: str, **fields: Any) -> None:
        """Apply a state change and return once its line is durable on disk."""
        self._check_healthy()
        await self._append(self._change(event, target_id, fields))

    def note(self, event: str, target_id: str, **fields: Any) -> None:
        """Apply a state change whose line goes to disk with the next group commit.

        For changes the run need not wait for: lines reach the file in the
        order they were made, so the next awaited ``record`` (or ``close``)
        makes this one durable too, and a crash before that loses nothing a
        crash a moment earlier would not have (a ``submitted`` line lost that
        way turns into an ambiguous resubmit; a ``done`` line into a second
        download). Not waiting spares each target a wake-up per line.
        """
        self._check_healthy()
        self._buffer.append(_ENCODE(self._change(event, target_id, fields)) + "\n")
        self._ensure_flusher(asyncio.get_running_loop())

    async def record_run(self, **fields: Any) -> None:
        """A line about the run itself (no target): read by ``batch-export status``."""
        self._check_healthy()
        await self._append({"ts": round(time.time(), 3), "ev": "run", **fields})

    def _change(self, event: str, target_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        if event not in EVENTS:  # it would read back as damage
            raise ValueError(f"unknown journal event {event!r}: add it to journal.EVENTS")
        record: dict[str, Any] = {"ts": round(time.time(), 3), "ev": event, "id": target_id}
        record.update({k: v for k, v in fields.items() if v is not None})
        self.state(target_id).apply(record, live=True)
        return record

    def _check_healthy(self) -> None:
        # After a failed write nothing more may be claimed durable: every later
        # line (awaited or not) fails, and so does ``close``.
        if self._failure is not None:
            # A fresh exception per caller: a shared one would collect every
            # failing task's frames in its traceback.
            raise OSError(self._failure)

    async def _append(self, record: dict[str, Any]) -> None:
        self._buffer.append(_ENCODE(record) + "\n")
        loop = asyncio.get_running_loop()
        if self._waiter is None:
            self._waiter = loop.create_future()
        waiter = self._waiter
        self._ensure_flusher(loop)
        try:
            await asyncio.shield(waiter)
        except OSError as exc:
            raise OSError(str(exc)) from None  # every caller its own (see _check_healthy)

    def _ensure_flusher(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush_loop())

    async def _flush_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while self._buffer and self._failure is None:
            # Let concurrent targets add their lines first: one fsync then covers
            # them all, for a couple of milliseconds of latency per step.
            await asyncio.sleep(self.commit_delay)
            data = "".join(self._buffer).encode()
            self._buffer = []
            waiter, self._waiter = self._waiter, None
            # Shielded: a cancelled flusher must not hide a write still under
            # way in its thread from ``close``.
            self._writing = loop.run_in_executor(None, self._write_durably, data)
            try:
                await asyncio.shield(self._writing)
            except Exception as exc:
                self._failure = self._write_failed(exc)
                # Lines queued while this write was under way will never be
                # written either: their callers are told now, not at close().
                self._fail_waiter(waiter)
                self._fail_waiter(self._waiter)
                self._waiter = None
                return
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def _fail_waiter(self, waiter: asyncio.Future[None] | None) -> None:
        if waiter is None or waiter.done():
            return
        assert self._failure is not None
        waiter.set_exception(OSError(self._failure))
        # Marked retrieved: callers cancelled by a stop no longer listen (a
        # shield drops its callback), and asyncio would log the exception.
        waiter.exception()

    def _write_failed(self, exc: Exception) -> str:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        return f"cannot write the journal {self.path}: {reason}"

    def _write_durably(self, data: bytes) -> None:
        write_all(self._fd, data)
        os.fsync(self._fd)
        self.fsyncs += 1

    def final_done_records(self) -> Iterator[tuple[str, dict[str, Any], TargetState]]:
        """Each input target that is done, with its last ``done`` line, in journal order.

        Reads the journal once more instead of keeping every request ID and
        hash in memory. It counts ``done_records`` down as it goes, so it can
        be used once, at the end of a run, after ``close()``.
        """
        for raw in _lines(self.path):
            # A loose prefilter (a line edited by hand may have spaces in it):
            # every line replay counted in done_records must be counted down.
            if b'"done"' not in raw or not raw.endswith(b"\n"):
                continue
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            if _record_problem(record) is not None or record.get("ev") != DONE:
                continue  # damaged lines are skipped by replay too
            target_id = record.get("id")
            state = self.states.get(target_id) if isinstance(target_id, str) else None
            if state is None or not state.in_input or state.status != DONE:
                continue
            state.done_records -= 1
            if state.done_records == 0:
                yield target_id, record, state

    async def close(self) -> None:
        """Wait for queued lines to reach the disk, then close the file.

        Raises ExportError if any line could not be written: lines recorded
        without waiting (``note``) have nobody else to tell.
        """
        if self._flusher is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        if self._writing is not None and self._failure is None:
            # A cancelled flusher's write goes on in its thread: let it end
            # before writing the rest, so lines stay in order.
            try:
                await self._writing
            except Exception as exc:
                self._failure = self._write_failed(exc)
        if self._buffer and self._failure is None:  # left behind by a cancelled flusher
            try:
                self._write_durably("".join(self._buffer).encode())
            except OSError as exc:
                self._failure = self._write_failed(exc)
        self._buffer = []
        if self._failure is not None:
            self._fail_waiter(self._waiter)
        elif self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._failure is not None:
            raise ExportError(self._failure)


def read_lines(path: Path, damage: JournalDamage) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, record)`` for each good line of a journal, 1-based.

    Line 1 is yielded if it is a JSON object (the caller checks it is a
    header); every later line only if it is a valid record. Damaged lines go
    into ``damage`` (``damage.header`` for line 1) and are skipped; a last
    line without a newline sets ``damage.torn_tail`` and ends the reading.
    """
    offset = 0
    for number, raw in enumerate(_lines(path), start=1):
        end = offset + len(raw)
        offset = end
        if not raw.endswith(b"\n"):
            damage.torn_tail = True  # a crash mid-write: only ever the last line
            return
        damage.complete_end = end
        try:
            record = json.loads(raw)
        except ValueError:
            problem: str | None = "not valid JSON"
        else:
            if number == 1:
                problem = None if isinstance(record, dict) else "not a JSON object"
            else:
                problem = _record_problem(record)
        if problem is not None:
            if number == 1:
                damage.header = problem
            damage.add(number, problem)
            continue
        yield number, record


def replay(
    path: Path, states: dict[str, TargetState]
) -> tuple[dict[str, Any] | None, int, JournalDamage]:
    """Fold every good line of a journal into ``states``.

    Returns the header (None if there is none: an empty file, a header torn by
    a crash, or a damaged one, which ``damage.header`` then names), the byte
    offset just past the last complete line (where a torn tail begins), and
    what was found damaged or torn.
    """
    damage = JournalDamage()
    header: dict[str, Any] | None = None
    for number, record in read_lines(path, damage):
        if number == 1:
            if record.get("format") != FORMAT:
                raise ConfigError(
                    f"{path} is not a batch-export journal; use an empty --out directory"
                )
            header = record
            continue
        target_id = record.get("id")
        if isinstance(target_id, str):
            state = states.get(target_id)
            if state is None:
                state = states[target_id] = TargetState()
            state.apply(record)
    return header, damage.complete_end, damage


def _is_int(value: object) -> bool:
    return type(value) is int  # not a bool; what json.loads makes of an integer


def _record_problem(record: object) -> str | None:
    """Why a parsed line is not a record replay can use, or None if it is one.

    Runs for every line of every replay: exact type tests (what ``json.loads``
    produces) and the common events first.
    """
    if type(record) is not dict:
        return "not a JSON object"
    event = record.get("ev")
    if type(event) is not str or event not in EVENTS:
        return "not a journal record: no known event"
    ts = record.get("ts")
    if ts is not None and type(ts) is not float and type(ts) is not int:
        return "not a journal record: a bad timestamp"
    if event == "run":
        if any(not _is_int(record.get(name, 0)) for name in ("targets", "invalid", "todo")):
            return "not a journal record: a bad count"
        return None
    if type(record.get("id")) is not str:
        return "not a journal record: no target ID"
    if event == "done":
        size = record.get("bytes", 0)
        if type(size) is not int or size < 0:
            return "not a journal record: a bad size"
        if type(record.get("sha256", "")) is not str:
            return "not a journal record: a bad sha256"
    elif (event == "submitted" or event == "push-conflict") and type(record.get("rid")) is not str:
        return "not a journal record: no request ID"
    error = record.get("error")
    if error is not None and type(error) is not str:
        return "not a journal record: a bad error"
    return None


def _lines(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        yield from handle


def _check_header(header: dict[str, Any], kind: str, path: Path) -> None:
    if header.get("version") != VERSION:
        raise ConfigError(
            f"{path} was written by journal format version {header.get('version')}; "
            f"this batch-export reads version {VERSION}"
        )
    if header.get("kind") != kind:
        raise ConfigError(
            f"{path.parent} holds a {header.get('kind')} export; "
            f"use another --out directory for --kind {kind}"
        )
