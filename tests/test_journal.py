"""The journal's contract: awaited and unawaited lines, failed writes, and where it says exports are."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from pathlib import Path

import pytest

from batch_export.errors import ExportError
from batch_export.evidence.journal import DONE, SUBMITTED, Journal, TargetState, TargetTable, replay
from batch_export.evidence.journal_writer import JournalWriter
from batch_export.evidence.recorded import RecordedFiles
from batch_export.evidence.replay import _parse
from batch_export.input.ids import Target, TargetKind
from batch_export.storage.naming import export_relname

from .conftest import StartSimulator, api_args, read_manifest, run_cli, write_ids


def _events(path: Path) -> list[tuple[str, str]]:
    lines = [json.loads(line) for line in path.read_text().splitlines()[1:]]
    return [(line["ev"], line["id"]) for line in lines]


def _full_disk_journal(tmp_path: Path) -> Journal:
    """A journal whose every write fails with ENOSPC, as on a full disk."""
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    fd = os.open("/dev/full", os.O_WRONLY)
    return Journal(tmp_path / "journal.jsonl", fd, {"kind": "profile"}, TargetTable("profile"))


async def test_noted_lines_reach_the_file_in_order_with_awaited_ones(tmp_path: Path) -> None:
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


async def test_a_failed_write_fails_the_waiting_line_every_later_one_and_close(
    tmp_path: Path,
) -> None:
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


async def test_a_failed_write_of_unawaited_lines_is_reported_by_close(tmp_path: Path) -> None:
    """Lines nobody waited for still report their failure: close() raises instead of losing them."""
    journal = _full_disk_journal(tmp_path)
    journal.note("submitted", "1", rid="r1")
    journal.note("done", "1", rid="r1", file="f", bytes=1, sha256="00")
    with pytest.raises(ExportError, match="cannot write the journal"):
        await journal.close()


class GatedWriter(JournalWriter):
    """A journal writer whose writes wait in their thread until the test opens the gate."""

    def __init__(self, path: Path, fd: int) -> None:
        super().__init__(path, fd, head=None, lines=0)
        self.gate = threading.Event()

    def _write_durably(self, lines: list[str]) -> None:
        self.gate.wait(30)
        super()._write_durably(lines)


def _gated_journal(path: Path, fd: int) -> tuple[Journal, GatedWriter]:
    journal = Journal(path, fd, {"kind": "profile"}, TargetTable("profile"))
    journal.out = writer = GatedWriter(path, fd)
    return journal, writer


async def _until_a_write_is_under_way(writer: JournalWriter) -> None:
    """Poll, with a deadline, until the flusher has handed a batch to its thread."""
    deadline = asyncio.get_running_loop().time() + 10
    while writer._writing is None or writer._buffer:
        assert asyncio.get_running_loop().time() < deadline, "the flusher never started a write"
        await asyncio.sleep(0)


async def test_a_line_queued_during_a_failing_write_fails_at_once(tmp_path: Path) -> None:
    """A caller that queued its line while a write was failing is told then, not at close()."""
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    journal, writer = _gated_journal(tmp_path / "journal.jsonl", os.open("/dev/full", os.O_WRONLY))
    first = asyncio.create_task(journal.record("submitting", "1"))
    await _until_a_write_is_under_way(writer)
    second = asyncio.create_task(journal.record("submitting", "2"))
    await asyncio.sleep(0)  # let it queue its line behind the write under way
    writer.gate.set()
    for waiting in (first, second):
        with pytest.raises(OSError, match="cannot write the journal"):
            await asyncio.wait_for(waiting, 10)
    with pytest.raises(ExportError):
        await journal.close()


async def test_close_lets_a_cancelled_flushers_write_end_before_writing_the_rest(
    tmp_path: Path,
) -> None:
    """A stop that cancels the flusher mid-write must not reorder or interleave lines."""
    path = tmp_path / "journal.jsonl"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    journal, writer = _gated_journal(path, fd)
    journal.note("submitted", "1", rid="r1")
    journal.note("submitted", "2", rid="r2")
    await _until_a_write_is_under_way(writer)
    assert writer._flusher is not None
    writer._flusher.cancel()  # what a forced stop does to pending tasks
    journal.note("done", "1", rid="r1", file="f", bytes=1, sha256="00")
    closing = asyncio.create_task(journal.close())
    await asyncio.sleep(0)
    assert not closing.done()  # waiting for the write still under way in its thread
    writer.gate.set()
    await asyncio.wait_for(closing, 10)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(line["ev"], line["id"]) for line in lines] == [
        ("submitted", "1"),
        ("submitted", "2"),
        ("done", "1"),
    ]


def _default(target_id: str, suffix: str = ".json") -> str:
    return export_relname(Target(TargetKind.PROFILE, target_id), suffix=suffix)


async def test_recorded_file_is_the_last_done_lines_and_only_other_names_are_kept(
    tmp_path: Path,
) -> None:
    """recorded_file gives each done target's recorded file, live and after replay; defaults cost no memory."""
    journal = Journal.open(tmp_path, "profile")
    journal.note("done", "1", rid="r1", file=_default("1"), bytes=1, sha256="00")
    journal.note("done", "2", rid="r2", file="exports/old/2.json", bytes=1, sha256="00")
    journal.note("done", "3", rid="r3", file=_default("3", ".json.gz"), bytes=1, gzip=True)
    journal.note("done", "4", rid="r4", file="exports/old/4.json", bytes=1, sha256="00")
    journal.note("stale", "4", error="file is missing")
    journal.note("done", "4", rid="r5", file=_default("4"), bytes=1, sha256="00")
    journal.note("submitted", "5", rid="r6")
    await journal.close()
    for reopened in (journal, Journal.open(tmp_path, "profile")):
        assert reopened.recorded_file("1") == _default("1")
        assert reopened.recorded_file("2") == "exports/old/2.json"
        assert reopened.recorded_file("3") == _default("3", ".json.gz")
        assert reopened.recorded_file("4") == _default("4")  # its last done line's
        assert reopened.recorded_file("5") is None and reopened.recorded_file("6") is None
    files = RecordedFiles("profile")
    replay(tmp_path / "journal.jsonl", {}, files=files)
    assert len(files) == 1  # only target 2's name is not the default


