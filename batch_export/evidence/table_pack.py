"""A ``TargetTable`` as bytes and back, at C speed: its arrays' ``tobytes``/``frombytes``.

For the checkpoint (``checkpoint.py``): a million targets load in milliseconds
instead of the seconds their journal lines take to replay. The small side
dicts (open and failed targets', counters past 254, odd IDs) go into the
JSON part. This module reaches into the table's private fields on purpose:
it is the table's serialised form, kept apart so ``target_table.py`` stays small.
"""

from __future__ import annotations

from array import array
from typing import Any

from .target_index import _MAX_LOAD
from .target_table import TargetTable
from .target_view import STATUSES, WIDTH

__all__ = ["BLOB_CODES", "pack_table", "unpack_table"]

#: the arrays, in blob order, with their type codes ("" for a bytearray)
_ARRAYS = (
    ("ints", "q"),
    ("ends", "q"),
    ("names", ""),
    ("index", "i"),
    ("status", ""),
    ("small", ""),
)
#: the type code of each blob ``pack_table`` gives (the sizes last)
BLOB_CODES = (*(code for _, code in _ARRAYS), "q")


def pack_table(table: TargetTable) -> tuple[dict[str, Any], list[Any]]:
    """The table's JSON-able fields and its arrays (buffers; ``_ARRAYS`` order, then the sizes)."""
    names = table._names
    # The arrays themselves, not copies: the checkpoint writes them as they are.
    blobs: list[Any] = [
        table._ints,
        names._ends,
        names._blob,
        table._index,
        table.status,
        table._small,
        table._sizes if table._sizes is not None else b"",
    ]
    meta = {
        "count": len(table),
        "bits": table._bits,
        "itemsizes": [array(code).itemsize if code else 1 for _, code in _ARRAYS],
        "has_sizes": table._sizes is not None,
        "odd": sorted(table._odd_names.items()),
        "over": [[counter, slot, value] for (counter, slot), value in table._over.items()],
        "request_ids": sorted(table.request_ids.items()),
        "submitted_at": sorted(table.submitted_at.items()),
        "errors": sorted(table.errors.items()),
    }
    return meta, blobs


def unpack_table(meta: dict[str, Any], blobs: list[Any], kind: str | None) -> TargetTable:
    """The table ``pack_table`` packed (its blobs read back as ``BLOB_CODES`` say; taken, not copied).

    ValueError if the parts do not fit together.
    """
    if meta["itemsizes"] != [array(code).itemsize if code else 1 for _, code in _ARRAYS]:
        raise ValueError("packed on a machine with other array item sizes")
    if [blob.typecode if isinstance(blob, array) else "" for blob in blobs] != list(BLOB_CODES):
        raise ValueError("not the table's arrays")
    table = TargetTable(kind)
    count, bits = int(meta["count"]), int(meta["bits"])
    ints, ends, names, index, status, small, sizes = blobs
    keys = len(ints) if table.numeric else len(ends)
    if (
        keys != count
        or len(index) != 1 << bits
        or len(status) != count
        or len(small) != count * WIDTH
        or (ends and ends[-1] != len(names))
        or max(status, default=0) >= len(STATUSES)
    ):
        raise ValueError("the table's arrays do not fit together")
    table._ints, table._index, table.status, table._small = ints, index, status, small
    table._names._ends, table._names._blob = ends, names
    table._count, table._bits = count, bits
    table._limit = int(_MAX_LOAD * (1 << bits))
    if meta["has_sizes"]:
        if len(sizes) != count:
            raise ValueError("the sizes do not fit the table")
        table._sizes = sizes
    for slot, name in meta["odd"]:
        table._odd[str(name)] = int(slot)
        table._odd_names[int(slot)] = str(name)
    table._over = {(int(c), int(s)): int(v) for c, s, v in meta["over"]}
    table.request_ids = {int(s): str(v) for s, v in meta["request_ids"]}
    table.submitted_at = {int(s): _number(v) for s, v in meta["submitted_at"]}
    table.errors = {int(s): table._text(str(v)) for s, v in meta["errors"]}
    return table


def _number(value: Any) -> float:
    """A ``submitted`` time as the journal had it (an int stays an int, as JSON keeps it)."""
    if type(value) is int or type(value) is float:
        return value
    raise ValueError("a bad submitted time")
