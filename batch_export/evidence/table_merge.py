"""A run's input table given the states a checkpoint replayed: ``merge_replayed``.

A run reads its input into a table first (its targets take the first slots,
in input order) and then replays the journal into it. From a checkpoint the
replay is a table of its own, in journal order: this copies it into the
input's table, exactly as replaying into it would have left it. When the
input names the journal's targets in the same order (a rerun of the same
input), the slots agree and the arrays are copied whole, at C speed; the
other targets are copied one by one. Like ``table_pack.py`` it works on the
table's private fields, as part of the table.
"""

from __future__ import annotations

from array import array

from .target_table import TargetTable
from .target_view import CODE_NEW, IN_INPUT, TODO, WIDTH

__all__ = ["merge_replayed"]

_INPUT_ONLY = bytes([0, IN_INPUT])
#: what a table's state is made of (``kind``, ``numeric`` and ``input_count`` aside)
_FIELDS = (
    "_ints",
    "_names",
    "_odd",
    "_odd_names",
    "_bits",
    "_limit",
    "_index",
    "_count",
    "status",
    "_small",
    "_over",
    "_sizes",
    "request_ids",
    "submitted_at",
    "errors",
    "_texts",
)


def merge_replayed(table: TargetTable, replayed: TargetTable) -> bool:
    """Give ``table`` (fresh: input only) ``replayed``'s states; False (unchanged) if it is not fresh."""
    count = len(table)
    if (
        table.kind != replayed.kind
        or table.request_ids
        or table.errors
        or table.submitted_at
        or table._over
        or table._sizes is not None
        or table.status.count(CODE_NEW) != count
        or table._small.translate(None, _INPUT_ONLY)  # a byte other than "named by the input"
    ):
        return False
    same = _same_prefix(table, replayed, min(count, len(replayed)))
    if same == count:  # every input target has the slot it has in the replay: take the replay's
        flags = table._small[0 : same * WIDTH : WIDTH]
        for name in _FIELDS:
            setattr(table, name, getattr(replayed, name))
        _or_flags(table._small, flags)
        return True
    if replayed._sizes is not None:
        sizes = array("q", replayed._sizes[:same])
        sizes.frombytes(bytes(8 * (count - same)))  # the input's other slots: none known
        table._sizes = sizes
    if same:
        table.status[:same] = replayed.status[:same]
        small = bytearray(replayed._small[: same * WIDTH])
        _or_flags(small, table._small[0 : same * WIDTH : WIDTH])
        table._small[: same * WIDTH] = small
        for source, target in _dicts(replayed, table):
            target.update((slot, value) for slot, value in source.items() if slot < same)
        table._over.update((key, value) for key, value in replayed._over.items() if key[1] < same)
    over_by_slot: dict[int, list[tuple[int, int]]] = {}
    for (counter, slot), value in replayed._over.items():
        if slot >= same:
            over_by_slot.setdefault(slot, []).append((counter, value))
    for slot in range(same, len(replayed)):
        _copy_slot(table, table.slot(replayed.id_of(slot)), replayed, slot, over_by_slot)
    return True


def _or_flags(small: bytearray, flags: bytearray) -> None:
    """OR ``flags`` (the input's, one a slot) into the first slots' flag bytes, at C speed.

    A replay never sets the input's flags, so this puts them back as they were.
    """
    count = len(flags)
    merged = int.from_bytes(small[0 : count * WIDTH : WIDTH], "big") | int.from_bytes(flags, "big")
    small[0 : count * WIDTH : WIDTH] = merged.to_bytes(count, "big")


def _dicts(
    source: TargetTable, target: TargetTable
) -> list[tuple[dict[int, object], dict[int, object]]]:
    return [
        (source.request_ids, target.request_ids),  # type: ignore[list-item]
        (source.submitted_at, target.submitted_at),  # type: ignore[list-item]
        (source.errors, target.errors),  # type: ignore[list-item]
    ]


def _same_prefix(table: TargetTable, replayed: TargetTable, count: int) -> int:
    """``count`` if the first ``count`` slots of both hold the same IDs, else 0."""
    if not count:
        return 0
    if table.numeric:
        odd = {slot: name for slot, name in table._odd_names.items() if slot < count}
        others = {slot: name for slot, name in replayed._odd_names.items() if slot < count}
        same = table._ints[:count] == replayed._ints[:count] and odd == others
    else:
        ends = table._names._ends
        end = ends[count - 1]
        same = (
            ends[:count] == replayed._names._ends[:count]
            and table._names._blob[:end] == replayed._names._blob[:end]
        )
    return count if same else 0


def _copy_slot(
    table: TargetTable,
    into: int,
    replayed: TargetTable,
    slot: int,
    over_by_slot: dict[int, list[tuple[int, int]]],
) -> None:
    """Copy one slot's state, keeping the input's flags of the slot it lands in."""
    table.status[into] = replayed.status[slot]
    at = into * WIDTH
    keep = table._small[at] & (IN_INPUT | TODO)
    table._small[at : at + WIDTH] = replayed._small[slot * WIDTH : (slot + 1) * WIDTH]
    table._small[at] |= keep
    size = replayed.size(slot)
    if size:
        table._set_size(into, size)
    for source, target in _dicts(replayed, table):
        if slot in source:
            target[into] = source[slot]
    for counter, value in over_by_slot.get(slot, ()):
        table._over[(counter, into)] = value
