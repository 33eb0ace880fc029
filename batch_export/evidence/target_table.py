"""Every target's state in a few flat arrays: a million targets in tens of megabytes.

A run, a resume and ``batch-export status`` hold one state per target: its
status, whether this input names it, its counters, and (while a request is
open) its request ID. As one object per target in a dict that was ~200 bytes
each; here each target is a *slot*, a position in arrays:

- its ID: a profile or subprofile ID is an integer in an ``array('q')`` (8
  bytes); an email is its UTF-8 bytes packed in one ``bytearray``; an odd
  ID a hand-edited journal holds in a numeric table is a string in a side dict;
- an open-addressing hash index (``array('i')``, at most 60 % full) from ID
  to slot: ~7 bytes per target, against ~40 for a dict entry and two ints;
- its status, flags and counters: a byte each in a ``bytearray`` (a counter
  past 254 continues in a side dict), and the size of a file an earlier run
  saved in an ``array('q')`` made only when a replay finds one;
- the request ID, its ``submitted`` time and the error only for the targets
  that have one (open or failed), in dicts by slot; error texts shared.

``TargetView`` is a target's state as an object (``state.status``,
``state.request_id``...), made on demand and reading the arrays live, so a
target's task keeps one while the journal changes it.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterator
from itertools import compress
from typing import Any

from .target_index import EMPTY, MASK64, MIX, SlotIndex
from .target_view import (
    AMBIGUOUS,
    ATTEMPTS,
    CODE_DONE,
    CODE_FAILED,
    CODE_NEW,
    CODE_SUBMITTED,
    CODE_SUBMITTING,
    DONE,
    DONE_RECORDS,
    FAILED,
    GZIP,
    IN_INPUT,
    NEW,
    NO_COUNTS,
    REISSUED,
    SATURATED,
    STATUSES,
    SUBMITTED,
    SUBMITTING,
    TODO,
    WIDTH,
    TargetView,
)

#: ``bytearray.translate`` table: 1 for the done status code, 0 for the others
_DONE_ONLY = bytes(int(code == CODE_DONE) for code in range(256))
#: a new slot's flags and counters when this run's input names it
_NEW_INPUT = bytes([NO_COUNTS[0] | IN_INPUT]) + bytes(NO_COUNTS[1:])

__all__ = [
    "DONE",
    "FAILED",
    "NEW",
    "STATUSES",
    "SUBMITTED",
    "SUBMITTING",
    "TargetTable",
    "TargetView",
]


class TargetTable(SlotIndex):
    """The state of every target of a run or a journal, one slot each (see the module docstring).

    Slots are numbered in the order targets are first seen: a run adds its
    input's targets first, in input order, then replay adds those only the
    journal names; ``status`` adds them in journal order.
    """

    def __init__(self, kind: str | None) -> None:
        super().__init__(kind)
        #: each slot's status code (``STATUSES``): counted and searched at C speed
        self.status = bytearray()
        self._small = bytearray()  # flags and counters, WIDTH bytes per slot
        self._over: dict[tuple[int, int], int] = {}
        self._sizes: array[int] | None = None
        self.request_ids: dict[int, str] = {}
        self.submitted_at: dict[int, float] = {}
        self.errors: dict[int, str] = {}
        self._texts: dict[str, str] = {}
        #: how many slots this run's input named
        self.input_count = 0

    def _new_slot(self) -> None:
        self.status.append(CODE_NEW)
        self._small.extend(NO_COUNTS)
        if self._sizes is not None:
            self._sizes.append(0)

    # -- one target's fields --------------------------------------------------------

    def count(self, slot: int, counter: int) -> int:
        """A counter's value (``ATTEMPTS`` ...)."""
        value = self._small[slot * WIDTH + counter]
        return self._over.get((counter, slot), value) if value == SATURATED else value

    def _bump(self, slot: int, counter: int) -> None:
        at = slot * WIDTH + counter
        value = self._small[at]
        if value < SATURATED:
            self._small[at] = value + 1
        else:
            self._over[(counter, slot)] = self._over.get((counter, slot), SATURATED) + 1

    def has_flag(self, slot: int, flag: int) -> bool:
        return bool(self._small[slot * WIDTH] & flag)

    def size(self, slot: int) -> int:
        """The size of the file an earlier run saved for a done target (0 if none is known)."""
        return self._sizes[slot] if self._sizes is not None else 0

    def _set_size(self, slot: int, size: int) -> None:
        if self._sizes is None:
            if not size:
                return
            self._sizes = array("q", bytes(8 * self._count))
        self._sizes[slot] = size

    def set_flag(self, slot: int, flag: int, on: bool) -> None:
        """Set or clear a flag bit of ``slot``."""
        at = slot * WIDTH
        self._small[at] = self._small[at] | flag if on else self._small[at] & ~flag

    def _text(self, text: Any) -> Any:
        """One string object for every equal error text (a thousand failures, one message)."""
        if type(text) is not str:
            return text
        return self._texts.setdefault(text, text)

    # -- replay and changes -------------------------------------------------------

    def fold(self, target_id: str, record: dict[str, Any], *, live: bool = False) -> None:
        """Fold one journal record into its target's state (``live``: a change made by this run)."""
        self.apply(self.slot(target_id), record, live=live)

    def folder(self) -> Callable[[str, dict[str, Any]], None]:
        """``fold`` for a replay, a million times: ``done`` lines, nearly all, the short way."""
        slot_of, apply, done = self.slot, self.apply, self._done

        def fold(target_id: str, record: dict[str, Any]) -> None:
            if record["ev"] == "done":
                done(slot_of(target_id), record, False)
            else:
                apply(slot_of(target_id), record)

        return fold

    def apply(self, slot: int, record: dict[str, Any], *, live: bool = False) -> None:
        """What ``TargetState.apply`` does, on ``slot``'s arrays."""
        event = record.get("ev")
        if event == "done":
            self._done(slot, record, live)
        elif event == "submitted" or event == "push-conflict":
            self._submitted(slot, record)
        elif event == "submitting":
            self.status[slot] = CODE_SUBMITTING
            self.request_ids.pop(slot, None)
            self._bump(slot, ATTEMPTS)
        elif event == "ambiguous":
            self._bump(slot, AMBIGUOUS)
        elif event == "expired":
            self.status[slot] = CODE_NEW
            self.request_ids.pop(slot, None)
            self._bump(slot, REISSUED)
        elif event == "failed" or event == "stale":
            # stale: a done target whose file went missing or bad: export it again
            self.status[slot] = CODE_FAILED if event == "failed" else CODE_NEW
            if event == "stale":
                self.request_ids.pop(slot, None)
            self._set_or_drop(self.errors, slot, self._text(record.get("error")))

    def _done(self, slot: int, record: dict[str, Any], live: bool) -> None:
        self.status[slot] = CODE_DONE
        # The dicts hold only open and failed targets: mostly empty on a replay.
        for values in (self.request_ids, self.errors, self.submitted_at):
            if values:
                values.pop(slot, None)
        # Only a size replayed from an earlier run is ever read (the resume check).
        size = 0 if live else record.get("bytes", 0)
        if size or self._sizes is not None:
            self._set_size(slot, size)
        small, at = self._small, slot * WIDTH
        if record.get("gzip"):
            small[at] |= GZIP
        elif small[at] & GZIP:
            small[at] &= ~GZIP
        if small[at + DONE_RECORDS] < SATURATED - 1:
            small[at + DONE_RECORDS] += 1
        else:
            self._bump(slot, DONE_RECORDS)

    def _submitted(self, slot: int, record: dict[str, Any]) -> None:
        """A ``submitted`` line, or a ``push-conflict``, which reopens the request."""
        if record.get("ev") == "submitted":
            self._set_or_drop(self.submitted_at, slot, record.get("ts"))
        self.status[slot] = CODE_SUBMITTED
        self._set_or_drop(self.request_ids, slot, record.get("rid"))
        self.errors.pop(slot, None)

    @staticmethod
    def _set_or_drop(values: dict[int, Any], slot: int, value: Any) -> None:
        if value is None:
            values.pop(slot, None)
        else:
            values[slot] = value

    # -- the input ---------------------------------------------------------------

    def add_input(self, target_id: str) -> bool:
        """Mark ``target_id`` as named by this run's input; False if the input named it already.

        The reader's dedupe: a million IDs cost no set of strings beside the table.
        """
        return self.mark_input(self.slot(target_id))

    def add_inputs(self, target_ids: list[str]) -> list[str]:
        """``add_input`` for a block of canonical numbers below 19 digits: the IDs that were new.

        The reader's fast path (``input/plain_rows.py``) guarantees the form;
        the probe is ``slot``'s, inline, and the new slots' fields are made in
        one extend each rather than one ``_new_slot`` call apiece.
        """
        if not self.numeric:
            return [target_id for target_id in target_ids if self.add_input(target_id)]
        self.reserve(self._count + len(target_ids))
        index, ints, small = self._index, self._ints, self._small
        shift, mask = 64 - self._bits, (1 << self._bits) - 1
        first = count = self._count
        new: list[str] = []
        for target_id in target_ids:
            key = int(target_id)
            cell = ((key * MIX) & MASK64) >> shift
            slot = index[cell]
            while slot != EMPTY and ints[slot] != key:
                cell = (cell + 1) & mask
                slot = index[cell]
            if slot == EMPTY:
                index[cell] = count
                ints.append(key)
                count += 1
            elif slot >= first or small[slot * WIDTH] & IN_INPUT:
                continue  # named already (a slot made in this block is, its flags come below)
            else:
                small[slot * WIDTH] |= IN_INPUT
            new.append(target_id)
        made = count - first
        self._count = count
        self.status.extend(bytes([CODE_NEW]) * made)
        small.extend(_NEW_INPUT * made)
        if self._sizes is not None:
            self._sizes.frombytes(bytes(8 * made))
        self.input_count += len(new)
        return new

    def mark_input(self, slot: int) -> bool:
        """Mark ``slot`` as named by this run's input; False if it was already."""
        at = slot * WIDTH
        if self._small[at] & IN_INPUT:
            return False
        self._small[at] |= IN_INPUT
        self.input_count += 1
        return True

    def mark_todo(self, slot: int) -> None:
        """Plan ``slot`` for this run (``orchestrate._plan``): ``todo_ids`` yields it."""
        self._small[slot * WIDTH] |= TODO

    def todo_ids(self) -> Iterator[str]:
        """The IDs of the slots planned for this run, in slot order, made as they are reached."""
        small = self._small
        for slot in range(self._count):
            if small[slot * WIDTH] & TODO:
                yield self.id_of(slot)

    def done_outside_input(self) -> int:
        """How many done targets this run's input does not name (they stay in the archive)."""
        small = self._small
        return sum(1 for slot in self.slots_with(DONE) if not small[slot * WIDTH] & IN_INPUT)

    def status_of(self, slot: int) -> str:
        return STATUSES[self.status[slot]]

    def input_slots(self) -> Iterator[int]:
        """The slots this run's input names, in slot order: input order, as they are added first."""
        small = self._small
        for slot in range(self._count):
            if small[slot * WIDTH] & IN_INPUT:
                yield slot

    # -- views and iteration -----------------------------------------------------------

    def view(self, slot: int) -> TargetView:
        return TargetView(self, slot)

    def state(self, target_id: str) -> TargetView:
        """The state of ``target_id``, made on first sight."""
        return TargetView(self, self.slot(target_id))

    def get(self, target_id: str) -> TargetView | None:
        slot = self.find(target_id)
        return TargetView(self, slot) if slot >= 0 else None

    def __getitem__(self, target_id: str) -> TargetView:
        slot = self.find(target_id)
        if slot < 0:
            raise KeyError(target_id)
        return TargetView(self, slot)

    def items(self) -> Iterator[tuple[str, TargetView]]:
        """Every target and its state, in slot order (each view made as it is reached)."""
        for slot in range(self._count):
            yield self.id_of(slot), TargetView(self, slot)

    def values(self) -> Iterator[TargetView]:
        for slot in range(self._count):
            yield TargetView(self, slot)

    def slots_with(self, status: str) -> Iterator[int]:
        """The slots in ``status``, in slot order (a C-speed scan of the status bytes)."""
        code = STATUSES.index(status)
        found = self.status.find(code)
        while found >= 0:
            yield found
            found = self.status.find(code, found + 1)

    def tally(self) -> dict[str, int]:
        """How many targets are in each status, and the counters and replayed sizes summed."""
        found = {name: self.status.count(code) for code, name in enumerate(STATUSES)}
        sizes = self._sizes
        # The sizes of done slots, picked at C speed: a byte 1 per done slot selects.
        found["bytes"] = sum(compress(sizes, self.status.translate(_DONE_ONLY))) if sizes else 0
        for name, counter in (("reissued", REISSUED), ("ambiguous", AMBIGUOUS)):
            counts = self._small[counter::WIDTH]
            found[name] = sum(counts) + sum(
                value - SATURATED for (which, _), value in self._over.items() if which == counter
            )
        return found
