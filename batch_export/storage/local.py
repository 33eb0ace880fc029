"""Where export files go and how they get there intact.

Every export is streamed into ``DIR/.partial/`` under a unique temporary name,
hashed (sha256 of the stored bytes) and checked (valid JSON, the right
``info``, not a placeholder) while it streams, fsync'd, and only then renamed
to its final name; directories are fsync'd at the end of the run (``sync``).
A file under its final name is therefore always complete and verified, and a
crash leaves at most temporaries in ``.partial/``, which the next run clears.

Large bodies are written through aiofiles in buffers of ``WRITE_BUFFER``
bytes: each aiofiles call is a hop to a worker thread, so writing every 4 KB
network chunk separately would cost more than the write itself. A body that
arrived whole (at most the client's 64 KB peek, most exports) is checked,
compressed if ``--gzip``, written into the page cache and hashed on the event
loop, where that costs less than a thread hop; only its fsync, close and
rename go to a worker, batched with every other file that finished meanwhile
(``batching.ThreadBatcher``). The price: on a very slow or networked file
system, creating that small temporary briefly blocks the loop.

Personal data: files are created 0600 and directories 0700 whatever the umask.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import itertools
import os
import zlib
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import aiofiles

from ..durable import fsync_dirs, open_private, write_all
from ..errors import ConfigError
from ..evidence.statedir import make_out_dir, make_private_dir
from ..input.ids import Target, TargetKind
from .batching import ThreadBatcher
from .naming import export_relname
from .sink import SavedExport
from .validate import ExportChecker, check_whole

__all__ = [
    "ExportStore",
    "SavedExport",
    "clear_partial",
    "prepare_out_dir",
    "saved_file",
]

WRITE_BUFFER = 1024 * 1024
PARTIAL_DIR = ".partial"


def saved_file(kind: str, target_id: str, *, gzip: bool) -> str:
    """Where a target's export is stored, relative to the output directory."""
    suffix = ".json.gz" if gzip else ".json"
    return export_relname(Target(TargetKind(kind), target_id), suffix=suffix)


def clear_partial(out_dir: Path) -> None:
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
    """``make_out_dir`` and ``clear_partial`` at once, for a caller that needs no lock."""
    clear_partial(make_out_dir(out_dir))
    return out_dir


def _private_opener(path: str, flags: int) -> int:
    return open_private(path, flags | os.O_EXCL)


def _commit(fd: int, temporary: str, final: str) -> None:
    """fsync and close a written temporary, then rename it to its final name.

    The directory is not fsync'd here but once per directory in
    ``ExportStore.sync()`` at the end of the run: a rename lost to a power cut
    leaves the file missing, which the next run notices and exports again,
    whereas the file's *contents* were fsync'd before the rename and can never
    be half-written under the final name. An OSError (disk full, permissions)
    ends the run; the temporary is cleared by the next run.
    """
    try:
        os.fsync(fd)
    except BaseException:
        _discard(fd, temporary)
        raise
    os.close(fd)
    os.replace(temporary, final)


def _discard(fd: int, temporary: str) -> None:
    """Close and remove a temporary that will never be complete."""
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(temporary)


