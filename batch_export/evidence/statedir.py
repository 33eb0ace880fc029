"""The state directory (``--out DIR``): where a run keeps its journal, lock and evidence.

Created owner-only, whatever the umask: it holds personal data. Only one run
may use it at a time (``RunLock``, an ``flock`` on ``DIR/.lock``), and nothing
inside it is created, cleared or changed before that lock is held.

Once it holds the lock, a run writes one JSON line into the lock file, its
``pid`` and the time it ``started`` (ISO 8601 UTC), so ``batch-export status``
can tell a live run from a stopped one: ``probe_lock`` tests the lock without
waiting for it (a shared, non-blocking ``flock``, released at once) and
reads that line. The line is left behind when the run ends; it is believed
only while the lock is held.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from ..durable import make_private_dir
from ..errors import ConfigError
from .manifest import iso_time

__all__ = ["LOCK_NAME", "LockProbe", "RunLock", "make_out_dir", "probe_lock"]

LOCK_NAME = ".lock"
#: how long a run tries for the lock before it says another run holds it: a
#: ``status`` probing at that instant holds it for microseconds, never a run's worth
LOCK_PATIENCE = 0.25
_LOCK_RETRY = 0.01
#: more than the line a run writes; a larger lock file is not one of ours
_MAX_LOCK_LINE = 4096


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
    """An exclusive lock on the output directory: one run per directory at a time.

    Held, the lock file says who holds it: ``{"pid": …, "started": "…Z"}``.
    """

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
            _lock_patiently(fd)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise ConfigError(
                    f"another batch-export run is using {self._path.parent}; "
                    "wait for it to finish or choose another --out"
                ) from None
            raise ConfigError(f"cannot lock {self._path}: {exc.strerror or exc}") from None
        self._fd = fd
        _write_holder(fd)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1


def _lock_patiently(fd: int) -> None:
    """``flock(LOCK_EX | LOCK_NB)``, tried for ``LOCK_PATIENCE`` seconds before it raises.

    A ``status`` holds a shared lock for the instant of its probe; a run
    starting then must not take that for another run.
    """
    deadline = time.monotonic() + LOCK_PATIENCE
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(_LOCK_RETRY)
        else:
            return


def _write_holder(fd: int) -> None:
    """Say in the lock file who holds it (owner-only; the line before is dropped first)."""
    line = json.dumps({"pid": os.getpid(), "started": iso_time(time.time())}) + "\n"
    try:
        os.fchmod(fd, 0o600)  # a lock file left by an older version may be 0644
        os.ftruncate(fd, 0)
        os.pwrite(fd, line.encode(), 0)
    except OSError:
        # Only status reads it; a run that holds its lock must not fail over it.
        pass


@dataclass(frozen=True)
class LockProbe:
    """What ``probe_lock`` found: whether a run holds DIR's lock, and who it says it is."""

    #: True: a run holds the lock; False: none does; None: the lock file cannot be read
    held: bool | None
    pid: int | None = None
    #: when the holding run took the lock (ISO 8601 UTC), as it wrote
    started: str | None = None


def probe_lock(out_dir: Path) -> LockProbe:
    """Whether a run holds ``out_dir``'s lock, never waiting and never creating a file.

    A shared lock is tried without blocking and, if it is granted (no run
    holds the exclusive one), released at once. Opened read-only, so it works
    on a read-only copy of the directory too.
    """
    try:
        fd = os.open(out_dir / LOCK_NAME, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return LockProbe(held=False)  # no run has ever locked DIR
    except OSError:
        return LockProbe(held=None)  # another user's directory, a symlink: cannot tell
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pid, started = _read_holder(fd)
            return LockProbe(held=True, pid=pid, started=started)
        except OSError:
            return LockProbe(held=None)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return LockProbe(held=False)
    finally:
        os.close(fd)


def _read_holder(fd: int) -> tuple[int | None, str | None]:
    """The pid and start time the holder wrote (None, None before it has written them)."""
    try:
        record = json.loads(os.pread(fd, _MAX_LOCK_LINE, 0))
    except (OSError, ValueError):
        return None, None
    if not isinstance(record, dict):
        return None, None
    pid, started = record.get("pid"), record.get("started")
    return (
        pid if type(pid) is int else None,
        started if isinstance(started, str) else None,
    )
