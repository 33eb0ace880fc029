"""``batch-export verify``: prove an export directory is what its manifest and seals say.

Two halves. Here, for every ``done`` entry: the export exists where the manifest (from the
journal) recorded it (its ``file``, never a recomputed name), has the
recorded size and sha256, (for gzip exports) decompresses completely, and is
a valid export of the recorded target. This is the evidence an auditor asks
for. Local files are always read whole; in object storage one HEAD per
object proves size, checksum, version and lock, and ``--deep`` reads every
byte too. All through the sink (``Sink.inspect``, ``Sink.read``,
``Sink.stored_exports`` for files no manifest line names): this module knows
nothing of which destination it is. Then ``proof.py`` checks the manifest and
the other evidence files against the latest seal, the seal chain, the
signatures (``keys``) and the journal's hash chain; with ``require_complete``
every manifest entry that is not done is a problem too.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import time
import zlib
from array import array
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._version import __version__
from ..errors import ConfigError, IntegrityError
from ..storage.choose import store_sink
from ..storage.local import LocalSink
from ..storage.sink import Sink, UnsafeName
from ..storage.validate import ExportChecker
from .destination import recorded_settings
from .jsonlines import numbered_objects
from .manifest import MANIFEST_NAME, iso_time
from .proof import ArchiveProof, prove_archive
from .replay import JOURNAL_NAME
from .seal import EVIDENCE_FILES, SEALS_DIR, file_record, list_seals

if TYPE_CHECKING:  # cryptography is imported only when keys are checked
    from .signing import TrustedKeys

__all__ = [
    "Problem",
    "VerifyReport",
    "format_proof",
    "verify_directory",
    "verify_entry",
    "verify_exports",
]


@dataclass(frozen=True)
class Problem:
    """One thing wrong: with one manifest entry (``check`` "export"), or with the archive."""

    line: int
    kind: str
    id: str
    file: str | None
    problem: str
    #: export, unknown-file, incomplete, manifest, seal, signature or journal
    check: str = "export"

    def describe(self) -> str:
        """The problem as one line for people."""
        if self.check in ("export", "incomplete"):
            return f"{self.file or '-'}: {self.kind} {self.id}: {self.problem}"
        return f"{self.file or '-'}: {self.problem}"


@dataclass
class VerifyReport:
    """The outcome of verifying a directory."""

    checked: int = 0
    verified: int = 0
    bytes: int = 0
    not_done: int = 0
    problems: list[Problem] = field(default_factory=list)
    #: files under ``exports/`` that no manifest line names
    unknown_files: list[str] = field(default_factory=list)
    #: the archive-level checks (None when only the exports were checked)
    proof: ArchiveProof | None = None
    checked_at: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self, directory: Path | str) -> dict[str, Any]:
        """What ``batch-export verify --json`` prints for ``directory``: itself evidence."""
        proof = self.proof
        manifest = proof.manifest if proof is not None else None
        return {
            "directory": str(directory),
            "checked_at": iso_time(self.checked_at),
            "tool": "batch-export",
            "tool_version": __version__,
            "ok": self.ok,
            "manifest_sha256": manifest.sha256 if manifest is not None else None,
            "checked": self.checked,
            "verified": self.verified,
            "bytes": self.bytes,
            "not_done": self.not_done,
            "unknown_files": self.unknown_files,
            "seals": proof.seals if proof is not None else {},
            "journal": proof.journal if proof is not None else {},
            "problems": [dataclasses.asdict(problem) for problem in self.problems],
        }


def _manifest_entries(out_dir: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Each manifest line with its number; nothing when the manifest is missing (reported apart)."""
    path = out_dir / MANIFEST_NAME
    if not path.is_file():
        return
    for number, entry in numbered_objects(path):
        yield number, entry if entry is not None else {"status": "unreadable"}


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


async def verify_exports(
    out_dir: Path, sink: Sink, *, deep: bool = False, require_complete: bool = False
) -> VerifyReport:
    """Check every done entry of ``out_dir``'s manifest against what ``sink`` holds.

    Then list what the sink stores under ``exports/``: a file no line names is
    a problem. With ``require_complete`` an entry that is not done is one too.
    """
    report = VerifyReport()
    named = _Names()
    for line, entry in _manifest_entries(out_dir):
        status = entry.get("status")
        if status == "unreadable":
            report.problems.append(Problem(line, "?", "?", None, "manifest line is not JSON"))
            continue
        file = entry.get("file")
        if isinstance(file, str):
            named.add(file)
        if status != "done":
            report.not_done += 1
            if require_complete:
                report.problems.append(_incomplete(line, entry))
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
    async with contextlib.aclosing(sink.stored_exports()) as stored:
        async for file in stored:
            if file not in named:
                report.unknown_files.append(file)
    report.unknown_files.sort()
    for file in report.unknown_files:
        report.problems.append(
            Problem(0, "-", "-", file, "no manifest line names this file", "unknown-file")
        )
    return report


class _Names:
    """The manifest's file names, only ever asked whether a stored file is one of them.

    Kept as their 64-bit ``hash()`` (SipHash under this process's random
    key) in 65,536 arrays by the low bits: ~13 bytes a name, against ~120
    for a set of a million strings. A stored file whose hash equals a named
    one's (a 2**-64 chance a pair, not to be aimed at: the key is secret)
    would pass as named: an unknown file missed, never one invented.
    """

    _BUCKETS = 1 << 16

    def __init__(self) -> None:
        self._buckets = [array("q") for _ in range(self._BUCKETS)]

    def add(self, name: str) -> None:
        digest = hash(name)
        self._buckets[digest % self._BUCKETS].append(digest)

    def __contains__(self, name: str) -> bool:
        digest = hash(name)
        return digest in self._buckets[digest % self._BUCKETS]  # ~15 a bucket for a million


