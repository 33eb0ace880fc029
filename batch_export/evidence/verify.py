"""``batch-export verify``: prove an export directory is what its manifest says.

For every ``done`` entry: the file exists, has the recorded size and sha256,
(for gzip files) decompresses completely, and is a valid export of the
recorded target. This is the evidence an auditor asks for; it reads every
byte, so it runs at disk speed, not at the platform's.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, IntegrityError
from ..storage.validate import ExportChecker
from .manifest import MANIFEST_NAME

__all__ = ["Problem", "VerifyReport", "verify_directory", "verify_entry"]

READ_BLOCK = 1024 * 1024


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


def verify_entry(out_dir: Path, entry: dict[str, Any]) -> str | None:
    """None when the entry's file is intact and valid, else what is wrong."""
    relative = entry.get("file")
    if not isinstance(relative, str) or not relative:
        return "the manifest names no file"
    path = (out_dir / relative).resolve()
    if out_dir.resolve() not in path.parents:
        return "the manifest's file path points outside the directory"
    if not path.is_file():
        return "file is missing"
    size = path.stat().st_size
    if size != entry.get("bytes"):
        return f"size is {size} bytes, the manifest says {entry.get('bytes')}"
    digest = hashlib.sha256()
    checker = ExportChecker(str(entry.get("kind")), str(entry.get("id")))
    inflater = zlib.decompressobj(wbits=31) if entry.get("compressed") == "gzip" else None
    try:
        with path.open("rb") as handle:
            while block := handle.read(READ_BLOCK):
                digest.update(block)
                if inflater is not None:
                    block = inflater.decompress(block)
                checker.feed(block)
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


def verify_directory(out_dir: Path) -> VerifyReport:
    """Check every done entry of ``out_dir``'s manifest."""
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
        problem = verify_entry(out_dir, entry)
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