class ExportStore:
    """Streams exports into verified, owner-only files under the output directory."""

    def __init__(self, out_dir: Path, *, gzip: bool = False) -> None:
        self.out_dir = out_dir
        self.gzip = gzip
        self.suffix = ".json.gz" if gzip else ".json"
        self._counter = itertools.count()
        self._pid = os.getpid()
        # Paths as strings: they are built for every export, and pathlib costs more.
        self._root = os.fspath(out_dir)
        self._partial = os.path.join(self._root, PARTIAL_DIR)
        self._made_dirs: set[str] = set()
        self._dirty_dirs: set[str] = set()
        self._batcher = ThreadBatcher()

    def relpath(self, target: Target) -> str:
        """Where ``target``'s export lives, relative to the output directory."""
        return export_relname(target, suffix=self.suffix)

    def is_intact(self, file: str, size: int) -> bool:
        """Cheap resume check: the recorded file is there with the recorded size.

        A full re-hash of every file is ``batch-export verify``'s job.
        """
        try:
            return (self.out_dir / file).stat().st_size == size
        except OSError:
            return False

    async def save(self, target: Target, head: bytes, rest: AsyncIterator[bytes]) -> SavedExport:
        """Stream one export to disk; raises IntegrityError (nothing kept) if it is not valid."""
        iterator = rest.__aiter__()
        try:
            first = await iterator.__anext__()
        except StopAsyncIteration:
            return await self._save_whole(target, head)
        return await self._save_streamed(target, head, first, iterator)

    async def _save_whole(self, target: Target, body: bytes) -> SavedExport:
        """A body that arrived whole (most exports): checked, written, then made durable.

        The check, the write into the page cache and the hash happen here on
        the event loop: for a body of at most ``PEEK_BYTES`` they cost less
        than a hop to a worker thread would. Only what blocks for long, the
        fsync, goes to a worker, together with the close and the rename, and
        batched with every other file that finished meanwhile.
        """
        check_whole(target.kind.value, target.id, body)
        relative = self.relpath(target)
        final = f"{self._root}/{relative}"
        directory = final.rpartition("/")[0]
        data = gzip.compress(body, compresslevel=6, mtime=0) if self.gzip else body
        self._make_dir(directory)
        temporary = self._temporary()
        fd = _private_opener(temporary, os.O_WRONLY | os.O_CREAT)
        try:
            write_all(fd, data)
        except BaseException:
            _discard(fd, temporary)
            raise
        await self._batcher.run(
            partial(_commit, fd, temporary, final), abandon=partial(_discard, fd, temporary)
        )
        self._dirty_dirs.add(directory)
        return SavedExport(
            file=relative, bytes=len(data), sha256=hashlib.sha256(data).hexdigest(), gzip=self.gzip
        )

    async def _save_streamed(
        self, target: Target, head: bytes, first: bytes, iterator: AsyncIterator[bytes]
    ) -> SavedExport:
        """A large body: parse, hash and write it as it arrives, in big aiofiles writes."""
        relative = self.relpath(target)
        final = f"{self._root}/{relative}"
        temporary = self._temporary()
        checker = ExportChecker(target.kind.value, target.id)
        digest = hashlib.sha256()
        compressor = zlib.compressobj(6, zlib.DEFLATED, 31) if self.gzip else None
        stored = 0
        pending: list[bytes] = []
        pending_size = 0
        complete = False
        handle = await aiofiles.open(temporary, "wb", opener=_private_opener)
        try:

            async def write(block: bytes) -> None:
                nonlocal stored
                if compressor is not None:
                    block = await asyncio.to_thread(compressor.compress, block)
                if block:
                    digest.update(block)
                    stored += len(block)
                    await handle.write(block)

            chunks = [head, first]
            while True:
                for chunk in chunks:
                    if chunk:
                        checker.feed(chunk)
                        pending.append(chunk)
                        pending_size += len(chunk)
                if pending_size >= WRITE_BUFFER:
                    await write(b"".join(pending))
                    pending, pending_size = [], 0
                try:
                    chunks = [await iterator.__anext__()]
                except StopAsyncIteration:
                    break
            checker.finish()
            await write(b"".join(pending))
            if compressor is not None:
                tail = compressor.flush()
                digest.update(tail)
                stored += len(tail)
                await handle.write(tail)
            await handle.flush()
            await asyncio.to_thread(os.fsync, handle.fileno())
            complete = True
        finally:
            await handle.close()
            if not complete:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
        self._place(temporary, final)
        return SavedExport(file=relative, bytes=stored, sha256=digest.hexdigest(), gzip=self.gzip)

    def _temporary(self) -> str:
        return f"{self._partial}/{next(self._counter)}-{self._pid}{self.suffix}"

    def _place(self, temporary: str, final: str) -> None:
        """Rename a complete, fsync'd temporary to its final name (see ``_commit``)."""
        directory = final.rpartition("/")[0]
        self._make_dir(directory)
        os.replace(temporary, final)
        self._dirty_dirs.add(directory)

    def _make_dir(self, directory: str) -> None:
        if directory not in self._made_dirs:
            make_private_dir(Path(directory))
            self._made_dirs.add(directory)

    @property
    def commit_trips(self) -> int:
        """Worker-thread trips that fsync'd and renamed small exports (for the summary)."""
        return self._batcher.trips

    async def sync(self) -> None:
        """Make every rename so far durable: fsync each directory that received a file."""
        await self._batcher.drain()
        dirty, self._dirty_dirs = self._dirty_dirs, set()
        await asyncio.to_thread(fsync_dirs, sorted(dirty))
