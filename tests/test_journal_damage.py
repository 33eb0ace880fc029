"""A damaged journal line is damage, not a crash: told apart, reported by line, survived."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batch_export.errors import ConfigError
from batch_export.evidence.journal import DONE, SUBMITTED, Journal
from batch_export.evidence.replay import MAX_DAMAGED_LINES, TargetState, replay
from batch_export.evidence.status import collect_status, format_status

from .conftest import StartSimulator, api_args, read_manifest, run_cli, write_ids


async def _journal_with_targets(out: Path, count: int) -> Path:
    """A journal with a submitted and a done line for targets 1..count (header on line 1)."""
    journal = Journal.open(out, "profile")
    for n in range(1, count + 1):
        journal.note("submitted", str(n), rid=f"r{n}")
        journal.note("done", str(n), rid=f"r{n}", file=f"f{n}", bytes=n, sha256="ab")
    await journal.close()
    return out / "journal.jsonl"


def _replace_line(path: Path, number: int, content: bytes) -> None:
    """Overwrite line ``number`` (1-based) with ``content``, keeping its newline."""
    lines = path.read_bytes().splitlines(keepends=True)
    lines[number - 1] = content + b"\n"
    path.write_bytes(b"".join(lines))


async def test_a_damaged_middle_line_is_reported_by_number_and_skipped(tmp_path: Path) -> None:
    """A complete middle line that is not JSON is damage: named by line, skipped, file kept, no crash talk."""
    path = await _journal_with_targets(tmp_path, 3)
    _replace_line(path, 3, b'{"ts":1.0,"ev":"done","id":"1",\x00\x00 garbage')  # target 1's done
    size = path.stat().st_size
    journal = Journal.open(tmp_path, "profile")
    await journal.close()
    assert journal.damaged_lines == [3] and journal.damaged_count == 1
    assert not journal.torn_tail
    assert path.stat().st_size == size  # damage stays in the file: it is evidence, not a tail
    assert journal.states["1"].status == SUBMITTED  # its done line was lost: exported again
    assert journal.states["2"].status == DONE and journal.states["3"].status == DONE
    [warning] = journal.warnings()
    assert warning.startswith("journal.jsonl: line 3 is damaged (not valid JSON); it was skipped")
    assert "file was changed, or the disk is failing" in warning
    assert "crash" not in warning


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b'["a", "list"]', "not a JSON object"),
        (b'{"ts": 1.0, "ev": "dnoe", "id": "2"}', "not a journal record: no known event"),
        (b'{"ts": 1.0, "ev": "done", "id": 2, "bytes": 2}', "not a journal record: no target ID"),
        (
            b'{"ts": 1.0, "ev": "done", "id": "2", "bytes": "two"}',
            "not a journal record: a bad size",
        ),
        (b'{"ts": 1.0, "ev": "submitted", "id": "2"}', "not a journal record: no request ID"),
    ],
)
async def test_valid_json_that_is_not_a_record_is_damage_too(
    tmp_path: Path, line: bytes, reason: str
) -> None:
    """JSON that replay cannot use (wrong shape, unknown event, bad field) is damage, not folded in."""
    path = await _journal_with_targets(tmp_path, 2)
    _replace_line(path, 5, line)  # target 2's done line
    states: dict[str, TargetState] = {}
    _, _, damage = replay(path, states)
    assert damage.lines == [5] and damage.reasons == [reason]
    assert states["2"].status == SUBMITTED and states["1"].status == DONE


async def test_a_damaged_done_line_is_not_used_for_the_manifest(tmp_path: Path) -> None:
    """A done line with a bad size is skipped by replay and by the manifest reader alike."""
    path = await _journal_with_targets(tmp_path, 1)
    with path.open("ab") as handle:
        handle.write(b'{"ts":2.0,"ev":"done","id":"1","rid":"r1","file":"f1","bytes":"x"}\n')
    journal = Journal.open(tmp_path, "profile")
    journal.state("1").in_input = True
    await journal.close()
    assert journal.damaged_lines == [4]
    [(target_id, record, _)] = list(journal.final_done_records())
    assert target_id == "1" and record["bytes"] == 1


async def test_many_damaged_lines_are_counted_but_only_the_first_kept(tmp_path: Path) -> None:
    """Thousands of damaged lines: a capped list of numbers, the full count, five listed."""
    path = await _journal_with_targets(tmp_path, 1)
    with path.open("ab") as handle:
        handle.write(b"not json\n" * (MAX_DAMAGED_LINES + 50))
    journal = Journal.open(tmp_path, "profile")
    await journal.close()
    assert journal.damaged_count == MAX_DAMAGED_LINES + 50
    assert journal.damaged_lines == list(range(4, 4 + MAX_DAMAGED_LINES))
    [warning] = journal.warnings()
    assert f"lines 4, 5, 6, 7, 8 and {MAX_DAMAGED_LINES + 45} more are damaged" in warning
    assert "they were skipped" in warning


async def test_a_torn_last_line_is_a_crash_and_truncated_away(tmp_path: Path) -> None:
    """A last line without its newline is a crash's torn tail: dropped, truncated, crash message only."""
    path = await _journal_with_targets(tmp_path, 1)
    whole = path.read_bytes()
    with path.open("ab") as handle:
        handle.write(b'{"ts":2.0,"ev":"submitted","id":"2","ri')
    journal = Journal.open(tmp_path, "profile")
    await journal.close()
    assert journal.torn_tail and journal.damaged_lines == [] and journal.damaged_count == 0
    assert path.read_bytes() == whole
    assert journal.warnings() == [
        "journal: dropped 1 torn line left by a crash (its write never finished)"
    ]


