"""The journal's writer: lines made durable in order, many per fsync, failures never hidden.

``Journal`` decides what the lines say; this appends them. Two ways:

- **Its own group commit.** One flusher task waits ``COMMIT_DELAY`` for
  lines to gather, then hands everything queued to a worker thread that
  chains (``chain.py``), writes and fsyncs it: a thousand concurrent targets
  cost one fsync, not a thousand.
- **The local store's shared trips** (``share_trips``, where ``syncfs``
  reports errors): a hook of ``storage.group_commit.FileSystemSync`` appends
  every queued line on the loop right before each trip's ``syncfs``, which
  makes them durable together with the small exports of that trip: one
  worker-thread trip where there were two (a journal fsync and a file syncfs).

Either way, after a failed write (or a failed ``syncfs`` that carried lines)
every later line and ``close`` fail: nothing more may be claimed durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

from ..durable import write_all
from ..errors import ExportError
from ..storage.group_commit import FileSystemSync
from .chain import chain_lines

__all__ = ["COMMIT_DELAY", "JournalWriter"]

#: seconds the flusher waits to gather lines into one write + fsync
COMMIT_DELAY = 0.003


class JournalWriter:
    """Appends hash-chained lines to the journal's file, durably and in order."""

    def __init__(self, path: Path, fd: int, *, head: str | None, lines: int) -> None:
        self.path = path
        self._fd = fd
        self._buffer: list[str] = []
        self._waiter: asyncio.Future[None] | None = None
        self._flusher: asyncio.Task[None] | None = None
        #: why the journal cannot be written any more, once a write has failed
        self._failure: str | None = None
        self._writing: asyncio.Future[None] | None = None
        #: the shared syncfs trips the lines ride in (``share_trips``), or None: fsync of its own
        self._group: FileSystemSync | None = None
        #: lines appended by the hook of a trip whose syncfs has not ended yet
        self._in_trip = False
        #: fsyncs of the journal, or shared trips that carried its lines
        self.fsyncs = 0
        self.commit_delay = COMMIT_DELAY
        #: the hash of the last line on disk, which the next line names (``chain.py``)
        self.head = head
        #: complete lines on disk, the header included
        self.lines = lines

    def share_trips(self, group: FileSystemSync) -> None:
        """From now on, make lines durable in ``group``'s shared ``syncfs`` trips.

        Called before the first line is queued (the run calls it right after
        ``open`` when the destination is a local directory): lines written by
        the flusher's thread and by the trip's hook must never interleave.
        """
        if self._buffer or self._flusher is not None:
            raise RuntimeError("share_trips() after lines were queued")
        self._group = group
        group.before_sync(self._write_for_trip, self._trip_ended)

    def _write_for_trip(self) -> None:
        """The trip's hook, on the loop just before its ``syncfs``: append every queued line."""
        if not self._buffer:
            return
        self.check_healthy()  # a failed journal fails the trip of whoever waits on its lines
        lines, self._buffer = self._buffer, []
        try:
            data, head = chain_lines(lines, self.head)
            write_all(self._fd, data)
        except OSError as exc:
            self._failure = self._write_failed(exc)
            raise OSError(self._failure) from None
        self.head = head
        self.lines += len(lines)
        self._in_trip = True

    def _trip_ended(self, failure: OSError | None) -> None:
        """How the ``syncfs`` after ``_write_for_trip`` ended: a failure loses the lines."""
        if not self._in_trip:
            return
        self._in_trip = False
        if failure is None:
            self.fsyncs += 1
        elif self._failure is None:
            # Lines queued with ``note`` have no caller to hear of it, and a
            # later syncfs need not report the same write-back error again.
            self._failure = self._write_failed(failure)

    def check_healthy(self) -> None:
        """Raise OSError if a write has failed: nothing more may be claimed durable."""
        # After a failed write nothing more may be claimed durable: every later
        # line (awaited or not) fails, and so does ``close``.
        if self._failure is not None:
            # A fresh exception per caller: a shared one would collect every
            # failing task's frames in its traceback.
            raise OSError(self._failure)

    async def write(self, line: str) -> None:
        """Append ``line`` (JSON and its newline) and return once it is durable."""
        self._buffer.append(line)
        if self._group is not None:
            try:
                # The next trip's hook appends the line before its syncfs.
                await self._group.durable()
            except OSError as exc:
                if self._failure is None:
                    self._failure = self._write_failed(exc)
                raise OSError(self._failure) from None
            return
        loop = asyncio.get_running_loop()
        if self._waiter is None:
            self._waiter = loop.create_future()
        waiter = self._waiter
        self._ensure_flusher(loop)
        try:
            await asyncio.shield(waiter)
        except OSError as exc:
            raise OSError(str(exc)) from None  # every caller its own (see check_healthy)

    def queue(self, line: str) -> None:
        """Append ``line`` with the next commit, without waiting for it (``Journal.note``)."""
        self._buffer.append(line)
        self._ensure_flusher(asyncio.get_running_loop())

    def _ensure_flusher(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._group is not None:
            self._group.soon()
        elif self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush_loop())

    async def _flush_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while self._buffer and self._failure is None:
            # Let concurrent targets add their lines first: one fsync then covers
            # them all, for a couple of milliseconds of latency per step.
            await asyncio.sleep(self.commit_delay)
            data = self._buffer
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

    def _write_durably(self, lines: list[str]) -> None:
        # Chained here, in write order (one write at a time), off the event loop.
        data, head = chain_lines(lines, self.head)
        write_all(self._fd, data)
        os.fsync(self._fd)
        self.head = head
        self.lines += len(lines)
        self.fsyncs += 1

    async def _await_flusher(self) -> None:
        """Let the flusher, and a write its cancellation left in its thread, end."""
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

    async def _close_shared(self) -> None:
        """Leave the shared trips once the lines queued and in flight are durable.

        What a trip could not take (a cancelled wait) is left in the buffer
        for ``close`` to write and fsync itself, as after a cancelled flusher.
        """
        group, self._group = self._group, None
        assert group is not None
        try:
            if (self._buffer or self._in_trip) and self._failure is None:
                with contextlib.suppress(asyncio.CancelledError):
                    await group.durable()
        except OSError as exc:
            if self._failure is None:
                self._failure = self._write_failed(exc)
        finally:
            group.remove_hook(self._write_for_trip)
        if self._in_trip and self._failure is None:
            # Cancelled while its trip's syncfs was under way: fsync here.
            try:
                os.fsync(self._fd)
            except OSError as exc:
                self._failure = self._write_failed(exc)
            self._in_trip = False

    async def close(self) -> None:
        """Wait for queued lines to reach the disk, then close the file.

        Raises ExportError if any line could not be written: lines recorded
        without waiting (``note``) have nobody else to tell.
        """
        if self._group is not None:
            await self._close_shared()
        await self._await_flusher()
        if self._buffer and self._failure is None:  # left behind by a cancelled flusher
            try:
                self._write_durably(self._buffer)
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
