"""The archive-level half of ``verify``: seals, their chain and signatures, the journal's chain.

``verify.py`` checks every export against its manifest line; this module
checks that the manifest and everything else in DIR is what the last run
sealed, and that history was not rewritten:

- the latest seal pins ``manifest.jsonl``, ``summary.json``, ``runs.jsonl``
  and ``destination.json`` by SHA-256, and the Merkle root of the done
  targets, recomputed from the manifest;
- each seal names the SHA-256 of the one before it, back to the first, with
  no number missing;
- with ``--key``, each seal carries a valid Ed25519 signature by one of the
  keys;
- the journal's lines form an unbroken hash chain (``chain.py``), each seal's
  recorded journal position still holds the line it recorded, and each
  journal line that names a seal names one that exists with that hash.

What none of this can show by itself: an archive rolled back whole to an
earlier sealed state (the latest seal, its journal line and the files after
it removed together). A copy of the latest seal kept elsewhere, or object
lock, covers that (docs/compliance-archiving.md).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .chain import ChainCheck, check_chain
from .replay import JOURNAL_NAME
from .seal import (
    FORMAT,
    ManifestDigest,
    SealFile,
    canonical,
    digest_manifest,
    file_record,
    list_seals,
)

if TYPE_CHECKING:  # cryptography is imported only when keys are checked
    from .signing import TrustedKeys

__all__ = ["ArchiveProof", "prove_archive"]


@dataclass
class ArchiveProof:
    """What the archive-level checks found: a problem list and the status of each part."""

    #: ``(check, where, problem)``; ``check`` is seal, signature, journal or manifest
    problems: list[tuple[str, str, str]] = field(default_factory=list)
    manifest: ManifestDigest | None = None
    seals: dict[str, Any] = field(default_factory=dict)
    journal: dict[str, Any] = field(default_factory=dict)

    def add(self, check: str, where: str, problem: str) -> None:
        self.problems.append((check, where, problem))


@dataclass
class _Seal:
    file: SealFile
    raw: bytes
    document: dict[str, Any] | None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()


def prove_archive(out_dir: Path, keys: TrustedKeys) -> ArchiveProof:
    """Check ``out_dir``'s seals, signatures and journal chain against its files."""
    proof = ArchiveProof()
    manifest = out_dir / "manifest.jsonl"
    proof.manifest = digest_manifest(manifest) if manifest.is_file() else None
    seals = [_read(seal) for seal in list_seals(out_dir)]
    _check_seal_chain(proof, seals)
    _check_signatures(proof, seals, keys)
    latest = next((seal for seal in reversed(seals) if seal.document is not None), None)
    if latest is not None and latest is seals[-1]:
        _check_latest(proof, out_dir, latest)
    _check_journal(proof, out_dir, seals)
    return proof


def _read(seal: SealFile) -> _Seal:
    raw = seal.read()
    try:
        document = json.loads(raw)
    except ValueError:
        document = None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        document = None
    return _Seal(seal, raw, document)


def _check_seal_chain(proof: ArchiveProof, seals: list[_Seal]) -> None:
    proof.seals = {
        "count": len(seals),
        "latest": seals[-1].file.name if seals else None,
        "chain": "none" if not seals else "intact",
        "signed": sum(1 for seal in seals if seal.document and "signature" in seal.document),
    }
    if not seals:
        proof.add(
            "seal", "seals/", "the archive has no seal: no run of this version finished in it"
        )
        return
    broken = len(proof.problems)
    expected = 1
    previous: _Seal | None = None
    for seal in seals:
        name, number = seal.file.name, seal.file.number
        if number != expected:
            missing = _numbers(expected, number - 1)
            verb = "are" if "–" in missing else "is"
            proof.add("seal", name, f"seal {missing} before it {verb} missing (removed)")
        document = seal.document
        if document is None:
            proof.add("seal", name, "is not a batch-export seal (not JSON, or not its format)")
        elif document.get("seal") != number:
            proof.add("seal", name, f"says it is seal {document.get('seal')} (renamed or edited)")
        else:
            _check_link(proof, seal, previous)
        expected = number + 1
        previous = seal
    if len(proof.problems) > broken:
        proof.seals["chain"] = "broken"


def _numbers(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}–{last}"


def _check_link(proof: ArchiveProof, seal: _Seal, previous: _Seal | None) -> None:
    """Does ``seal`` name the seal before it (by number and SHA-256), or none if it is seal 1?"""
    assert seal.document is not None
    link = seal.document.get("previous")
    name, number = seal.file.name, seal.file.number
    if number == 1:
        if link is not None:
            proof.add("seal", name, "is seal 1 but names a previous seal")
        return
    if previous is None or previous.file.number != number - 1:
        return  # the missing seal is reported already
    if not isinstance(link, dict) or link.get("seal") != previous.file.number:
        proof.add("seal", name, f"does not name seal {previous.file.number} as the one before it")
    elif link.get("sha256") != previous.sha256:
        proof.add(
            "seal",
            name,
            f"names another SHA-256 for {previous.file.name} than it has: that seal was "
            "changed after this one was written",
        )


