"""Small file primitives that survive a crash: full writes, fsync'd appends and renames.

Personal data and the run's state pass through these, so every file they
create is owner-only (0600) whatever the umask.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = [
    "append_line",
    "fsync_dir",
    "fsync_dirs",
    "make_private_dir",
    "open_private",
    "sync_filesystem",
    "syncfs_available",
    "write_all",
    "write_atomically",
]


@functools.cache
def _find_syncfs() -> Callable[[int], int] | None:
    """libc's ``syncfs(2)``, where it reports write-back errors (Linux 5.8 and later).

    Before 5.8 ``syncfs`` returned 0 even when a write failed, so a lost
    file would be taken for a durable one: there, and where there is no
    ``syncfs`` at all, callers fsync file by file instead.
    """
    if not sys.platform.startswith("linux"):
        return None
    import ctypes  # here, not at import: only runs that store files locally need it

    try:
        major, minor = (int(part) for part in os.uname().release.split(".")[:2])
        function: Callable[[int], int] = ctypes.CDLL(None, use_errno=True).syncfs
    except (ValueError, OSError, AttributeError):
        return None
    return function if (major, minor) >= (5, 8) else None


def syncfs_available() -> bool:
    """Whether ``sync_filesystem`` works here (else callers fsync file by file)."""
    return _find_syncfs() is not None


def sync_filesystem(fd: int) -> bool:
    """Make everything written to the file system holding ``fd`` durable: False if unsupported.

    One ``syncfs`` writes the data and inodes of every file written so far
    and every directory entry (creations, renames), sharing the inode-table
    and directory blocks and the single cache flush among all of them: for
    many small files far less I/O and CPU than an ``fsync`` each. It also
    waits for other programs' unwritten data on the same file system.
    """
    syncfs = _find_syncfs()
    if syncfs is None:
        return False
    if syncfs(fd) != 0:
        import ctypes

        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return True


def open_private(path: str | Path, flags: int) -> int:
    """``os.open`` with mode 0600, enforced even under a permissive umask."""
    fd = os.open(path, flags, 0o600)
    os.fchmod(fd, 0o600)
    return fd


def write_all(fd: int, data: bytes) -> None:
    """Write every byte of ``data`` (``os.write`` may write fewer)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def fsync_dir(directory: str | Path) -> None:
    """Make the names in ``directory`` (creations, renames) durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dirs(directories: Iterable[str | Path]) -> None:
    for directory in directories:
        fsync_dir(directory)


def append_line(path: Path, line: str) -> None:
    """Append one line durably to an owner-only file."""
    fd = open_private(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        write_all(fd, (line + "\n").encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, chunks: Iterable[str]) -> None:
    """Replace ``path`` via a temporary file, fsync and rename: never half-written."""
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = open_private(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", buffering=1024 * 1024) as handle:
            for chunk in chunks:
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def make_private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) as owner-only directories."""
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=0o700)
        os.chmod(directory, 0o700)  # mkdir's mode is filtered by the umask
