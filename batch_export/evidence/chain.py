"""The journal's hash chain: every line names the SHA-256 of the line before it.

A journal line is ``{..., "prev": "<sha256 of the previous line's bytes>"}``
(the header, line 1, has none; its ``"chain": "sha256"`` says the lines after
it are chained). Editing, inserting or removing a line in the middle changes
the hash the next line names, so it shows; only the end of the file can be
cut without a trace, and that is what the seals are for: each records how
many lines the journal had and the hash of the last one (``seal.py``).

Journals written before the chain existed have unchained lines up to the
first run of a version that chains: accepted, and reported as such, but once
a chained line appears, every later one must be chained.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .jsonlines import json_object

__all__ = [
    "CHAIN_ALGORITHM",
    "CHAIN_KEY",
    "ChainCheck",
    "chain_lines",
    "check_chain",
    "last_line_hash",
    "line_hash",
]

CHAIN_KEY = "prev"
CHAIN_ALGORITHM = "sha256"
#: how many breaks a check lists (the count goes on)
MAX_LISTED_BREAKS = 20
_TAIL_STEP = 64 * 1024


def line_hash(raw: bytes) -> str:
    """The hash a line's successor names: SHA-256 of its bytes, newline included."""
    return hashlib.sha256(raw).hexdigest()


def chain_lines(lines: Iterable[str], head: str | None) -> tuple[bytes, str | None]:
    """Encode ``lines`` (each a compact JSON object plus newline) chained after ``head``.

    Each gets ``"prev": head`` spliced in before its closing brace (cheaper
    than encoding it again) and becomes the head for the next. With ``head``
    None (an empty file) the first line is written unchained: it is the header.
    """
    out: list[bytes] = []
    for line in lines:
        raw = line.encode() if head is None else f'{line[:-2]},"{CHAIN_KEY}":"{head}"}}\n'.encode()
        head = line_hash(raw)
        out.append(raw)
    return b"".join(out), head


def last_line_hash(path: Path, end: int) -> str | None:
    """The hash of the complete line that ends at byte ``end`` of ``path`` (None if ``end`` is 0)."""
    if end <= 0:
        return None
    with path.open("rb") as handle:
        start, tail = end, b""
        while True:  # backwards, until the newline before the last line is in view
            step = min(_TAIL_STEP, start)
            start -= step
            handle.seek(start)
            tail = handle.read(step) + tail  # bytes [start, end)
            cut = tail.rfind(b"\n", 0, len(tail) - 1)
            if cut >= 0:
                return line_hash(tail[cut + 1 :])
            if start == 0:
                return line_hash(tail)


@dataclass
class ChainCheck:
    """What walking a journal's chain found."""

    #: complete lines read, the header included
    lines: int = 0
    #: the hash of each complete line asked for (``check_chain(wanted=...)``), by number
    hashes: dict[int, str] = field(default_factory=dict)
    #: "intact", "broken", or "unchained" (no chained line at all: an old journal)
    state: str = "unchained"
    #: lines before the first chained one (0 for a journal chained from its header)
    unchained: int = 0
    #: ``(line number, what is wrong)`` for the first breaks found
    breaks: list[tuple[int, str]] = field(default_factory=list)
    #: how many breaks there are in all
    break_count: int = 0
    #: a last line without its newline: a run writing now, or a crash's torn line
    torn_tail: bool = False
    #: the ``seal`` lines: ``(line number, seal number, sha256 it names)``
    seal_lines: list[tuple[int, int, str]] = field(default_factory=list)

    def add_break(self, number: int, problem: str) -> None:
        self.break_count += 1
        if len(self.breaks) < MAX_LISTED_BREAKS:
            self.breaks.append((number, problem))


def check_chain(path: Path, wanted: Iterable[int] = ()) -> ChainCheck:
    """Walk ``path``'s chain line by line; also note the hashes of the ``wanted`` line numbers."""
    check = ChainCheck()
    wanted_lines = set(wanted)
    previous = ""
    chained = False
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if raw[-1:] != b"\n":
                check.torn_tail = True
                break
            check.lines = number
            digest = line_hash(raw)
            if number in wanted_lines:
                check.hashes[number] = digest
            record = json_object(raw)
            if number == 1:
                chained = record is not None and record.get("chain") == CHAIN_ALGORITHM
            else:
                chained = _check_line(check, number, record, previous, chained)
            previous = digest
    if check.break_count:
        check.state = "broken"
    elif chained:
        check.state = "intact"
    return check


def _check_line(
    check: ChainCheck, number: int, record: dict[str, object] | None, previous: str, chained: bool
) -> bool:
    """Check line ``number`` (parsed: ``record``) against the hash of the one before it.

    Returns whether the chain has begun by this line.
    """
    if record is not None and record.get("ev") == "seal":
        _note_seal(check, number, record)
    named = record.get(CHAIN_KEY) if record is not None else None
    if named is None:
        if chained:
            check.add_break(number, "is not chained: it was inserted or rewritten")
        else:
            check.unchained = number
        return chained
    if named != previous:
        check.add_break(
            number - 1,
            "was changed, or lines were removed or inserted after it: the next line "
            "names another hash",
        )
    return True


def _note_seal(check: ChainCheck, number: int, record: dict[str, object]) -> None:
    seal, sha256 = record.get("seal"), record.get("sha256")
    if type(seal) is int and isinstance(sha256, str):
        check.seal_lines.append((number, seal, sha256))