def _check_signatures(proof: ArchiveProof, seals: list[_Seal], keys: TrustedKeys) -> None:
    if not keys:
        proof.seals["signature"] = "not checked"
        return
    status = "valid" if seals else "missing"
    for seal in seals:
        if seal.document is None:
            continue
        problem = keys.check(canonical(seal.document), seal.document.get("signature"))
        if problem is None:
            continue
        proof.add("signature", seal.file.name, problem)
        if "signature" not in seal.document:
            status = "missing" if status == "valid" else status
        else:
            status = "invalid"
    proof.seals["signature"] = status


def _check_latest(proof: ArchiveProof, out_dir: Path, latest: _Seal) -> None:
    """The files the latest seal pinned are still those bytes; its Merkle root still holds."""
    assert latest.document is not None
    name = latest.file.name
    files = latest.document.get("files")
    if not isinstance(files, dict) or "manifest.jsonl" not in files:
        proof.add("seal", name, "records no manifest")
        return
    for file, recorded in sorted(files.items()):
        found = file_record(out_dir / file)
        if found is None:
            proof.add("manifest", file, f"is missing; {name} recorded it")
        elif found != recorded:
            proof.add(
                "manifest",
                file,
                f"differs from what {name} recorded (sha256 {str(_get(recorded, 'sha256'))[:16]}…, "
                f"{_get(recorded, 'bytes')} bytes; now {found['sha256'][:16]}…, {found['bytes']} "
                "bytes): it was changed after the run",
            )
    if proof.manifest is None:
        return  # reported: the manifest is missing
    exports = latest.document.get("exports")
    if _get(exports, "merkle_root") != proof.manifest.merkle_root:
        proof.add(
            "manifest",
            "manifest.jsonl",
            f"its done targets do not give the Merkle root {name} recorded",
        )
    if latest.document.get("counts") != proof.manifest.counts:
        proof.add("manifest", "manifest.jsonl", f"its counts differ from those {name} recorded")


def _get(value: object, key: str) -> object:
    return value.get(key) if isinstance(value, dict) else None


def _check_journal(proof: ArchiveProof, out_dir: Path, seals: list[_Seal]) -> None:
    recorded: list[tuple[_Seal, int, object]] = []
    for seal in seals:
        journal = _get(seal.document, "journal")
        lines = _get(journal, "lines")
        if type(lines) is int:
            recorded.append((seal, lines, _get(journal, "sha256")))
    path = out_dir / JOURNAL_NAME
    if not path.is_file():
        proof.journal = {"lines": 0, "chain": "missing"}
        return  # reported: the journal is missing
    check = check_chain(path, wanted=(lines for _, lines, _ in recorded))
    for number, problem in check.breaks:
        proof.add("journal", f"{JOURNAL_NAME} line {number}", problem)
    if check.break_count > len(check.breaks):
        proof.add(
            "journal", JOURNAL_NAME, f"and {check.break_count - len(check.breaks)} more breaks"
        )
    for seal, lines, sha256 in recorded:
        if lines > check.lines:
            proof.add(
                "journal",
                JOURNAL_NAME,
                f"has {check.lines} lines, but {seal.file.name} recorded {lines}: lines were removed",
            )
        elif check.hashes.get(lines) != sha256:
            proof.add(
                "journal",
                f"{JOURNAL_NAME} line {lines}",
                f"is not the line {seal.file.name} recorded there (the journal was rewritten)",
            )
    _check_seal_lines(proof, check, seals)
    sealed = max((lines for _, lines, _ in recorded), default=0)
    proof.journal = {
        "lines": check.lines,
        "chain": check.state,
        "unchained_lines": check.unchained,
        "breaks": check.break_count,
        # lines after the latest seal (and its own line): a run that did not
        # finish, or one that is running now
        "unsealed_lines": max(0, check.lines - sealed - 1) if sealed else check.lines,
        "torn_tail": check.torn_tail,
    }


def _check_seal_lines(proof: ArchiveProof, check: ChainCheck, seals: list[_Seal]) -> None:
    """Each journal line that names a seal names one that is there, with that hash."""
    by_number = {seal.file.number: seal for seal in seals}
    for line, number, sha256 in check.seal_lines:
        seal = by_number.get(number)
        where = f"{JOURNAL_NAME} line {line}"
        if seal is None:
            proof.add("seal", where, f"names seal {number}, which is missing (it was removed)")
        elif seal.sha256 != sha256:
            proof.add(
                "seal", where, f"names another SHA-256 for {seal.file.name}: the seal was changed"
            )
