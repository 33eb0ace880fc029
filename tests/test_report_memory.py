"""The report's replay of a big journal: the compact table ``status`` uses, not an object per target."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

from batch_export.evidence.report_data import read_journal
from batch_export.input.ids import Target, TargetKind
from batch_export.storage.naming import export_relname

TARGETS = 50_000
#: when the journal's done lines were written (1 ms apart)
START = 1_764_331_200.0


def _done_journal(out: Path, rows: int) -> None:
    """A journal of one run line and ``rows`` done records, as a run writes them (no chain)."""
    out.mkdir()
    header = {"format": "batch-export-journal", "version": 1, "kind": "profile", "created": START}
    run = {"ts": START, "ev": "run", "run": 1, "targets": rows, "invalid": 0, "todo": rows}
    with (out / "journal.jsonl").open("w", encoding="utf-8") as handle:
        handle.write(json.dumps(header) + "\n" + json.dumps(run) + "\n")
        handle.writelines(
            json.dumps(
                {
                    "ts": START + number / 1000,
                    "ev": "done",
                    "id": str(number),
                    "rid": f"dr_{number:x}",
                    "file": export_relname(Target(TargetKind.PROFILE, str(number))),
                    "bytes": 300,
                    "sha256": f"{number:064x}",
                }
            )
            + "\n"
            for number in range(1, rows + 1)
        )


def test_the_report_reads_a_journal_in_under_100_bytes_a_target(tmp_path: Path) -> None:
    """50,000 done targets: the done times, run line and damage, at < 100 B a target at the peak.

    A dict of ``TargetState`` objects (the report before) peaked at ~300 B a
    target; the table and the times' array need ~50.
    """
    out = tmp_path / "out"
    _done_journal(out, TARGETS)
    tracemalloc.start()
    try:
        times, runs, damage = read_journal(out)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(times) == TARGETS
    assert (min(times), max(times)) == (START + 0.001, START + TARGETS / 1000)
    assert [run["run"] for run in runs] == [1]
    assert damage is None
    assert peak / TARGETS < 100, f"{peak / TARGETS:.0f} B a target"
