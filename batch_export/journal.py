"""The durable record of every target's progress: an append-only JSON-lines file.

``DIR/journal.jsonl`` starts with a header line (format version, target kind)
followed by one line per state change::

    {"ts": 1764331200.1, "ev": "submitting", "id": "1001"}
    {"ts": 1764331200.2, "ev": "submitted", "id": "1001", "rid": "dr_..."}
    {"ts": 1764331203.9, "ev": "done", "id": "1001", "rid": "dr_...", "file": "exports/...",
     "bytes": 20000, "sha256": "..."}

Replaying the lines in order rebuilds each target's state, so a killed run
resumes exactly where its last durable line left it. Lines are written by one
flusher task that appends everything queued since its last write and fsyncs
once ("group commit"): every ``record()`` returns only when its line is on
disk, yet a thousand concurrent targets cost one fsync, not a thousand.

A crash can tear the last line; ``open`` drops a torn tail and truncates the
file back to its last complete line before appending.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .durable import fsync_dir, open_private, write_all
from .errors import ConfigError, ExportError

__all__ = ["JOURNAL_NAME", "Journal", "TargetState", "replay"]

log = logging.getLogger("batch_export.journal")

JOURNAL_NAME = "journal.jsonl"
#: seconds the flusher waits to gather lines into one write + fsync
COMMIT_DELAY = 0.003
FORMAT = "batch-export-journal"
#: one compact encoder for every line (``json.dumps`` with options builds a new one per call)
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode
VERSION = 1

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
        elif event == "stale":
            # a done target whose file went missing or bad: export it again
            self.status = NEW
            self.request_id = None
            self.error = record.get("error")


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
        self.torn_lines = 0
        self.skipped_lines = 0

    # -- opening and replay ---------------------------------------------------

    @classmethod
    def open(cls, out_dir: Path, kind: str) -> Journal:
        """Open (or create) the journal in ``out_dir`` and replay it."""
        path = out_dir / JOURNAL_NAME
        states: dict[str, TargetState] = {}
        header: dict[str, Any] = {"format": FORMAT, "version": VERSION, "kind": kind}
        torn = skipped = 0
        if path.exists():
            read_header, good_end, torn, skipped = replay(path, states)
            if read_header is None:
                good_end = 0  # nothing usable: start the file afresh
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
        journal.torn_lines, journal.skipped_lines = torn, skipped
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
            if b'"ev":"done"' not in raw or not raw.endswith(b"\n"):
                continue
            try:
                record = json.loads(raw)
            except ValueError:
                continue
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


def replay(
    path: Path, states: dict[str, TargetState]
) -> tuple[dict[str, Any] | None, int, int, int]:
    """Fold every line of a journal into ``states``.

    Returns the header (None if even that is unreadable), the byte offset just
    past the last good line, and how many torn and skipped lines were seen.
    """
    header: dict[str, Any] | None = None
    good_end = 0
    torn = skipped = 0
    offset = 0
    for raw in _lines(path):
        end = offset + len(raw)
        complete = raw.endswith(b"\n")
        try:
            record = json.loads(raw) if complete else None
        except ValueError:
            record = None
        if record is None or not isinstance(record, dict):
            if not complete:
                torn += 1  # a crash mid-write: the tail is dropped
                break
            skipped += 1
            log.warning("journal %s: skipping an unreadable line at byte %d", path, offset)
            offset = good_end = end
            continue
        if header is None:
            if record.get("format") != FORMAT:
                raise ConfigError(
                    f"{path} is not a batch-export journal; use an empty --out directory"
                )
            header = record
        else:
            target_id = record.get("id")
            if isinstance(target_id, str):
                state = states.get(target_id)
                if state is None:
                    state = states[target_id] = TargetState()
                state.apply(record)
        offset = good_end = end
    return header, good_end, torn, skipped


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