def _incomplete(line: int, entry: dict[str, Any]) -> Problem:
    status = str(entry.get("status"))
    error = entry.get("error")
    return Problem(
        line,
        str(entry.get("kind")),
        str(entry.get("id")),
        entry.get("file"),
        f"not done ({status}{': ' + str(error) if error else ''})",
        "incomplete",
    )


def verify_directory(
    out_dir: Path,
    sink: Sink | None = None,
    *,
    deep: bool = False,
    keys: TrustedKeys | None = None,
    require_complete: bool = False,
) -> VerifyReport:
    """Verify ``out_dir`` from synchronous code: its exports, then its seals and journal.

    By default the sink is where ``out_dir``'s exports are: the bucket its
    ``destination.json`` names (credentials from the standard AWS chain), else
    the files under it. ``keys``: each seal must be signed by one of them.
    Raises ConfigError when ``out_dir`` is not an archive.
    """
    if keys is None:
        from .signing import TrustedKeys

        keys = TrustedKeys(())
    return asyncio.run(_verify_and_close(out_dir, sink, deep, keys, require_complete))


async def _verify_and_close(
    out_dir: Path, sink: Sink | None, deep: bool, keys: TrustedKeys, require_complete: bool
) -> VerifyReport:
    missing = [name for name in (MANIFEST_NAME, JOURNAL_NAME) if not (out_dir / name).is_file()]
    if len(missing) == 2 and not list_seals(out_dir):
        raise ConfigError(
            f"{out_dir} has no {' and no '.join(missing)}; is it a batch-export output directory?"
        )
    checked_at = time.time()
    if sink is None:
        settings = recorded_settings(out_dir)
        sink = LocalSink(out_dir) if settings is None else store_sink(settings)
    try:
        report = await verify_exports(out_dir, sink, deep=deep, require_complete=require_complete)
        published = await _published(sink)
    finally:
        await sink.close()
    report.checked_at = checked_at
    for name in missing:  # an archive (it has the rest) that lost one of its records
        report.problems.append(Problem(0, "-", "-", name, "is missing", "manifest"))
    report.proof = await asyncio.to_thread(prove_archive, out_dir, keys)
    for check, where, problem in report.proof.problems:
        report.problems.append(Problem(0, "-", "-", where, problem, check))
    if published is not None:
        report.problems.extend(_compare_published(out_dir, published, sink.description))
    return report


async def _published(sink: Sink) -> dict[str, str] | None:
    """The SHA-256 of every seal and evidence file the sink keeps a copy of (None: no copies)."""
    found = await sink.published(f"{SEALS_DIR}/")
    if found is None:
        return None
    for name in EVIDENCE_FILES:
        copies = await sink.published(name) or {}
        if name in copies:
            found[name] = copies[name]
    return found


def _compare_published(out_dir: Path, published: dict[str, str], where: str) -> list[Problem]:
    """The state directory's seals and evidence files against their copies at the destination.

    With object lock those copies cannot have changed, so a local seal that
    differs or is gone, or a manifest that is not the published one, means
    the state directory was rewritten or rolled back.
    """
    problems: list[Problem] = []

    def add(name: str, problem: str) -> None:
        problems.append(Problem(0, "-", "-", name, problem, "published"))

    local = {seal.name: seal.path for seal in list_seals(out_dir)}
    for name in sorted(set(local) | {n for n in published if n.startswith(f"{SEALS_DIR}/")}):
        if name not in local:
            add(
                name,
                f"is in {where} but not in {out_dir}: seals were removed or the directory rolled back",
            )
        elif name not in published:
            add(name, f"was never uploaded to {where} (rerun to publish it)")
        elif published[name] and published[name] != _sha256_of(local[name]):
            add(name, f"differs from its copy in {where}")
    for name in EVIDENCE_FILES:
        path = out_dir / name
        if path.is_file() and published.get(name) and published[name] != _sha256_of(path):
            add(name, f"differs from its copy in {where} (the latest run's)")
    return problems


def _sha256_of(path: Path) -> str:
    record = file_record(path)
    return str(record["sha256"]) if record is not None else ""


def format_proof(report: VerifyReport) -> list[str]:
    """The lines ``verify`` prints for people after the problems: what was checked, what held."""
    lines = [
        f"exports: verified {report.verified} of {report.checked} ({report.bytes} bytes); "
        f"{len(report.unknown_files)} unknown files; {report.not_done} entries not done"
    ]
    proof = report.proof
    if proof is not None:
        seals, journal = proof.seals, proof.journal
        if seals.get("count"):
            lines.append(
                f"seals: {seals['count']}, chain {seals.get('chain')}, latest {seals.get('latest')}; "
                f"signatures {seals.get('signature')} ({seals.get('signed', 0)} of "
                f"{seals['count']} signed)"
            )
        else:
            lines.append("seals: none")
        unsealed = journal.get("unsealed_lines", 0)
        lines.append(
            f"journal: {journal.get('lines', 0)} lines, hash chain {journal.get('chain')}"
            + (
                f"; {unsealed} lines after the latest seal (a run that did not finish)"
                if unsealed
                else ""
            )
        )
        if proof.manifest is not None:
            lines.append(f"manifest sha256: {proof.manifest.sha256}")
    count = len(report.problems)
    lines.append("all proven" if report.ok else f"{count} problem{'s' if count != 1 else ''} found")
    return lines