@pytest.mark.parametrize(
    "line",
    [
        b'{"ts":1.5,"ev":"done","id":"1","file":"exports/x","bytes":2}\n',
        b'{"a": "caf\xc3\xa9", "b": "\\ud800"}\n',
        b'{"a": 1}   \n',
        b'{"a": 1} x\n',
        b'{"a": 1}{"b": 2}\n',
        b'{"a": "\xff"}\n',
        b'{"a": tru}\n',
        b"{\n",
        b'\xef\xbb\xbf{"a": 1}\n',
        b'  {"a": 1}\n',
        b'{\x00"\x00a\x00"\x00:\x001\x00}\x00\n\x00',
        b"[1, 2]\n",
        b"\n",
    ],
)
def test_a_line_is_parsed_exactly_as_json_loads_parses_it(line: bytes) -> None:
    """The replay's fast parse gives json.loads' result, or fails where json.loads fails."""
    try:
        expected: object = json.loads(line)
    except ValueError:
        with pytest.raises(ValueError):
            _parse(line)
    else:
        assert _parse(line) == expected


def test_an_export_under_a_name_the_journal_recorded_is_kept(
    simulator: StartSimulator, tmp_path: Path
) -> None:
    """A done line naming a non-default file: the manifest names it, resume keeps it, verify finds it.

    The line is edited by hand here, which the journal's hash chain shows: that
    is the only problem verify may report.
    """
    sim = simulator()
    ids = write_ids(tmp_path / "ids.csv", [1, 2])
    out = tmp_path / "out"
    args = ["run", str(ids), "--out", str(out), *api_args(sim), "--no-progress"]
    assert run_cli(args, sim.token).exit_code == 0
    # As an earlier naming would have left it: the export elsewhere, its done line saying where.
    legacy = "exports/profile/legacy/1.json"
    (out / legacy).parent.mkdir(parents=True)
    (out / _default("1")).rename(out / legacy)
    journal = out / "journal.jsonl"
    text = journal.read_text()
    assert text.count(f'"file":"{_default("1")}"') == 1
    journal.write_text(text.replace(f'"file":"{_default("1")}"', f'"file":"{legacy}"'))
    again = run_cli(args, sim.token)
    assert again.exit_code == 0, again.stderr
    assert sim.stats()["posts_per_target"]["profile:1"] == 1  # intact: not exported again
    assert not (out / _default("1")).exists()
    entries = {entry["id"]: entry for entry in read_manifest(out)}
    assert entries["1"]["status"] == "done" and entries["1"]["file"] == legacy
    assert entries["2"]["file"] == _default("2")
    checked = run_cli(["verify", str(out), "--json"], None)
    report = json.loads(checked.stdout)
    assert report["verified"] == 2 and report["unknown_files"] == []
    # the chain breaks at the edit (and seal 1 no longer finds its last line, if that is the one)
    assert {problem["check"] for problem in report["problems"]} == {"journal"}


async def test_lines_orjson_refuses_are_written_by_json_and_replay(tmp_path: Path) -> None:
    """An integer past 64 bits and a lone surrogate (orjson refuses both) still make lines."""
    journal = Journal.open(tmp_path, "profile")
    await journal.record("failed", "1", error="x", attempts=2**70)
    await journal.record("failed", "2", error="bad \udc80 byte")
    await journal.record("failed", "3", error="Zoë")
    await journal.close()
    lines = (tmp_path / "journal.jsonl").read_bytes().splitlines()[1:]
    records = [json.loads(line) for line in lines]
    assert [r["id"] for r in records] == ["1", "2", "3"]
    assert records[0]["attempts"] == 2**70
    assert records[1]["error"] == "bad \udc80 byte"
    assert records[2]["error"] == "Zoë"
    states: dict[str, TargetState] = {}
    replay(tmp_path / "journal.jsonl", states)
    assert set(states) == {"1", "2", "3"}
