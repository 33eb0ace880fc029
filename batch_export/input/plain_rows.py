"""The reader's fast path: blocks of lines that are each one canonical number, taken at C speed.

A million-row export from a CRM is nearly always one column of plain
numbers (``123\\n`` or ``123\\r\\n``). For such a line the CSV parser, the
blank-row check and ``validate_id`` all come to the same answer: one row
whose canonical ID is the line's digits. So the reader hands whole blocks of
lines to :func:`take_plain`, which finds at C speed (one regex over the
joined block) how many leading lines are plain, and gives back their IDs
(``str.split`` of the block, also C speed) and the lines after them, which go
back to the exact per-row path. Anything not plain — quotes, other columns,
blanks, spaces, ``007``, ``1.0``, a 19-digit ID, a last line without a line
break — is simply not taken here, so every message and line number stays
what the per-row path says.
"""

from __future__ import annotations

import os
import re
import typing
from collections.abc import Callable

__all__ = [
    "BLOCK_LINES",
    "FAST_CODECS",
    "BulkInput",
    "add_block",
    "bulk_owner",
    "file_size",
    "reservation",
    "take_plain",
]

#: lines per block: big enough to amortise the per-block calls, small enough to hold briefly
BLOCK_LINES = 4096
#: codecs that, with ``surrogateescape``, never raise while decoding: a block read
#: ahead cannot move a decode error to another line than the per-row path reports
FAST_CODECS = frozenset({"utf-8-sig", "ascii", "iso8859-1", "cp1252"})
# 1 to 18 digits, no leading zero: canonical as is, and below 2**63 - 1 without
# a comparison (19 digits may be too large: the per-row path decides).
_PLAIN = re.compile(r"(?:[1-9][0-9]{0,17}\r?\n)*")


@typing.runtime_checkable
class BulkInput(typing.Protocol):
    """A dedupe that takes a block of canonical numeric IDs at once (``TargetTable``)."""

    def __len__(self) -> int: ...

    def add_input(self, target_id: str) -> bool: ...

    def add_inputs(self, target_ids: list[str]) -> list[str]: ...

    @property
    def capacity(self) -> int: ...

    def reserve(self, count: int) -> None: ...


def bulk_owner(dedupe: Callable[[str], bool] | None) -> BulkInput | None:
    """The table whose own ``add_input`` ``dedupe`` is, so blocks can go to its ``add_inputs``."""
    owner = getattr(dedupe, "__self__", None)
    if isinstance(owner, BulkInput) and dedupe == owner.add_input:
        return owner
    return None


def take_plain(lines: list[str]) -> tuple[list[str], list[str]]:
    """``(ids, rest)``: the IDs of the leading plain lines of ``lines``, and the lines after them.

    ``lines`` are as ``TextIOWrapper(newline="")`` splits them, each with its
    own line break, so the regex's end falls on a line boundary.
    """
    block = "".join(lines)
    end = _PLAIN.match(block).end()  # type: ignore[union-attr]  # a star always matches
    if end == len(block):
        return block.split(), []
    taken = block.count("\n", 0, end)
    return block[:end].split(), lines[taken:]


def file_size(binary: typing.BinaryIO | None) -> int:
    """The size of the file under ``binary`` (0 for stdin, a pipe or none)."""
    try:
        return os.fstat(binary.fileno()).st_size if binary is not None else 0
    except (OSError, ValueError):
        return 0


def reservation(needed: int, rows: int, read: int, size: int) -> int:
    """How many slots to size the index for, with ``needed`` slots about to be made.

    The file's rows as estimated from the rows and bytes read so far, so a
    million rows cost one or two placings of every slot, not eleven
    doublings; but at most 4x ``needed``: early lines may be shorter than the
    rest (IDs 1, 2, 3...), and a wrong guess must not cost more than that.
    """
    estimate = rows * size // read if read else 0
    return min(max(needed, estimate), 4 * needed)


def add_block(
    ids: list[str],
    dedupe: Callable[[str], bool],
    owner: BulkInput | None,
    *,
    rows: int,
    read: int,
    size: int,
) -> list[str]:
    """The IDs of ``ids`` that are new: through the table in one call when it is the dedupe.

    ``rows`` and ``read`` (bytes) so far and the file's ``size`` size its index.
    """
    if owner is None:
        return [target_id for target_id in ids if dedupe(target_id)]
    needed = len(owner) + len(ids)
    if needed > owner.capacity:  # only then: early estimates are the least sure
        owner.reserve(reservation(needed, rows, read, size))
    return owner.add_inputs(ids)
