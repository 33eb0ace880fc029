"""The journal's durability contract: awaited and unawaited lines, and failed writes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from batch_export.errors import ExportError
from batch_export.journal import DONE, SUBMITTED, Journal, TargetState, replay


def _events(path: Path) -> list[tuple[str, str]]:
    lines = [json.loads(line) for line in path.read_text().splitlines()[1:]]
    return [(line["ev"], line["id"]) for line in lines]


def _full_disk_journal(tmp_path: Path) -> Journal:
    """A journal whose every write fails with ENOSPC, as on a full disk."""
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    fd = os.open("/dev/full", os.O_WRONLY)
    return Journal(tmp_path / "journal.jsonl", fd, {"kind": "profile"}, {})


async def test_noted_lines_reach_the_file_in_order_with_awaited_ones(tmp_path):
    """note() does not wait, yet close() leaves every line on disk in the order made."""
    journal = Journal.open(tmp_path, "profile")
    await journal.record("submitting", "1")
    journal.note("submitted", "1", rid="r1")
    journal.note("submitted", "2", rid="r2")
    await journal.record("failed", "3", error="refused")
    journal.note("done", "1", rid="r1", file="f", bytes=10, sha256="ab")
    assert journal.state("1").status == DONE  # state changes at once, before the write
    await journal.close()

    assert _events(tmp_path / "journal.jsonl") == [
        ("submitting", "1"),
        ("submitted", "1"),
        ("submitted", "2"),
        ("failed", "3"),
        ("done", "1"),
    ]
    states: dict[str, TargetState] = {}
    replay(tmp_path / "journal.jsonl", states)
    assert states["1"].status == DONE and states["1"].bytes == 10
    assert states["2"].status == SUBMITTED and states["2"].request_id == "r2"


async def test_a_failed_write_fails_the_waiting_line_every_later_one_and_close(tmp_path):
    """After a write fails nothing more is claimed durable: record, note and close all raise."""
    journal = _full_disk_journal(tmp_path)
    with pytest.raises(OSError, match="cannot write the journal"):
        await journal.record("submitting", "1")
    with pytest.raises(OSError, match="cannot write the journal"):
        journal.note("submitted", "1", rid="r1")
    with pytest.raises(OSError, match="cannot write the journal"):
        await journal.record("failed", "2", error="x")
    with pytest.raises(ExportError, match=r"journal\.jsonl: No space left on device"):
        await journal.close()


async def test_a_failed_write_of_unawaited_lines_is_reported_by_close(tmp_path):
    """Lines nobody waited for still report their failure: close() raises instead of losing them."""
    journal = _full_disk_journal(tmp_path)
    journal.note("submitted", "1", rid="r1")
    journal.note("done", "1", rid="r1", file="f", bytes=1, sha256="00")
    with pytest.raises(ExportError, match="cannot write the journal"):
        await journal.close()
