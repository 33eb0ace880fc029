"""A cache of a replayed journal, so ``status`` and a resume replay only the lines after it.

Replaying a million journal lines costs ~5 µs each in Python. At the end of a
run (after its seal) ``write_checkpoint`` saves what the replay of the whole
journal gives, ``DIR/state.checkpoint``: the target table's packed arrays
(``table_pack.py``), the few side dicts, the header, the ``run`` lines, the
damage found, every ``done`` line's time, and the position it covers (byte
offset, line count) with the SHA-256 of every journal byte before it.

``replay_journal`` loads it only if its own checksum and version match and
the journal's bytes up to the offset still hash to the recorded digest (an
edited, truncated or other directory's journal does not), then replays the
lines after the offset; anything else is a full replay, so the result is
always the one a full replay gives. It is a cache, never evidence: ``verify``
and the seal never read it.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import sys
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..durable import fsync_dir, open_private, write_all
from .recorded import RecordedFiles
from .replay import JOURNAL_NAME, JournalDamage, ReplayPoint, replay
from .table_merge import merge_replayed
from .table_pack import BLOB_CODES, pack_table, unpack_table
from .target_table import TargetTable

__all__ = ["CHECKPOINT_NAME", "Replayed", "replay_journal", "write_checkpoint"]

log = logging.getLogger("batch_export.evidence.checkpoint")

CHECKPOINT_NAME = "state.checkpoint"
_MAGIC = b"batch-export state checkpoint\n"
_VERSION = 1
_DIGEST = 32
_CHUNK = 1 << 20


@dataclass
class Replayed:
    """What replaying a journal gave: what ``replay`` returns and fills in."""

    header: dict[str, Any] | None
    #: the byte offset just past the last complete line
    good_end: int
    damage: JournalDamage
    states: TargetTable
    files: RecordedFiles
    runs: list[dict[str, Any]] = field(default_factory=list)
    #: every ``done`` line's time, when asked for
    done_times: array[float] | None = None
    #: whether a checkpoint spared the replay of the lines before it
    from_checkpoint: bool = False


def replay_journal(
    out_dir: Path, kind: str | None, *, done_times: bool = False, into: TargetTable | None = None
) -> Replayed:
    """Replay ``out_dir``'s journal: from its checkpoint when that is sound.

    ``kind`` is the table's (the header's kind, or None for a string-keyed
    table); a checkpoint of another kind is not used. ``into``, a run's
    table of its input, gets the states (``Replayed.states`` is it then).
    """
    path = out_dir / JOURNAL_NAME
    loaded = _load(out_dir / CHECKPOINT_NAME, path, kind, done_times)
    if loaded is not None and into is not None and len(into):
        if merge_replayed(into, loaded[0].states):
            loaded[0].states = into
        else:
            loaded = None  # not a fresh input table: replayed into as it is
    if loaded is None:
        states = TargetTable(kind) if into is None else into
        found = Replayed(None, 0, JournalDamage(), states, RecordedFiles(kind or ""))
        if done_times:
            found.done_times = array("d")
        start = None
    else:
        found, start = loaded
    found.header, found.good_end, found.damage = replay(
        path,
        found.states,
        files=found.files,
        done_times=found.done_times,
        runs=found.runs,
        start=start,
    )
    return found


def write_checkpoint(out_dir: Path, kind: str) -> bool:
    """Save the replay of ``out_dir``'s whole journal as its checkpoint; False if none was.

    Replays from the previous checkpoint (the lines of the run just ended,
    then). No checkpoint is written for a journal with a damaged header. A
    checkpoint that cannot be written is logged, not raised: it costs the
    next reader a full replay, not the run its result.
    """
    try:
        return _write_checkpoint(out_dir, kind)
    except OSError as exc:
        log.warning("could not write the state checkpoint in %s: %s", out_dir, exc)
        return False


def _write_checkpoint(out_dir: Path, kind: str) -> bool:
    found = replay_journal(out_dir, kind, done_times=True)
    if found.header is None or found.damage.header is not None or found.good_end == 0:
        return False
    assert found.done_times is not None
    meta, tables = pack_table(found.states)
    blobs = [memoryview(blob).cast("B") for blob in (*tables, found.done_times)]
    meta |= {
        "version": _VERSION,
        "byteorder": sys.byteorder,
        "kind": kind,
        "header": found.header,
        "runs": found.runs,
        "files": found.files.others(),
        "damage": {
            "lines": found.damage.lines,
            "reasons": found.damage.reasons,
            "count": found.damage.count,
        },
        "offset": found.good_end,
        "lines": found.damage.complete_lines,
        "journal_sha256": _prefix_digest(out_dir / JOURNAL_NAME, found.good_end),
        "blob_sizes": [blob.nbytes for blob in blobs],
    }
    hasher = hashlib.sha256()
    target = out_dir / CHECKPOINT_NAME
    temporary = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    fd = open_private(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        try:
            # Piece by piece, hashed as written: no copy of the arrays in memory.
            meta_line = json.dumps(meta, separators=(",", ":")).encode() + b"\n"
            for part in (memoryview(_MAGIC), memoryview(meta_line), *blobs):
                hasher.update(part)
                while part:
                    part = part[os.write(fd, part) :]
            write_all(fd, hasher.digest())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_dir(out_dir)
    return True


def _load(
    checkpoint: Path, journal: Path, kind: str | None, done_times: bool
) -> tuple[Replayed, ReplayPoint] | None:
    """The checkpoint's replay and where it ends, or None (with a debug log) if it is not sound.

    Without ``done_times`` the done lines' times are checked but not kept
    (80 MB for 10,000,000 targets, which a resume never uses).
    """
    try:
        with checkpoint.open("rb") as handle:
            return _read(handle, journal, kind, done_times)
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError, IndexError, AttributeError, EOFError, OSError) as exc:
        log.debug("%s not used (%s): replaying the whole journal", checkpoint, exc)
        return None


def _read(
    handle: io.BufferedReader, journal: Path, kind: str | None, done_times: bool
) -> tuple[Replayed, ReplayPoint]:
    """``_load`` from the open file: each array read straight into its place (no copies)."""
    hasher = hashlib.sha256()
    head = handle.read(len(_MAGIC))
    meta_line = handle.readline()
    if head != _MAGIC or not meta_line.endswith(b"\n"):
        raise ValueError("not a checkpoint")
    hasher.update(head)
    hasher.update(meta_line)
    meta = json.loads(meta_line)
    if meta.get("version") != _VERSION or meta.get("byteorder") != sys.byteorder:
        raise ValueError("another checkpoint format")
    if meta["kind"] != kind:
        raise ValueError("a checkpoint of another kind")
    sizes = [int(size) for size in meta["blob_sizes"]]
    if len(sizes) != len(BLOB_CODES) + 1:
        raise ValueError("not the blobs of a checkpoint")
    blobs = [
        _read_blob(handle, code, size, hasher)
        for code, size in zip(BLOB_CODES, sizes, strict=False)
    ]
    times = None
    if done_times:
        times = _read_blob(handle, "d", sizes[-1], hasher)
    else:
        _hash_blob(handle, sizes[-1], hasher, "the checkpoint is cut short")
    if handle.read(_DIGEST + 1) != hasher.digest():
        raise ValueError("its checksum does not match")
    offset = int(meta["offset"])
    if journal.stat().st_size < offset or _prefix_digest(journal, offset) != meta["journal_sha256"]:
        raise ValueError("the journal is not the one the checkpoint was made from")
    states = unpack_table(meta, blobs, kind)
    files = RecordedFiles(kind or "")
    files.restore({str(name): str(file) for name, file in meta["files"].items()})
    damage = JournalDamage(
        lines=[int(n) for n in meta["damage"]["lines"]],
        reasons=[str(r) for r in meta["damage"]["reasons"]],
        count=int(meta["damage"]["count"]),
    )
    header = meta["header"]
    if type(header) is not dict:
        raise ValueError("no header")
    runs = [run for run in meta["runs"] if type(run) is dict]
    found = Replayed(header, offset, damage, states, files, runs, times, from_checkpoint=True)
    return found, ReplayPoint(offset, int(meta["lines"]), header, damage)


def _read_blob(handle: io.BufferedReader, code: str, size: int, hasher: Any) -> Any:
    """``size`` bytes of ``handle`` as an array of type ``code`` ("": a bytearray), hashed.

    Read into the array's own memory: ``array.fromfile`` would first read the
    bytes into a buffer of their own, a second copy of the largest array
    (the 134 MB index of 10,000,000 targets) at the peak.
    """
    blob: Any
    if code:
        itemsize = array(code).itemsize
        if size % itemsize:
            raise ValueError("a blob of a partial item")
        blob = array(code, [0]) * (size // itemsize)
    else:
        blob = bytearray(size)
    target = memoryview(blob).cast("B")
    try:
        if handle.readinto(target) != size:
            raise ValueError("the checkpoint is cut short")
        hasher.update(target)
    finally:
        target.release()  # an array with a view on it could never grow
    return blob


def _hash_blob(
    handle: io.RawIOBase | io.BufferedIOBase, size: int, hasher: Any, short: str
) -> None:
    """Hash ``size`` bytes of ``handle`` a chunk at a time, keeping none of them.

    ValueError(``short``) if the file ends first.
    """
    view = memoryview(bytearray(min(size, _CHUNK)))
    left = size
    while left > 0:
        got = handle.readinto(view[: min(left, _CHUNK)])
        if not got:
            raise ValueError(short)
        hasher.update(view[:got])
        left -= got


def _prefix_digest(path: Path, end: int) -> str:
    """SHA-256 of the first ``end`` bytes of ``path`` (hashlib, at C speed)."""
    hasher = hashlib.sha256()
    with path.open("rb", buffering=0) as handle:
        _hash_blob(handle, end, hasher, "the journal is shorter than the checkpoint")
    return hasher.hexdigest()
