"""``batch-export verify``: prove an export directory is what its manifest says.

For every ``done`` entry: the export exists where the manifest (from the
journal) recorded it (its ``file``, never a recomputed name), has the
recorded size and sha256, (for gzip exports) decompresses completely, and is
a valid export of the recorded target. This is the evidence an auditor asks
for. Local files are always read whole; in object storage one HEAD per
object proves size, checksum, version and lock, and ``--deep`` reads every
byte too. All through the sink (``Sink.inspect``, ``Sink.read``): this module
knows nothing of which destination it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, IntegrityError
from ..storage.choose import store_sink
from ..storage.local import LocalSink
from ..storage.sink import Sink, UnsafeName
from ..storage.validate import ExportChecker
from .destination import recorded_settings
from .manifest import MANIFEST_NAME

__all__ = ["Problem", "VerifyReport", "verify_directory", "verify_entry", "verify_exports"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one manifest entry."""

    line: int
    kind: str
    id: str
    file: str | None
    problem: str


@dataclass
class VerifyReport:
    """The outcome of verifying a directory."""

    checked: int = 0
    verified: int = 0
    bytes: int = 0
    not_done: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self, directory: Path | str) -> dict[str, Any]:
        """What ``batch-export verify --json`` prints for ``directory``."""
        return {
            "directory": str(directory),
            "ok": self.ok,
            "checked": self.checked,
            "verified": self.verified,
            "bytes": self.bytes,
            "not_done": self.not_done,
            "problems": [dataclasses.asdict(problem) for problem in self.problems],
        }


def _manifest_entries(out_dir: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    path = out_dir / MANIFEST_NAME
    if not path.is_file():
        raise ConfigError(
            f"{out_dir} has no {MANIFEST_NAME}; is it a batch-export output directory?"
        )
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                entry = None
            if not isinstance(entry, dict):
                yield number, {"status": "unreadable"}
                continue
            yield number, entry


async def verify_entry(sink: Sink, entry: dict[str, Any], *, deep: bool = False) -> str | None:
    """None when the entry's export is intact and valid, else what is wrong.

    First what the sink can tell without reading (``Sink.inspect``: size; for
    object storage also checksum, version and lock), then, when the sink
    always reads (local files) or ``deep``, every byte re-hashed and re-checked.
    """
    file = entry.get("file")
    if not isinstance(file, str) or not file:
        return "the manifest names no file"
    recorded = entry.get("bytes")
    store = entry.get("store")
    try:
        if not isinstance(recorded, int):
            size = await _stored_size(sink, file)
            return f"size is {size} bytes, the manifest says {recorded}"
        problem = await sink.inspect(file, recorded, store if isinstance(store, dict) else None)
        if problem is not None or not (deep or sink.verify_reads):
            return problem
        async with contextlib.aclosing(sink.read(file)) as chunks:
            return await _check_content(chunks, entry)
    except UnsafeName:
        return "the manifest's file path points outside the directory"
    except FileNotFoundError:
        return "file is missing"


async def _stored_size(sink: Sink, file: str) -> int:
    """The stored size of ``file``, counted (it is not the recorded one, or not there)."""
    size = 0
    async with contextlib.aclosing(sink.read(file)) as chunks:
        async for block in chunks:
            size += len(block)
    return size


async def _check_content(chunks: AsyncIterator[bytes], entry: dict[str, Any]) -> str | None:
    """Re-hash the stored bytes, inflate them if gzip, and re-run the export check."""
    digest = hashlib.sha256()
    checker = ExportChecker(str(entry.get("kind")), str(entry.get("id")))
    inflater = zlib.decompressobj(wbits=31) if entry.get("compressed") == "gzip" else None
    try:
        async for stored in chunks:
            digest.update(stored)
            checker.feed(inflater.decompress(stored) if inflater is not None else stored)
        if inflater is not None:
            checker.feed(inflater.flush())
            if not inflater.eof:
                return "gzip stream is truncated"
        if digest.hexdigest() != entry.get("sha256"):
            return "sha256 differs from the manifest (the file was changed)"
        checker.finish()
    except zlib.error:
        return "gzip data is corrupt"
    except IntegrityError as exc:
        return str(exc)
    return None


async def verify_exports(out_dir: Path, sink: Sink, *, deep: bool = False) -> VerifyReport:
    """Check every done entry of ``out_dir``'s manifest against what ``sink`` holds."""
    report = VerifyReport()
    for line, entry in _manifest_entries(out_dir):
        status = entry.get("status")
        if status == "unreadable":
            report.problems.append(Problem(line, "?", "?", None, "manifest line is not JSON"))
            continue
        if status != "done":
            report.not_done += 1
            continue
        report.checked += 1
        problem = await verify_entry(sink, entry, deep=deep)
        if problem is None:
            report.verified += 1
            report.bytes += int(entry.get("bytes") or 0)
        else:
            report.problems.append(
                Problem(
                    line, str(entry.get("kind")), str(entry.get("id")), entry.get("file"), problem
                )
            )
    return report


def verify_directory(
    out_dir: Path, sink: Sink | None = None, *, deep: bool = False
) -> VerifyReport:
    """``verify_exports`` from synchronous code.

    By default the sink is where ``out_dir``'s exports are: the bucket its
    ``destination.json`` names (credentials from the standard AWS chain), else
    the files under it.
    """
    return asyncio.run(_verify_and_close(out_dir, sink, deep))


async def _verify_and_close(out_dir: Path, sink: Sink | None, deep: bool) -> VerifyReport:
    if sink is None:
        settings = recorded_settings(out_dir)
        sink = LocalSink(out_dir) if settings is None else store_sink(settings)
    try:
        return await verify_exports(out_dir, sink, deep=deep)
    finally:
        await sink.close()
