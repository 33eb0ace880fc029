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
resumes exactly where its last durable line left it. ``record()`` returns
only when its line is on disk, yet a thousand concurrent targets cost one
fsync (or one shared ``syncfs`` trip with the local store's small exports),
not a thousand: how the lines get there is ``journal_writer.py``'s job.

Reading the file back (resume, ``batch-export status``, the manifest) is
``replay.py``'s job, which also tells a crash's torn tail from damage.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from ..durable import fsync_dir, open_private, write_all
from ..errors import ConfigError
from ..storage.group_commit import FileSystemSync
from ..storage.sink import SavedExport
from .chain import chain_lines, last_line_hash
from .checkpoint import replay_journal
from .done_lines import final_done_records
from .journal_header import check_header, new_header, write_header
from .journal_writer import JournalWriter
from .recorded import RecordedFiles
from .replay import (
    DONE,
    EVENTS,
    FAILED,
    JOURNAL_NAME,
    NEW,
    SUBMITTED,
    SUBMITTING,
    JournalDamage,
    TargetState,
    replay,
)
from .target_table import TargetTable, TargetView

__all__ = [
    # the record vocabulary, shared with the reader (replay.py), named here by writers
    "DONE",
    "EVENTS",
    "FAILED",
    "JOURNAL_NAME",
    "NEW",
    "SUBMITTED",
    "SUBMITTING",
    "Journal",
    "JournalDamage",
    "TargetState",
    "TargetTable",
    "TargetView",
    "replay",
]

log = logging.getLogger("batch_export.evidence.journal")

#: the compact encoder for what orjson refuses (``json.dumps`` with options builds one per call)
_JSON_ENCODE = json.JSONEncoder(separators=(",", ":")).encode


def _encode_line(record: dict[str, Any]) -> str:
    """One line's compact JSON: orjson (0.4 µs a ``done`` line against 5 µs for ``json``).

    What orjson refuses (an integer past 64 bits, a lone surrogate in an ID
    built outside the reader) is written by ``json``, which escapes it. Both
    write non-ASCII text differently (orjson as UTF-8, json as ``\\u``
    escapes); every reader parses both alike.
    """
    try:
        return orjson.dumps(record).decode()
    except TypeError:  # orjson.JSONEncodeError is one
        return _JSON_ENCODE(record)


class Journal:
    """Append-only, fsync'd journal of target states, with group commit."""

    def __init__(
        self,
        path: Path,
        fd: int,
        header: dict[str, Any],
        states: TargetTable,
        files: RecordedFiles | None = None,
        *,
        head: str | None = None,
        lines: int = 0,
        runs: int = 0,
    ) -> None:
        self.path = path
        self.header = header
        self.kind = str(header.get("kind"))
        self.states = states
        #: the file names of done targets that differ from the default one
        self._files = RecordedFiles(self.kind) if files is None else files
        #: appends the lines, durably (its own fsyncs, or the store's shared trips)
        self.out = JournalWriter(path, fd, head=head, lines=lines)
        #: what ``open`` found damaged or torn (see the module docstring)
        self.damage = JournalDamage()
        #: the number of the latest ``run`` line (this run's, once it is recorded)
        self.run_number = runs

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

    def warnings(self) -> list[str]:
        """The messages a run logs about what ``open`` found: damage first, then a torn tail."""
        return self.damage.warnings(self.path.name)

    # -- opening and replay ---------------------------------------------------

    @classmethod
    def open(cls, out_dir: Path, kind: str, states: TargetTable | None = None) -> Journal:
        """Open (or create) the journal in ``out_dir`` and replay it (into ``states``, if given).

        A run passes its input's table: its targets keep the first slots, in input order.
        """
        path = out_dir / JOURNAL_NAME
        states = TargetTable(kind) if states is None else states
        files = RecordedFiles(kind)
        header = new_header(kind)
        damage = JournalDamage()
        runs: list[dict[str, Any]] = []
        if path.exists():
            found = replay_journal(out_dir, kind, into=states)
            read_header, good_end, damage = found.header, found.good_end, found.damage
            states, files, runs = found.states, found.files, found.runs
            if damage.header is not None:
                raise ConfigError(
                    f"{path}: line 1, the header, is damaged ({damage.header}); it says which "
                    "export the directory holds, so the run cannot go on: restore the file "
                    "from a backup, or use an empty --out directory"
                )
            if read_header is None:
                good_end = 0  # nothing usable (a header torn by a crash): start afresh
            else:
                check_header(read_header, kind, path)
                header = read_header
            fd = os.open(path, os.O_WRONLY | os.O_APPEND)
            if good_end < os.fstat(fd).st_size:
                os.ftruncate(fd, good_end)
                os.fsync(fd)
            lines = damage.complete_lines if read_header is not None else 0
            head = last_line_hash(path, good_end)
            if read_header is None:
                head = write_header(fd, {**header, "created": time.time()})
                lines = 1
        else:
            fd = open_private(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL)
            head = write_header(fd, {**header, "created": time.time()})
            lines = 1
            fsync_dir(out_dir)
        journal = cls(path, fd, header, states, files, head=head, lines=lines, runs=len(runs))
        journal.damage = damage
        return journal

    def recorded_file(self, target_id: str) -> str | None:
        """The ``file`` the target's last ``done`` line recorded (None when it is not done).

        Where its export is, even if the naming has changed since: the resume
        check and the manifest look there, never at a recomputed name.
        """
        state = self.states.get(target_id)
        if state is None or state.status != DONE:
            return None
        return self._files.get(target_id, gzip=state.gzip)

    # -- writing ----------------------------------------------------------------

    def state(self, target_id: str) -> TargetView:
        """The state of a target, created empty on first sight (a view of its table slot)."""
        return self.states.state(target_id)

    async def record(self, event: str, target_id: str, **fields: Any) -> None:
        """Apply a state change and return once its line is durable on disk."""
        self.out.check_healthy()
        await self.out.write(_encode_line(self._change(event, target_id, fields)) + "\n")

    def note(self, event: str, target_id: str, **fields: Any) -> None:
        """Apply a state change whose line goes to disk with the next group commit.

        For changes the run need not wait for: lines reach the file in the
        order they were made, so the next awaited ``record`` (or ``close``)
        makes this one durable too, and a crash before that loses nothing a
        crash a moment earlier would not have (a ``submitted`` line lost that
        way turns into an ambiguous resubmit; a ``done`` line into a second
        download). Not waiting spares each target a wake-up per line.
        """
        self.out.check_healthy()
        self.out.queue(_encode_line(self._change(event, target_id, fields)) + "\n")

    def note_saved(self, target_id: str, rid: str, saved: SavedExport) -> None:
        """Queue the ``done`` line of an export the sink saved (see ``note``).

        The line also says when its request was made (``submitted``, the
        request's ``submitted`` line's time) and in which run it was saved,
        for the manifest's ``submitted_at``, ``saved_at`` and ``run``.
        """
        state = self.states.get(target_id)
        self.note(
            "done",
            target_id,
            rid=rid,
            run=self.run_number or None,
            submitted=state.submitted_at if state is not None else None,
            file=saved.file,
            bytes=saved.bytes,
            sha256=saved.sha256,
            gzip=saved.gzip or None,
            store=saved.store,
            origin=saved.origin,
        )

    async def record_run(self, **fields: Any) -> None:
        """A line about the run itself (no target): read by ``batch-export status``."""
        self.out.check_healthy()
        self.run_number += 1
        record = {"ts": round(time.time(), 3), "ev": "run", "run": self.run_number, **fields}
        await self.out.write(_encode_line(record) + "\n")

    def _change(self, event: str, target_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        if event not in EVENTS:  # it would read back as damage
            raise ValueError(f"unknown journal event {event!r}: add it to journal.EVENTS")
        record: dict[str, Any] = {"ts": round(time.time(), 3), "ev": event, "id": target_id}
        for name, value in fields.items():  # a loop, not a comprehension's call: three per export
            if value is not None:
                record[name] = value
        self.states.fold(target_id, record, live=True)
        if event == DONE:
            self._files.note(target_id, record)
        return record

    def final_done_records(
        self, *, only_input: bool = True
    ) -> Iterator[tuple[str, dict[str, Any], TargetView]]:
        """Each done target (``only_input``: of this input), with its last ``done`` line.

        Reads the journal once more (``done_lines.final_done_records``) instead
        of keeping every request ID and hash in memory: for the manifest, after
        ``close()``, and for the resume check of a bucket, before the run.
        """
        return final_done_records(self.path, self.states, only_input=only_input)

    def release_states(self) -> None:
        """Forget every target's state (after the manifest is written, before the seal)."""
        self.states = TargetTable(self.kind)
        self._files = RecordedFiles(self.kind)

    def append_seal_line(self, seal: int, sha256: str) -> None:
        """After ``close``: append the line that names the seal just written (fsync'd).

        A seal records the journal up to the line before this one; this line
        then says the seal exists, so removing the latest seal shows (its
        line names a file that is gone).
        """
        line = _encode_line(
            {"ts": round(time.time(), 3), "ev": "seal", "seal": seal, "sha256": sha256}
        )
        data, head = chain_lines([line + "\n"], self.out.head)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        self.out.head = head
        self.out.lines += 1

    def share_trips(self, group: FileSystemSync) -> None:
        """Make the lines durable in the local store's shared trips (``JournalWriter.share_trips``)."""
        self.out.share_trips(group)

    @property
    def head(self) -> str | None:
        """The hash of the last line on disk, which the next line names (``chain.py``)."""
        return self.out.head

    @property
    def lines(self) -> int:
        """Complete lines on disk, the header included."""
        return self.out.lines

    @property
    def fsyncs(self) -> int:
        """The journal's fsyncs, or the shared trips that carried its lines."""
        return self.out.fsyncs

    async def close(self) -> None:
        """Wait for queued lines to reach the disk, then close the file.

        Raises ExportError if any line could not be written: lines recorded
        without waiting (``note``) have nobody else to tell.
        """
        await self.out.close()
