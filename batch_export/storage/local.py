"""The local destination: exports as owner-only files under ``DIR/exports/``.

Every export is streamed into ``DIR/.partial/`` under a unique temporary name,
hashed (sha256 of the stored bytes) and checked (valid JSON, the right
``info``, not a placeholder) while it streams, fsync'd, and only then renamed
to its final name; directories are fsync'd at the end of the run (``sync``).
A file under its final name is therefore always complete and verified, and a
crash leaves at most temporaries in ``.partial/``, which the next run clears
(``recover``).

Large bodies are written through aiofiles in buffers of ``WRITE_BUFFER``
bytes: each aiofiles call is a hop to a worker thread, so writing every 4 KB
network chunk separately would cost more than the write itself. A body that
arrived whole (at most the client's 64 KB peek, most exports) is checked,
compressed if ``--gzip``, written into the page cache and hashed on the event
loop, where that costs less than a thread hop; only making it durable goes
to a worker: one ``syncfs`` shared by every writer (``group_commit``), or
without one an fsync and rename batched with every file that finished
meanwhile (``batching.ThreadBatcher``). The price: on a very slow or
networked file system, creating that small temporary briefly blocks the loop.

Personal data: files are created 0600 and directories 0700 whatever the umask.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gzip
import hashlib
import itertools
import os
import zlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from functools import partial
from pathlib import Path
from typing import Any

import aiofiles

from ..durable import fsync_dirs, make_private_dir, open_private, write_all
from ..errors import ConfigError
from ..input.ids import Target
from .batching import ThreadBatcher, run_jobs
from .group_commit import FileSystemSync, commit_one, discard, shared_sync
from .naming import export_relname, lies_inside
from .sink import SavedExport, Sink, UnsafeName
from .validate import check_whole
from .writer import CheckedWriter

__all__ = ["LocalSink", "LocalWriter", "SavedExport", "prepare_out_dir"]

WRITE_BUFFER = 1024 * 1024
READ_BLOCK = 1024 * 1024
PARTIAL_DIR = ".partial"


def _suffix(gzip: bool) -> str:
    return ".json.gz" if gzip else ".json"


def _clear_partial(out_dir: Path) -> None:
    """Create ``.partial/`` and remove the temporaries of a run that was killed.

    Only under the run's lock: another run's temporaries are its work in progress.
    """
    try:
        make_private_dir(out_dir / PARTIAL_DIR)
    except OSError as exc:
        raise ConfigError(f"cannot create {out_dir / PARTIAL_DIR}: {exc.strerror}") from None
    for leftover in (out_dir / PARTIAL_DIR).iterdir():
        with contextlib.suppress(OSError):
            leftover.unlink()


def prepare_out_dir(out_dir: Path) -> Path:
    """The directory created owner-only and ``LocalSink.recover`` done, for a caller that needs no lock."""
    make_private_dir(out_dir)
    _clear_partial(out_dir)
    return out_dir


def _list_directory(path: str) -> list[tuple[str, bool]]:
    """``(name, is a directory)`` of each entry of ``path``; empty when it does not exist."""
    try:
        with os.scandir(path) as entries:
            return [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in entries]
    except (FileNotFoundError, NotADirectoryError):
        return []


def _private_opener(path: str, flags: int) -> int:
    return open_private(path, flags | os.O_EXCL)


class LocalSink:
    """Streams exports into verified, owner-only files under the output directory."""

    #: local files are cheap to read: ``verify`` always re-hashes every byte
    verify_reads = True
    #: the size on disk is the resume check; nothing else is recorded
    resume_checks_store = False

    def __init__(self, out_dir: Path, *, gzip: bool = False) -> None:
        self.out_dir = out_dir
        self.gzip = gzip
        self.suffix = _suffix(gzip)
        self.description = f"exports/ under {out_dir}"
        self._counter = itertools.count()
        self._pid = os.getpid()
        # Paths as strings: they are built for every export, and pathlib costs more.
        self._root = os.fspath(out_dir)
        self._partial = os.path.join(self._root, PARTIAL_DIR)
        self._made_dirs: set[str] = set()
        self._dirty_dirs: set[str] = set()
        #: the run's shared ``syncfs`` trips (looked up by the first export), or None
        self._group: FileSystemSync | None = None
        #: the loop ``_group`` was looked up on (each loop has trips of its own)
        self._group_loop: asyncio.AbstractEventLoop | None = None
        #: distinct syncfs trips small exports waited for, and the latest one
        self._synced_trips = 0
        self._last_trip = -1
        #: small exports renamed that no trip begun since has made durable (``sync``)
        self._names_waiting = False
        #: without ``syncfs``: fsync, close and rename per file, many files per trip
        self._batcher: ThreadBatcher[Callable[[], Any]] = ThreadBatcher(run_jobs)

    def locate(self, target: Target) -> str:
        """Where ``target``'s export lives, relative to the output directory."""
        return export_relname(target, suffix=self.suffix)

    async def recover(self) -> None:
        """Create ``.partial/`` and clear what a killed run left there (under the lock)."""
        _clear_partial(self.out_dir)

    def begin(self, target: Target) -> LocalWriter:
        """Start streaming ``target``'s export into a temporary under ``.partial/``."""
        return LocalWriter(self, target)

    async def is_intact(self, file: str, size: int, store: dict[str, Any] | None = None) -> bool:
        """Cheap resume check: the recorded file is there with the recorded size.

        A full re-hash of every file is ``batch-export verify``'s job.
        """
        if not lies_inside(file):
            return False
        try:
            return os.stat(f"{self._root}/{file}").st_size == size
        except OSError:
            return False

    async def inspect(self, file: str, size: int, store: dict[str, Any] | None) -> str | None:
        """The size check ``verify`` starts with (it then reads every byte: ``verify_reads``)."""
        if not lies_inside(file):
            return "the manifest's file path points outside the directory"
        try:
            found = os.stat(f"{self._root}/{file}").st_size
        except FileNotFoundError:
            return "file is missing"
        return None if found == size else f"size is {found} bytes, the manifest says {size}"

    async def publish(self, name: str, path: Path) -> None:
        """Nothing to do: the evidence files are in the directory already."""

    async def published(self, prefix: str) -> dict[str, str] | None:
        return None  # no copy elsewhere

    async def stored_exports(self) -> AsyncGenerator[str, None]:
        """Every file under ``exports/``, walked in a thread a directory at a time."""
        pending = ["exports"]
        while pending:
            relative = pending.pop()
            entries = await asyncio.to_thread(_list_directory, f"{self._root}/{relative}")
            for name, is_dir in entries:
                if is_dir:
                    pending.append(f"{relative}/{name}")
                else:
                    yield f"{relative}/{name}"

    async def read(self, file: str) -> AsyncGenerator[bytes, None]:
        """The stored bytes of ``file`` in blocks of ``READ_BLOCK`` (for ``verify``)."""
        path = (self.out_dir / file).resolve()
        if self.out_dir.resolve() not in path.parents:
            raise UnsafeName(f"{file!r} points outside {self.out_dir}")
        if not path.is_file():
            raise FileNotFoundError(errno.ENOENT, "no export is stored under this name", file)
        async with aiofiles.open(path, "rb") as handle:
            while block := await handle.read(READ_BLOCK):
                yield block

    async def save(self, target: Target, head: bytes, rest: AsyncIterator[bytes]) -> SavedExport:
        """Stream one export to disk; raises IntegrityError (nothing kept) if it is not valid."""
        iterator = rest.__aiter__()
        try:
            first = await iterator.__anext__()
        except StopAsyncIteration:
            return await self._save_whole(target, head)
        writer = self.begin(target)
        try:
            await writer.write(head)
            await writer.write(first)
            async for chunk in iterator:
                await writer.write(chunk)
            return await writer.commit()
        except BaseException:
            await writer.discard()
            raise

    async def _save_whole(self, target: Target, body: bytes) -> SavedExport:
        """A body that arrived whole (most exports): checked, written, then made durable.

        The check, the write into the page cache, the hash and the rename
        happen here on the event loop: for a body of at most ``PEEK_BYTES``
        they cost less than a hop to a worker thread would. Only what blocks
        for long goes to a worker, shared with every other writer: the
        ``syncfs`` that makes the contents durable before the rename
        (``group_commit``); the rename rides the next one, with the done line.
        Without ``syncfs``, the fsync, close and rename go to a worker instead,
        batched with every other file that finished meanwhile.
        """
        check_whole(target.kind.value, target.id, body)
        relative = self.locate(target)
        final = f"{self._root}/{relative}"
        directory = final.rpartition("/")[0]
        data = gzip.compress(body, compresslevel=6, mtime=0) if self.gzip else body
        self._make_dir(directory)
        temporary = self._temporary()
        fd = _private_opener(temporary, os.O_WRONLY | os.O_CREAT)
        try:
            write_all(fd, data)
        except BaseException:
            discard(fd, temporary)
            raise
        group = self._group_sync()
        if group is None:
            self._dirty_dirs.add(directory)
            await self._batcher.run(
                partial(commit_one, fd, temporary, final), abandon=partial(discard, fd, temporary)
            )
        else:
            # Cancelled in between, the temporary stays in .partial/ for the next run to clear.
            os.close(fd)
            await group.durable()  # the contents: never incomplete under the final name
            self._count_trip(group.trips)
            # The name is not waited for: it rides the trip of the done line
            # queued after it. A crash that kept the line and lost the rename
            # leaves a done target without its file, which the next run's
            # resume check exports again (the rule of ``commit_one`` too).
            os.replace(temporary, final)
            self._names_waiting = True
        return SavedExport(
            file=relative, bytes=len(data), sha256=hashlib.sha256(data).hexdigest(), gzip=self.gzip
        )

    def _count_trip(self, trip: int) -> None:
        # Trips are shared (the journal's lines may ride in them too): count
        # each one that small exports of this store waited for once.
        if trip != self._last_trip:
            self._last_trip = trip
            self._synced_trips += 1

    def _group_sync(self) -> FileSystemSync | None:
        loop = asyncio.get_running_loop()
        if self._group_loop is not loop:
            self._group = shared_sync(self._partial)
            self._group_loop = loop
        return self._group

    def _temporary(self) -> str:
        return f"{self._partial}/{next(self._counter)}-{self._pid}{self.suffix}"

    def _place(self, temporary: str, relative: str) -> None:
        """Rename a complete, fsync'd temporary to its final name (see ``group_commit.commit_one``)."""
        final = f"{self._root}/{relative}"
        directory = final.rpartition("/")[0]
        self._make_dir(directory)
        os.replace(temporary, final)
        self._dirty_dirs.add(directory)

    def _make_dir(self, directory: str) -> None:
        if directory in self._made_dirs:
            return
        # Most exports of a new run land in a bucket directory not made yet
        # (4,096 of them): one mkdir and a chmod, not pathlib's walk up.
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            pass
        except FileNotFoundError:  # its parents are missing too
            make_private_dir(Path(directory))
        else:
            os.chmod(directory, 0o700)  # mkdir's mode is filtered by the umask
        self._made_dirs.add(directory)

    @property
    def commit_trips(self) -> int:
        """Worker-thread trips that made small exports durable (shared ``syncfs`` trips once each)."""
        return self._batcher.trips + self._synced_trips

    def stats(self) -> dict[str, int]:
        """What this destination did, for the run summary."""
        return {"file_commit_trips": self.commit_trips}

    async def sync(self) -> None:
        """Make every rename so far durable: a shared trip, or an fsync per directory."""
        await self._batcher.drain()
        group = self._group_sync() if self._names_waiting else None
        if group is not None:  # small exports renamed since the last trip began
            self._names_waiting = False
            await group.durable()
        dirty, self._dirty_dirs = self._dirty_dirs, set()
        if dirty:
            # Directories of streamed exports (without syncfs, of all): a handful
            # of fsyncs cost less than a syncfs of other programs' data too.
            await asyncio.to_thread(fsync_dirs, sorted(dirty))

    async def close(self) -> None:
        """Let queued fsyncs, renames and shared syncfs trips finish; the sink holds nothing else.

        A trip may still be queued when the run ends (a save cancelled while
        it waited leaves its trip to run): it must not outlive the run.
        """
        await self._batcher.drain()
        if self._group is not None and self._group_loop is asyncio.get_running_loop():
            await self._group.drain()


