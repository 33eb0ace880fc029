"""The journal's ``done`` lines read back: for the manifest at the end of a run, for resume before it.

Finished targets keep no request ID, hash, file name or ``store`` record in
memory (a million of them must stay small); whoever needs those reads them
here, from the journal, through the one line reader (``replay.read_lines``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .replay import DONE, JournalDamage, read_lines
from .target_table import TargetTable, TargetView

__all__ = ["final_done_records"]


def final_done_records(
    path: Path, states: TargetTable, *, only_input: bool = True
) -> Iterator[tuple[str, dict[str, Any], TargetView]]:
    """Each done target, with its last ``done`` line, in journal order.

    ``only_input``: only the targets this run's input names (the resume
    check); else every target whose export the archive holds (the manifest).

    Reads the journal once more instead of keeping every request ID, hash or
    ``store`` record in memory; changes no state, so it serves the manifest at
    the end of a run and the resume check of a sink that compares what it
    stores with the record (``Sink.resume_checks_store``) before it. Only the
    rare target with several ``done`` lines costs memory, to recognise its
    last one. (The prefilter is loose, as a line edited by hand may have
    spaces in it: every line replay counted must be seen.)
    """
    seen: dict[str, int] = {}
    for number, record in read_lines(path, JournalDamage(), containing=b'"done"'):
        if number == 1 or record["ev"] != DONE:
            continue
        target_id = record["id"]
        state = states.get(target_id)
        if state is None or state.status != DONE or (only_input and not state.in_input):
            continue
        if state.done_records > 1:
            count = seen.get(target_id, 0) + 1
            seen[target_id] = count
            if count < state.done_records:
                continue
        yield target_id, record, state