async def test_damage_and_a_torn_tail_get_their_own_messages(tmp_path: Path) -> None:
    """Both at once: the damage names its line, the crash message speaks only of the torn tail."""
    path = await _journal_with_targets(tmp_path, 2)
    _replace_line(path, 2, b"}{")
    with path.open("ab") as handle:
        handle.write(b'{"ts":2.0,"ev":')
    journal = Journal.open(tmp_path, "profile")
    await journal.close()
    damaged, torn = journal.warnings()
    assert "line 2 is damaged" in damaged and "crash" not in damaged
    assert "torn" in torn and "crash" in torn and "damaged" not in torn
    assert path.read_bytes().endswith(b"\n")


async def test_a_damaged_header_stops_the_run(tmp_path: Path) -> None:
    """Line 1 damaged: nothing says what the directory holds, so Journal.open refuses, naming line 1."""
    path = await _journal_with_targets(tmp_path, 1)
    _replace_line(path, 1, b'{"format": "batch-export-journal", "vers')
    with pytest.raises(ConfigError, match=r"line 1, the header, is damaged \(not valid JSON\)"):
        Journal.open(tmp_path, "profile")


def _corrupt_a_middle_line(out: Path) -> int:
    """Break the first done line of a finished run's journal; its 1-based number."""
    path = out / "journal.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    number = next(i for i, line in enumerate(lines, 1) if b'"ev":"done"' in line)
    assert number < len(lines)
    lines[number - 1] = lines[number - 1][:20] + b"#" * 10 + b"\n"
    path.write_bytes(b"".join(lines))
    return number


def test_a_run_warns_of_damage_by_line_and_goes_on(
    simulator: StartSimulator, tmp_path: Path
) -> None:
    """A damaged middle line: the run's warning names it without saying crash, and the run finishes."""
    sim = simulator()
    ids = write_ids(tmp_path / "ids.csv", range(1, 11))
    out = tmp_path / "out"
    args = ["run", str(ids), "--out", str(out), *api_args(sim), "--no-progress"]
    assert run_cli(args, sim.token).exit_code == 0
    number = _corrupt_a_middle_line(out)
    again = run_cli(args, sim.token)
    assert again.exit_code == 0, again.stderr
    assert f"journal.jsonl: line {number} is damaged (not valid JSON)" in again.stderr
    assert "crash" not in again.stderr
    assert {e["status"] for e in read_manifest(out)} == {"done"}


def test_a_run_after_a_torn_tail_still_says_crash(
    simulator: StartSimulator, tmp_path: Path
) -> None:
    """A torn last line: the run gives the crash message, not a damage warning, and truncates it."""
    sim = simulator()
    ids = write_ids(tmp_path / "ids.csv", range(1, 6))
    out = tmp_path / "out"
    args = ["run", str(ids), "--out", str(out), *api_args(sim), "--no-progress"]
    assert run_cli(args, sim.token).exit_code == 0
    with (out / "journal.jsonl").open("ab") as handle:
        handle.write(b'{"ts": 1.0, "ev": "submitted", "id": "3", "ri')
    again = run_cli(args, sim.token)
    assert again.exit_code == 0, again.stderr
    assert "dropped 1 torn line left by a crash" in again.stderr
    assert "damaged" not in again.stderr and "unreadable" not in again.stderr
    assert b'"id": "3", "ri' not in (out / "journal.jsonl").read_bytes()


def test_status_reports_damage_by_line(simulator: StartSimulator, tmp_path: Path) -> None:
    """batch-export status (text and --json) names the damaged line; a line being written is not damage."""
    sim = simulator()
    ids = write_ids(tmp_path / "ids.csv", range(1, 6))
    out = tmp_path / "out"
    assert run_cli(["run", str(ids), "--out", str(out), *api_args(sim)], sim.token).exit_code == 0
    number = _corrupt_a_middle_line(out)
    with (out / "journal.jsonl").open("ab") as handle:
        handle.write(b'{"ts": 1.0, "ev": "subm')  # a line still being written
    report = collect_status(out)
    assert report["damaged_lines"] == [number] and report["damaged_count"] == 1
    assert report["done"] == 4
    assert f"line {number} is damaged" in format_status(report)
    shown = run_cli(["status", str(out)], None)
    assert shown.exit_code == 0 and f"line {number} is damaged" in shown.stdout
    as_json = json.loads(run_cli(["status", str(out), "--json"], None).stdout)
    assert as_json["damaged_lines"] == [number]
