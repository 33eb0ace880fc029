"""Making many small written temporaries durable and renaming them, in one worker trip.

The local store writes a small export into an owner-only temporary on the
event loop (into the page cache: cheap) and hands it here. Each trip of the
``ThreadBatcher`` gets every file queued since the last trip and, where the
system has a ``syncfs`` that reports errors (``durable.sync_filesystem``):

1. one ``syncfs``: the contents and inodes of all of them are on disk;
2. close each and rename it to its final name;
3. one more ``syncfs``: the renames (the directory entries) are on disk.

A file's final name therefore never shows incomplete contents, and when its
caller hears back the file *and* its name survive a power cut. Against an
``fsync`` per file (and a directory ``fsync`` per bucket at the end of the
run) that is two synchronous flushes per trip instead of three to four block
writes per file, each a trip through the virtual disk's queue, which is what
a file's durability cost in kernel CPU (``perf``: ``fsync_buffers_list``,
``__sync_dirty_buffer``, ``__blk_flush_plug``).

The price: ``syncfs`` also waits for whatever other programs wrote to the
same file system and have not yet flushed. Trips grow when it is slow, so
throughput holds; a single file's latency does not.

Elsewhere (no ``syncfs``, Linux before 5.8) each file is fsync'd, closed and
renamed in turn, and the directories are fsync'd by ``LocalSink.sync`` at
the end of the run, as before.
"""

from __future__ import annotations

import contextlib
import os
from typing import NamedTuple

from ..durable import sync_filesystem
from .batching import Outcome

__all__ = ["PendingFile", "commit_files", "commit_one", "discard"]


class PendingFile(NamedTuple):
    """A written, still open temporary and the name it is to have."""

    fd: int
    temporary: str
    final: str


def discard(fd: int, temporary: str) -> None:
    """Close and remove a temporary that will never be complete."""
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(temporary)


def commit_one(fd: int, temporary: str, final: str) -> None:
    """fsync and close a written temporary, then rename it to its final name.

    The directory is not fsync'd here but once per directory in
    ``LocalSink.sync()`` at the end of the run: a rename lost to a power cut
    leaves the file missing, which the next run notices and exports again,
    whereas the file's *contents* were fsync'd before the rename and can never
    be half-written under the final name. An OSError (disk full, permissions)
    ends the run; the temporary is cleared by the next run.
    """
    try:
        os.fsync(fd)
    except BaseException:
        discard(fd, temporary)
        raise
    os.close(fd)
    os.replace(temporary, final)


def commit_files(files: list[PendingFile], anchor: int) -> list[Outcome]:
    """Make ``files`` durable under their final names; one outcome each, in order.

    ``anchor`` is an open descriptor on the file system holding them (the
    store's ``.partial/``). A failed ``syncfs`` fails every file of the trip:
    the disk has refused writes, which ends the run anyway.
    """
    try:
        synced = sync_filesystem(anchor)
    except OSError as exc:
        for file in files:
            discard(file.fd, file.temporary)
        return [(False, exc)] * len(files)
    if not synced:
        return [_commit_alone(file) for file in files]
    outcomes: list[Outcome] = []
    for file in files:
        os.close(file.fd)
        try:
            os.replace(file.temporary, file.final)
            outcomes.append((True, None))
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(file.temporary)
            outcomes.append((False, exc))
    try:
        sync_filesystem(anchor)
    except OSError as exc:
        return [(False, exc)] * len(files)
    return outcomes


def _commit_alone(file: PendingFile) -> Outcome:
    try:
        commit_one(file.fd, file.temporary, file.final)
    except OSError as exc:
        return (False, exc)
    return (True, None)