class LocalWriter(CheckedWriter):
    """One large export streaming into ``.partial/``: parsed, hashed, written in big blocks."""

    def __init__(self, sink: LocalSink, target: Target) -> None:
        super().__init__(target)
        self._sink = sink
        self._relative = sink.locate(target)
        self._temporary = sink._temporary()
        self._digest = hashlib.sha256()
        self._compressor = zlib.compressobj(6, zlib.DEFLATED, 31) if sink.gzip else None
        self._stored = 0
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._handle: Any = None  # the aiofiles file, opened by the first write to disk

    async def _accept(self, chunk: bytes) -> None:
        """Buffer ``chunk``; every ``WRITE_BUFFER`` bytes go to disk at once."""
        self._pending.append(chunk)
        self._pending_size += len(chunk)
        if self._pending_size >= WRITE_BUFFER:
            await self._flush()

    async def _finish(self) -> SavedExport:
        """Write the rest, fsync, and rename to the final name."""
        await self._flush()
        if self._compressor is not None:
            await self._put(self._compressor.flush())
        handle = await self._open()
        await handle.flush()
        await asyncio.to_thread(os.fsync, handle.fileno())
        self._handle = None
        await handle.close()
        self._sink._place(self._temporary, self._relative)
        return SavedExport(
            file=self._relative,
            bytes=self._stored,
            sha256=self._digest.hexdigest(),
            gzip=self._sink.gzip,
        )

    async def _drop(self) -> None:
        """Close and remove the temporary; nothing was renamed."""
        self._pending = []
        handle, self._handle = self._handle, None
        try:
            if handle is not None:
                await handle.close()
        finally:
            with contextlib.suppress(OSError):
                os.unlink(self._temporary)

    async def _flush(self) -> None:
        block = b"".join(self._pending)
        self._pending, self._pending_size = [], 0
        if self._compressor is not None:
            block = await asyncio.to_thread(self._compressor.compress, block)
        await self._put(block)

    async def _put(self, block: bytes) -> None:
        if block:
            handle = await self._open()
            self._digest.update(block)
            self._stored += len(block)
            await handle.write(block)

    async def _open(self) -> Any:
        if self._handle is None:
            self._handle = await aiofiles.open(self._temporary, "wb", opener=_private_opener)
        return self._handle


_: type[Sink] = LocalSink  # mypy checks that LocalSink implements the Sink protocol
