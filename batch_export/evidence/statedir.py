"""The state directory (``--out DIR``): where a run keeps its journal, lock and evidence.

Created owner-only, whatever the umask: it holds personal data. Only one run
may use it at a time (``RunLock``, an ``flock`` on ``DIR/.lock``), and nothing
inside it is created, cleared or changed before that lock is held.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from ..durable import make_private_dir
from ..errors import ConfigError

__all__ = ["LOCK_NAME", "RunLock", "make_out_dir"]

LOCK_NAME = ".lock"


def make_out_dir(out_dir: Path) -> Path:
    """Create or check the output directory itself; ConfigError with a fix if unusable.

    Nothing inside it is touched: that waits until the run holds its lock.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {out_dir} is a file, not a directory; choose a directory")
    try:
        make_private_dir(out_dir)
    except OSError as exc:
        raise ConfigError(f"cannot create the output directory {out_dir}: {exc.strerror}") from None
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise ConfigError(f"the output directory {out_dir} is not writable")
    return out_dir


class RunLock:
    """An exclusive lock on the output directory: one run per directory at a time."""

    def __init__(self, out_dir: Path) -> None:
        self._path = out_dir / LOCK_NAME
        self._fd = -1

    def __enter__(self) -> RunLock:
        try:
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:  # a full disk, a read-only mount, a directory not ours
            raise ConfigError(
                f"cannot create the lock file {self._path}: {exc.strerror or exc}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise ConfigError(
                    f"another batch-export run is using {self._path.parent}; "
                    "wait for it to finish or choose another --out"
                ) from None
            raise ConfigError(f"cannot lock {self._path}: {exc.strerror or exc}") from None
        self._fd = fd
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1
