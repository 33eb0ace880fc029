"""What a resume does before its first request, timed on its own: ``python resume_replay.py DIR CSV``.

``run`` on a directory with a journal reads the whole input into the run's
target table, opens the journal and replays it into the same table (with
every ``done`` line's file), then plans: each done input target is checked
where its line says its file is. This script does exactly those steps with
the exporter's own code, but the check is left out (it would ``stat`` a
million files the benchmark does not write), and prints one JSON line: the
targets, how many the plan would skip, and the seconds each step took.
``benchmarks/run.py --scenario memory-resume`` runs it under ``os.wait4``
for the peak RSS.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from batch_export.evidence.journal import DONE, Journal
from batch_export.input.ids import Target, TargetKind
from batch_export.input.reader import InvalidRow, TargetReader

try:
    from batch_export.evidence.target_table import TargetTable
except ImportError:  # the code before issue 17 (--code-dir): a list of IDs, a dict of states
    TargetTable = None  # type: ignore[assignment,misc]


def main(out_dir: Path, csv_path: Path) -> dict[str, object]:
    """The resume's steps up to its plan; their counts and times."""
    if TargetTable is None:
        return _before_issue_17(out_dir, csv_path)
    started = time.perf_counter()
    targets = TargetTable(TargetKind.PROFILE.value)
    reader = TargetReader(csv_path, TargetKind.PROFILE, dedupe=targets.add_input)
    # As orchestrate._read_input: only the invalid rows come out, the targets go to the table.
    if hasattr(reader, "invalid_rows"):
        invalid = sum(1 for _ in reader.invalid_rows())
    else:  # a tree before the reader's fast path (--code-dir)
        invalid = sum(1 for item in reader if isinstance(item, InvalidRow))
    read = time.perf_counter()
    journal = Journal.open(out_dir, TargetKind.PROFILE.value, targets)
    replayed = time.perf_counter()
    states = journal.states
    done = sum(1 for slot in states.input_slots() if states.status_of(slot) == DONE)
    planned = time.perf_counter()
    return {
        "targets": states.input_count,
        "invalid": invalid,
        "journal_lines": journal.lines,
        "done": done,
        "read_s": round(read - started, 3),
        "replay_s": round(replayed - read, 3),
        "plan_s": round(planned - replayed, 3),
    }


def _before_issue_17(out_dir: Path, csv_path: Path) -> dict[str, object]:
    """The same steps as the code before the target table did them."""
    started = time.perf_counter()
    ids: list[str] = []
    invalid = 0
    for item in TargetReader(csv_path, TargetKind.PROFILE):
        if isinstance(item, Target):
            ids.append(item.id)
        else:
            invalid += 1
    read = time.perf_counter()
    journal = Journal.open(out_dir, TargetKind.PROFILE.value)
    for target_id in ids:
        journal.state(target_id).in_input = True
    replayed = time.perf_counter()
    done = sum(1 for target_id in ids if journal.states[target_id].status == DONE)
    planned = time.perf_counter()
    return {
        "targets": len(ids),
        "invalid": invalid,
        "journal_lines": journal.lines,
        "done": done,
        "read_s": round(read - started, 3),
        "replay_s": round(replayed - read, 3),
        "plan_s": round(planned - replayed, 3),
    }


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), Path(sys.argv[2]))))
