"""The seal's Merkle leaves sorted by (kind, id), a million of them in ~40 MB.

``seal.digest_manifest`` sorts one record per done target, ``kind NUL id NUL
leaf hash`` (UTF-8 bytes sort as the strings do; NUL before any character),
and feeds the leaf hashes in that order to the streaming Merkle root. Kept
as one ``bytes`` object each, a record costs ~90 bytes while it waits for
the sort: 90 MB for a million, the peak of a whole run.

Here records wait packed into buckets instead: one ``bytearray`` per first
few bytes of the record (cutting every record to a prefix keeps their
order, so the buckets, taken in order of their prefix, hold consecutive
runs of the sorted records). Each record is stored without the prefix its
bucket stands for, behind its length (a byte): ~40 bytes. At the end the
buckets are sorted one at a time, each as a short list of ``bytes``; a
bucket too big for that is split again by its next bytes first. The order, and so the
root, is exactly that of sorting every record at once.
"""

from __future__ import annotations

from collections.abc import Iterator

__all__ = ["SortedLeaves"]

#: a bucket of more records than about this is split by its next bytes before sorting
SORT_AT_ONCE = 1 << 16
#: how many more bytes each split looks at
_STEP = 2
#: splits stop here (records this alike are sorted at once, however many)
_MAX_DEPTH = 8
_LONG = 255  # a length byte that says four bytes of length follow
_LENGTH = 4


class SortedLeaves:
    """Collects ``(kind, id, leaf hash)`` and yields the leaf hashes sorted by kind, then id."""

    def __init__(self) -> None:
        self._buckets: dict[bytes, bytearray] = {}
        self._prefix = 0  # bytes of a record its bucket stands for (set by the first record)
        self.count = 0

    def add(self, kind: str, target_id: str, leaf: bytes) -> None:
        """One done target's leaf hash (32 bytes)."""
        record = f"{kind}\0{target_id}\0".encode() + leaf
        if not self._prefix:
            # The kind (the same on every line) and the ID's first bytes.
            self._prefix = len(kind.encode()) + 1 + _STEP
        head, rest = record[: self._prefix], record[self._prefix :]
        bucket = self._buckets.get(head)
        if bucket is None:
            bucket = self._buckets[head] = bytearray()
        _pack(bucket, rest)
        self.count += 1

    def leaves(self) -> Iterator[bytes]:
        """The leaf hashes in (kind, id) order; the buckets are emptied as they are read."""
        buckets = self._buckets
        for head in sorted(buckets):
            yield from _sorted_leaves(buckets.pop(head), head, 0)


def _pack(bucket: bytearray, record: bytes) -> None:
    """Append ``record`` behind its length: one byte, or 255 and four more for a long one."""
    size = len(record)
    if size < _LONG:
        bucket.append(size)
    else:
        bucket.append(_LONG)
        bucket += size.to_bytes(_LENGTH, "little")
    bucket += record


def _records(bucket: bytearray) -> Iterator[bytes]:
    at, end = 0, len(bucket)
    while at < end:
        size = bucket[at]
        at += 1
        if size == _LONG:
            size = int.from_bytes(bucket[at : at + _LENGTH], "little")
            at += _LENGTH
        yield bytes(bucket[at : at + size])
        at += size


def _sorted_leaves(bucket: bytearray, head: bytes, offset: int) -> Iterator[bytes]:
    """The leaves of one bucket's records (each without the ``head`` they share), in order.

    Its records are alike up to ``offset`` bytes; a big bucket is split by
    the next ``_STEP`` of them, and each part sorted alone.
    """
    if len(bucket) <= SORT_AT_ONCE * 44 or offset >= _MAX_DEPTH * _STEP:
        records = list(_records(bucket))
        del bucket[:]
        records.sort()
        for record in records:
            # A record shorter than a leaf shares the rest of it with its head.
            yield (record if len(record) >= 32 else head + record)[-32:]
        return
    parts: dict[bytes, bytearray] = {}
    for record in _records(bucket):
        key = record[offset : offset + _STEP]
        part = parts.get(key)
        if part is None:
            part = parts[key] = bytearray()
        _pack(part, record)
    del bucket[:]
    for key in sorted(parts):
        yield from _sorted_leaves(parts.pop(key), head, offset + _STEP)
