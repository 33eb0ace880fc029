"""Target IDs to slot numbers without a dict: integers in an array, an open-addressing index.

A dict from a million ID strings to slot numbers costs ~150 bytes a target
(the string, the entry, the int). Here a profile or subprofile ID is kept as
an integer in an ``array('q')`` (8 bytes), any other ID (an email) as its
UTF-8 bytes packed in one ``bytearray`` (its length plus 8 bytes), and an
``array('i')`` of slot numbers, at most 60 % full, finds a slot from its ID
by linear probing (~7 bytes a target). An ID of a numeric table
that is not a canonical number (``007``, ``abc``: a hand-edited journal) is
kept by name in a side dict, so it never meets the number it resembles.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from typing import Any

__all__ = ["EMPTY", "MASK64", "MIX", "SlotIndex"]

_MAX_ID = 2**63 - 1
#: a free cell of the index
EMPTY = -1
#: Fibonacci hashing: IDs with a common stride still spread over the cells
MIX = 0x9E3779B97F4A7C15
MASK64 = 2**64 - 1
_MIN_BITS = 10
_MAX_LOAD = 0.6


def _numeric(target_id: str) -> int | None:
    """The ID as an integer if it is a canonical positive decimal (what the reader makes)."""
    if (
        0 < len(target_id) <= 19
        and target_id.isdigit()
        and target_id.isascii()
        and target_id[0] != "0"
    ):
        value = int(target_id)
        if value <= _MAX_ID:
            return value
    return None


def _empty_index(bits: int) -> array[int]:
    index = array("i")
    index.frombytes(b"\xff" * (index.itemsize << bits))  # every cell EMPTY
    return index


class _PackedStrings:
    """A list of strings packed as UTF-8 in one ``bytearray``: ~length + 8 bytes each.

    A ``str`` object costs ~50 bytes besides its text (77 for a 28-character
    email): for a million emails that is the largest part of the table.
    ``surrogatepass`` keeps the packing exact for any ``str`` a journal holds.
    """

    __slots__ = ("_blob", "_ends")

    def __init__(self) -> None:
        self._blob = bytearray()
        self._ends = array("q")  # where each string's bytes end

    def __len__(self) -> int:
        return len(self._ends)

    def append(self, text: str) -> None:
        self._blob += text.encode("utf-8", "surrogatepass")
        self._ends.append(len(self._blob))

    def __getitem__(self, index: int) -> str:
        ends = self._ends
        start = ends[index - 1] if index > 0 else 0
        return self._blob[start : ends[index]].decode("utf-8", "surrogatepass")

    def __iter__(self) -> Iterator[str]:
        for index in range(len(self._ends)):
            yield self[index]


class SlotIndex:
    """Slots numbered in the order their IDs are first seen; ``_new_slot`` makes a slot's fields."""

    def __init__(self, kind: str | None) -> None:
        self.kind = kind
        #: integer IDs (profiles, subprofiles); strings for any other kind
        self.numeric = kind in ("profile", "subprofile")
        self._ints = array("q")
        self._names = _PackedStrings()
        self._odd: dict[str, int] = {}  # numeric table: IDs that are not canonical numbers
        self._odd_names: dict[int, str] = {}
        self._bits = _MIN_BITS
        self._limit = int(_MAX_LOAD * (1 << self._bits))
        self._index = _empty_index(self._bits)
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def __contains__(self, target_id: object) -> bool:
        return isinstance(target_id, str) and self.find(target_id) >= 0

    def _new_slot(self) -> None:
        """Make the fields of slot ``_count`` (a subclass's arrays grow by one)."""

    def _locate(self, target_id: str) -> tuple[int, int, Any, Any]:
        """``(slot or EMPTY, cell, key, keys)``: where the ID is, or the free cell it would take.

        The cell is EMPTY for an odd ID of a numeric table (kept by name).
        """
        key: Any
        if self.numeric:
            # Inline, the common case: a canonical number shorter than the largest.
            if (
                target_id.isdigit()
                and target_id.isascii()
                and len(target_id) < 19
                and target_id[0] != "0"
            ):
                key = hashed = int(target_id)
            else:
                key = _numeric(target_id)
                if key is None:
                    return self._odd.get(target_id, EMPTY), EMPTY, target_id, None
                hashed = key
            keys: Any = self._ints
        else:
            key, keys, hashed = target_id, self._names, hash(target_id)
        index, bits = self._index, self._bits
        mask = (1 << bits) - 1
        cell = ((hashed * MIX) & MASK64) >> (64 - bits)
        while True:
            slot = index[cell]
            if slot == EMPTY or keys[slot] == key:
                return slot, cell, key, keys
            cell = (cell + 1) & mask

    def find(self, target_id: str) -> int:
        """The slot of ``target_id``, -1 if there is none."""
        return self._locate(target_id)[0]

    def slot(self, target_id: str) -> int:
        """The slot of ``target_id``, made on first sight.

        ``_locate``'s probe again, inline for the common case: a replay asks
        this once per line, a million times.
        """
        if not self.numeric:
            key: Any = target_id
            keys: Any = self._names
            hashed = hash(target_id)
        elif (
            target_id.isdigit()
            and target_id.isascii()
            and len(target_id) < 19
            and target_id[0] != "0"
        ):
            key = hashed = int(target_id)
            keys = self._ints
        else:
            return self._slot_slowly(target_id)
        index, bits = self._index, self._bits
        cell = ((hashed * MIX) & MASK64) >> (64 - bits)
        while True:
            slot = index[cell]
            if slot == EMPTY:
                break
            if keys[slot] == key:
                return int(slot)
            cell = (cell + 1) & ((1 << bits) - 1)
        slot = self._count
        keys.append(key)
        self._new_slot()
        self._count = slot + 1
        self._place(slot, cell)
        return slot

    def _slot_slowly(self, target_id: str) -> int:
        """``slot`` for a 19-digit ID or one that is no canonical number."""
        found, cell, key, keys = self._locate(target_id)
        if found != EMPTY:
            return found
        slot = self._count
        if keys is None:  # an odd ID: by name
            self._ints.append(-1)  # no canonical number matches it
            self._odd[target_id] = slot
            self._odd_names[slot] = target_id
        else:
            keys.append(key)
        self._new_slot()
        self._count = slot + 1
        if keys is not None:
            self._place(slot, cell)
        return slot

    def _place(self, slot: int, cell: int) -> None:
        """Index the slot just made in its free cell, or grow the index around it."""
        if slot >= self._limit:
            self._grow()
        else:
            self._index[cell] = slot

    def id_of(self, slot: int) -> str:
        """The target ID of ``slot``."""
        if not self.numeric:
            return self._names[slot]
        key = self._ints[slot]
        return str(key) if key >= 0 else self._odd_names[slot]

    @property
    def capacity(self) -> int:
        """How many slots the index holds before it grows."""
        return self._limit

    def reserve(self, count: int) -> None:
        """Size the index for ``count`` slots at once, not by doubling (and placing every slot again).

        The reader calls it with the rows it expects from the file's size.
        """
        bits = self._bits
        while int(_MAX_LOAD * (1 << bits)) < count:
            bits += 1
        if bits > self._bits:
            self._rebuild(bits)

    def _grow(self) -> None:
        """Double the index and place every slot again (the one just made included)."""
        self._rebuild(self._bits + 1)

    def _rebuild(self, bits: int) -> None:
        """A new index of ``2**bits`` cells with every slot placed in it."""
        self._bits = bits
        self._limit = int(_MAX_LOAD * (1 << self._bits))
        self._index = index = _empty_index(self._bits)
        bits = self._bits
        mask, shift = (1 << bits) - 1, 64 - bits
        numeric = self.numeric
        hashes: Any = self._ints if numeric else map(hash, self._names)
        for slot, hashed in enumerate(hashes):
            if numeric and hashed < 0:
                continue  # an odd ID: found by name, not in the index
            cell = ((hashed * MIX) & MASK64) >> shift
            while index[cell] != EMPTY:
                cell = (cell + 1) & mask
            index[cell] = slot
