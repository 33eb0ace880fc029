"""Group commit for a whole file system: one ``syncfs`` makes everything written so far durable.

Small exports and journal lines are written on the event loop into the page
cache, which is cheap; making them durable is what costs. An ``fsync`` per
file cost three to four synchronous block writes on this project's disks
(the file's data, its inode's block, the directory and bitmap blocks it
touched, ``perf``: ``fsync_buffers_list``, ``__sync_dirty_buffer``), each a
trip through the disk's queue, plus a worker-thread hop that has to win the
GIL back from the busy loop after every system call. ``FileSystemSync``
instead runs one ``syncfs`` per trip for every writer of the run at once: the
inode-table and directory blocks that many files share are written once,
with one cache flush, and the worker thread makes one system call.

A writer that needs its writes durable awaits ``durable()``: it returns once a
``syncfs`` that *started after the call* has finished (a trip already under
way may have missed the caller's last write). Writers that buffer (the
journal) register a hook with ``before_sync``; it runs on the loop right
before each ``syncfs``, so their lines ride in the same trip, and its
``after`` callback hears how that ``syncfs`` ended (a writer whose lines
nobody waited for, ``soon()``, learns of a failure that way).

The price: ``syncfs`` also waits for whatever other programs wrote to the
same file system and have not flushed yet. Trips grow while it is slow, so
throughput holds; one caller's latency does not.

Only where ``syncfs`` reports write-back errors (Linux 5.8 and later,
``durable.sync_filesystem``); elsewhere ``shared_sync`` answers None and
callers fsync file by file (``commit_one``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import weakref
from collections.abc import Callable
from typing import TypeAlias

from ..durable import sync_filesystem, syncfs_available

__all__ = ["GATHER", "FileSystemSync", "commit_one", "discard", "shared_sync"]

#: seconds each trip waits for more writers. Each syncfs cost ~0.5 ms of
#: system time here beyond the data it writes (file_floor.py --batch 4 vs 64),
#: so fewer, fuller trips save CPU; but a submit waits for one holding its
#: connection slot. Overhead scenario, 10,000 exports: 2 ms 2,600 trips,
#: 5 ms 1,600, 10 ms 1,100 (4 % less CPU than 5 ms, wall +3 %).
GATHER = 0.01

#: told after each trip: None once its syncfs succeeded, else why it failed
AfterSync: TypeAlias = Callable[[OSError | None], None]


def discard(fd: int, temporary: str) -> None:
    """Close and remove a temporary that will never be complete."""
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(temporary)


def commit_one(fd: int, temporary: str, final: str) -> None:
    """Without ``syncfs``: fsync and close a written temporary, then rename it.

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


class FileSystemSync:
    """One ``syncfs`` per trip in a worker thread, shared by every writer on one file system."""

    def __init__(self, anchor: int) -> None:
        #: an open descriptor on the file system (``syncfs`` needs one)
        self._anchor = anchor
        self._hooks: list[tuple[Callable[[], None], AfterSync | None]] = []
        #: one future per caller since the current trip started: the next trip ends them.
        #: Each caller's own, so a cancelled one drops out by itself (no ``shield``
        #: per call: that was two more callbacks and a future for every wait).
        self._waiting: list[asyncio.Future[None]] = []
        #: whether a trip is wanted, waited for or not (``soon``)
        self._wanted = False
        self._runner: asyncio.Task[None] | None = None
        #: seconds a trip waits for more writers before it starts
        self.gather = GATHER
        self.trips = 0

    def before_sync(self, hook: Callable[[], None], after: AfterSync | None = None) -> None:
        """Run ``hook`` on the loop before every ``syncfs`` (a writer flushing its buffer).

        ``after``, if given, is called on the loop once that trip has ended:
        with None when its ``syncfs`` succeeded, with the exception otherwise.
        An exception from a hook fails that trip for every caller waiting on it.
        """
        self._hooks.append((hook, after))

    def remove_hook(self, hook: Callable[[], None]) -> None:
        """Stop running ``hook`` and its ``after`` (their writer has closed)."""
        self._hooks = [entry for entry in self._hooks if entry[0] is not hook]

    def soon(self) -> None:
        """Make sure a trip starts soon, without waiting for it (a hook's buffer has lines)."""
        self._wanted = True
        if self._runner is None or self._runner.done():
            self._runner = asyncio.get_running_loop().create_task(self._trips())

    async def durable(self) -> None:
        """Return once everything written to the file system before this call is on disk.

        Raises the OSError of the ``syncfs`` (or hook) that failed. A caller
        cancelled while waiting leaves the trip to run for the others.
        """
        waiter = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        self.soon()
        await waiter  # cancelled, it is skipped when its trip ends

    async def _trips(self) -> None:
        while self._wanted:
            # Let writers gather first: a trip costs a syncfs however little it carries.
            await asyncio.sleep(self.gather)
            waiting, self._waiting = self._waiting, []
            self._wanted = False
            hooks = list(self._hooks)
            try:
                for hook, _ in hooks:
                    hook()
                await asyncio.to_thread(sync_filesystem, self._anchor)
            except BaseException as exc:
                failure = exc if isinstance(exc, OSError) else OSError(f"sync failed: {exc!r}")
                self._tell(hooks, failure)
                for waiter in waiting:
                    if not waiter.done():
                        waiter.set_exception(failure)
                if not isinstance(exc, Exception):
                    raise
                continue
            self.trips += 1
            self._tell(hooks, None)
            for waiter in waiting:
                if not waiter.done():
                    waiter.set_result(None)

    @staticmethod
    def _tell(
        hooks: list[tuple[Callable[[], None], AfterSync | None]], outcome: OSError | None
    ) -> None:
        for _, after in hooks:
            if after is not None:
                after(outcome)

    async def drain(self) -> None:
        """Wait until no trip is queued or under way."""
        while self._runner is not None and not self._runner.done():
            await asyncio.wait({self._runner})


#: one FileSystemSync per file system (device number) per event loop
_SHARED: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, FileSystemSync]] = (
    weakref.WeakKeyDictionary()
)


def shared_sync(directory: str) -> FileSystemSync | None:
    """The running loop's ``FileSystemSync`` for ``directory``'s file system; None without ``syncfs``.

    Shared so the journal and the store of one run, on the same disk, make
    their writes durable in the same trips. The descriptor it keeps is closed
    with the loop.
    """
    if not syncfs_available():
        return None
    loop = asyncio.get_running_loop()
    per_device = _SHARED.get(loop)
    if per_device is None:
        per_device = _SHARED[loop] = {}
    device = os.stat(directory).st_dev
    found = per_device.get(device)
    if found is None:
        anchor = os.open(directory, os.O_RDONLY)
        found = per_device[device] = FileSystemSync(anchor)
        weakref.finalize(loop, os.close, anchor)
    return found
