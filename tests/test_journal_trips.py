"""The journal riding the local store's shared syncfs trips (``Journal.share_trips``)."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import threading
from pathlib import Path

import pytest

from batch_export import durable
from batch_export.durable import syncfs_available
from batch_export.errors import ExportError
from batch_export.evidence.journal import Journal, TargetTable
from batch_export.evidence.journal_writer import JournalWriter
from batch_export.storage import group_commit
from batch_export.storage.group_commit import FileSystemSync, shared_sync

pytestmark = pytest.mark.skipif(not syncfs_available(), reason="no syncfs that reports errors")


class NoOwnFsync(JournalWriter):
    """A journal writer that fails the test if it ever writes and fsyncs by itself."""

    def _write_durably(self, lines: list[str]) -> None:
        raise AssertionError("the journal wrote with an fsync of its own")


def _open(directory: Path) -> tuple[Journal, FileSystemSync]:
    journal = Journal.open(directory, "profile")
    plain = journal.out
    journal.out = NoOwnFsync(plain.path, plain._fd, head=plain.head, lines=plain.lines)
    group = shared_sync(str(directory))
    assert group is not None
    journal.share_trips(group)
    return journal, group


def _in_trip(journal: Journal) -> bool:
    """Whether lines were written by a trip whose syncfs has not ended (a call: mypy narrows fields)."""
    return journal.out._in_trip


def _events(path: Path) -> list[tuple[str, str]]:
    lines = [json.loads(line) for line in path.read_text().splitlines()[1:]]
    return [(line["ev"], line["id"]) for line in lines]


async def test_lines_ride_the_shared_trips_in_the_order_made(tmp_path: Path) -> None:
    """record() returns once a trip has synced its line; noted lines go with the next trip."""
    journal, group = _open(tmp_path)
    before = group.trips
    await journal.record("submitting", "1")
    assert _events(journal.path) == [("submitting", "1")]  # on disk when record returned
    journal.note("submitted", "1", rid="r1")
    await asyncio.gather(*(journal.record("submitting", str(n)) for n in range(2, 12)))
    journal.note("done", "1", rid="r1", file="f", bytes=1, sha256="00")
    await journal.close()
    events = _events(journal.path)
    assert events[:2] == [("submitting", "1"), ("submitted", "1")]
    assert sorted(events[2:12]) == sorted(("submitting", str(n)) for n in range(2, 12))
    assert events[12:] == [("done", "1")]
    # Ten concurrent records share a trip or two; every trip that carried lines is counted.
    assert 2 <= journal.fsyncs <= group.trips - before <= 6
    assert journal.out._flusher is None


async def test_a_noted_line_gets_a_trip_without_anyone_waiting(tmp_path: Path) -> None:
    """note() alone starts a trip: the line is on disk before close()."""
    journal, group = _open(tmp_path)
    journal.note("submitted", "7", rid="r7")
    await group.drain()
    assert _events(journal.path) == [("submitted", "7")]
    await journal.close()


async def test_a_failed_syncfs_loses_unawaited_lines_and_fails_all_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write-back error in a trip that carried noted lines: every later line and close fail."""
    journal, group = _open(tmp_path)

    def failing_sync(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(group_commit, "sync_filesystem", failing_sync)
    journal.note("submitted", "1", rid="r1")  # nobody waits for this line
    await group.drain()
    monkeypatch.undo()
    with pytest.raises(OSError, match=r"cannot write the journal.*Input/output error"):
        await journal.record("submitting", "2")
    with pytest.raises(ExportError, match="cannot write the journal"):
        await journal.close()


async def test_a_failed_write_fails_the_waiting_record(tmp_path: Path) -> None:
    """A journal on a full disk: the trip's hook fails, and so does the record waiting on it."""
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    journal = Journal(
        tmp_path / "journal.jsonl",
        os.open("/dev/full", os.O_WRONLY),
        {"kind": "profile"},
        TargetTable("profile"),
    )
    group = shared_sync(str(tmp_path))
    assert group is not None
    journal.share_trips(group)
    with pytest.raises(OSError, match=r"cannot write the journal.*No space left"):
        await journal.record("submitting", "1")
    with pytest.raises(OSError, match="cannot write the journal"):
        journal.note("submitted", "1", rid="r1")
    with pytest.raises(ExportError, match="No space left"):
        await journal.close()
    await group.durable()  # the hook is gone: the trips go on for the store's files


async def test_close_waits_for_a_trip_under_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lines appended by a trip whose syncfs is still running are durable when close() returns."""
    journal, _ = _open(tmp_path)
    gate, entered = threading.Event(), threading.Event()
    real_sync = durable.sync_filesystem

    def slow_sync(fd: int) -> None:
        entered.set()
        gate.wait(30)
        real_sync(fd)

    monkeypatch.setattr(group_commit, "sync_filesystem", slow_sync)
    journal.note("submitted", "1", rid="r1")
    assert await asyncio.to_thread(entered.wait, 10), "no trip started"
    assert _in_trip(journal)  # the line is written, not yet synced
    closing = asyncio.ensure_future(journal.close())
    for _ in range(50):  # loop passes enough for close() to return if it did not wait
        await asyncio.sleep(0)
    assert not closing.done()
    gate.set()
    await asyncio.wait_for(closing, 10)
    assert journal.fsyncs == 1 and not _in_trip(journal)
    assert _events(journal.path) == [("submitted", "1")]


async def test_sharing_after_lines_were_queued_is_refused(tmp_path: Path) -> None:
    """Lines written by the journal's own thread and by trip hooks must never interleave."""
    journal = Journal.open(tmp_path, "profile")
    journal.note("submitted", "1", rid="r1")
    group = shared_sync(str(tmp_path))
    assert group is not None
    with pytest.raises(RuntimeError, match="after lines were queued"):
        journal.share_trips(group)
    await journal.close()
    assert _events(journal.path) == [("submitted", "1")]
