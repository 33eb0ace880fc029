"""One target's state as an object, and the layout of a target's slot in ``TargetTable``.

``TargetView`` is made on demand (``journal.state(id)``, the manifest's
entries) and reads the table's arrays as they are now, so a target's task
can keep one while the journal changes its state. Only the constants here
say which byte of a slot holds what.
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = [
    "DONE",
    "FAILED",
    "NEW",
    "STATUSES",
    "SUBMITTED",
    "SUBMITTING",
    "TargetView",
]

# Target statuses held in memory (manifest statuses are derived from these).
NEW = "new"
SUBMITTING = "submitting"  # a POST was (maybe) sent; no request ID known yet
SUBMITTED = "submitted"
DONE = "done"
FAILED = "failed"
#: the statuses by their code, the byte a slot holds
STATUSES = (NEW, SUBMITTING, SUBMITTED, DONE, FAILED)
CODE_NEW, CODE_SUBMITTING, CODE_SUBMITTED, CODE_DONE, CODE_FAILED = range(5)

IN_INPUT = 1  # flag bits
GZIP = 2
TODO = 4

# A slot's small fields: ``WIDTH`` bytes of ``TargetTable``'s, at these offsets.
FLAGS, ATTEMPTS, AMBIGUOUS, REISSUED, DONE_RECORDS = range(5)
WIDTH = 5
NO_COUNTS = bytes(WIDTH)
SATURATED = 255  # a counter byte at this value continues in the side dict


class _Slots(Protocol):
    """What a view reads of its table (``TargetTable``)."""

    status: bytearray
    request_ids: dict[int, str]
    submitted_at: dict[int, float]
    errors: dict[int, str]
    input_count: int

    def count(self, slot: int, counter: int) -> int: ...
    def size(self, slot: int) -> int: ...
    def has_flag(self, slot: int, flag: int) -> bool: ...
    def set_flag(self, slot: int, flag: int, on: bool) -> None: ...
    def mark_input(self, slot: int) -> bool: ...
    def apply(self, slot: int, record: dict[str, Any], *, live: bool = False) -> None: ...


class TargetView:
    """One target's state, read from (and written to) its table's arrays as it is now."""

    __slots__ = ("_slot", "_table")

    def __init__(self, table: _Slots, slot: int) -> None:
        self._table = table
        self._slot = slot

    @property
    def status(self) -> str:
        return STATUSES[self._table.status[self._slot]]

    @property
    def request_id(self) -> str | None:
        return self._table.request_ids.get(self._slot)

    @property
    def submitted_at(self) -> float | None:
        """When the open request was made (its ``submitted`` line), for the ``done`` line."""
        return self._table.submitted_at.get(self._slot)

    @property
    def error(self) -> str | None:
        return self._table.errors.get(self._slot)

    @property
    def attempts(self) -> int:
        """POSTs sent for this target, over all runs."""
        return self._table.count(self._slot, ATTEMPTS)

    @property
    def ambiguous(self) -> int:
        """POSTs that may have created a request we never learnt of."""
        return self._table.count(self._slot, AMBIGUOUS)

    @property
    def reissued(self) -> int:
        """Requests that expired or vanished and were asked again."""
        return self._table.count(self._slot, REISSUED)

    @property
    def done_records(self) -> int:
        return self._table.count(self._slot, DONE_RECORDS)

    @property
    def bytes(self) -> int:
        """Size of a file saved by an earlier run, for the cheap resume check."""
        return self._table.size(self._slot)

    @property
    def gzip(self) -> bool:
        return self._table.has_flag(self._slot, GZIP)

    @property
    def in_input(self) -> bool:
        """Named in this run's input."""
        return self._table.has_flag(self._slot, IN_INPUT)

    @in_input.setter
    def in_input(self, value: bool) -> None:
        if value:
            self._table.mark_input(self._slot)
        elif self.in_input:
            self._table.set_flag(self._slot, IN_INPUT, False)
            self._table.input_count -= 1

    @property
    def todo(self) -> bool:
        """Planned for this run (``orchestrate._plan``)."""
        return self._table.has_flag(self._slot, TODO)

    @todo.setter
    def todo(self, value: bool) -> None:
        self._table.set_flag(self._slot, TODO, value)

    def apply(self, record: dict[str, Any], *, live: bool = False) -> None:
        """Fold one journal record into this state."""
        self._table.apply(self._slot, record, live=live)
