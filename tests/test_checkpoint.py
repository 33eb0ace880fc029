"""The state checkpoint: a cache that gives exactly a full replay's states, or is not used."""

from __future__ import annotations

import hashlib
import shutil
import stat
from array import array
from pathlib import Path
from typing import Any

from batch_export.evidence.checkpoint import CHECKPOINT_NAME, replay_journal, write_checkpoint
from batch_export.evidence.journal import Journal
from batch_export.evidence.recorded import RecordedFiles
from batch_export.evidence.replay import JOURNAL_NAME, replay
from batch_export.evidence.status import collect_status
from batch_export.evidence.target_table import TargetTable
from batch_export.evidence.target_view import AMBIGUOUS, ATTEMPTS, DONE_RECORDS, REISSUED

from .conftest import StartSimulator, api_args, run_cli, write_ids


def _fields(table: TargetTable) -> list[tuple[Any, ...]]:
    """Every slot's every field, in slot order."""
    return [
        (
            target_id,
            view.status,
            view.request_id,
            view.error,
            view.submitted_at,
            view.bytes,
            view.gzip,
            view.in_input,
            *(table.count(slot, counter) for counter in (ATTEMPTS, AMBIGUOUS, REISSUED)),
            table.count(slot, DONE_RECORDS),
        )
        for slot, (target_id, view) in enumerate(table.items())
    ]


def _full(out_dir: Path, states: TargetTable | None = None) -> tuple[Any, ...]:
    states = TargetTable("profile") if states is None else states
    files = RecordedFiles("profile")
    runs: list[dict[str, Any]] = []
    header, end, damage = replay(out_dir / JOURNAL_NAME, states, files=files, runs=runs)
    return header, end, damage, _fields(states), files.others(), runs


def _as_tuple(found: Any) -> tuple[Any, ...]:
    return (
        found.header,
        found.good_end,
        found.damage,
        _fields(found.states),
        found.files.others(),
        found.runs,
    )


async def _first_run(out_dir: Path) -> None:
    journal = Journal.open(out_dir, "profile")
    await journal.record_run(targets=6)
    for target in ("1", "2", "3", "4", "5"):
        await journal.record("submitting", target)
    await journal.record("ambiguous", "2")
    for target in ("1", "2", "3"):
        await journal.record("submitted", target, rid=f"r{target}")
    await journal.record("done", "1", rid="r1", file="elsewhere/1.json", bytes=11, sha256="a")
    await journal.record("done", "2", rid="r2", bytes=12, sha256="b", gzip=True)
    await journal.record("failed", "4", error="refused")
    await journal.record("expired", "5")
    await journal.record("done", "007", rid="r7", bytes=7, sha256="c")  # an odd ID
    await journal.close()


async def _killed_run(out_dir: Path) -> None:
    """A second run's lines, with no checkpoint after them (as a kill leaves)."""
    journal = Journal.open(out_dir, "profile")
    await journal.record_run(targets=6)
    await journal.record("done", "3", rid="r3", bytes=13, sha256="d")
    await journal.record("stale", "1", error="missing")
    await journal.record("submitting", "6")
    await journal.close()


async def test_a_checkpoint_and_the_lines_after_it_give_the_full_replay(tmp_path: Path) -> None:
    await _first_run(tmp_path)
    assert write_checkpoint(tmp_path, "profile")
    mode = stat.S_IMODE((tmp_path / CHECKPOINT_NAME).stat().st_mode)
    assert mode == 0o600
    found = replay_journal(tmp_path, "profile")
    assert found.from_checkpoint and _as_tuple(found) == _full(tmp_path)

    await _killed_run(tmp_path)
    found = replay_journal(tmp_path, "profile")
    assert found.from_checkpoint
    assert _as_tuple(found) == _full(tmp_path)
    assert found.states["3"].bytes == 13 and found.states["1"].error == "missing"


async def test_done_times_come_from_the_checkpoint_only_when_asked_for(tmp_path: Path) -> None:
    """The done lines' times: as a full replay gives them, or checked and not kept."""
    await _first_run(tmp_path)
    write_checkpoint(tmp_path, "profile")
    await _killed_run(tmp_path)
    full = array("d")
    replay(tmp_path / JOURNAL_NAME, TargetTable("profile"), done_times=full)
    assert len(full) == 4  # the done lines of 1, 2, 007 and, after the checkpoint, 3
    found = replay_journal(tmp_path, "profile", done_times=True)
    assert found.from_checkpoint and found.done_times == full
    without = replay_journal(tmp_path, "profile")
    assert without.from_checkpoint and without.done_times is None
    assert _as_tuple(without) == _as_tuple(found)
    # The times are still checked when not kept: a changed byte there voids the checkpoint.
    data = bytearray((tmp_path / CHECKPOINT_NAME).read_bytes())
    data[-33] ^= 0xFF  # the last byte of the times, just before the checksum
    (tmp_path / CHECKPOINT_NAME).write_bytes(bytes(data))
    assert not replay_journal(tmp_path, "profile").from_checkpoint


async def test_a_run_merges_the_checkpoint_into_its_input_table(tmp_path: Path) -> None:
    """Input in journal order (the replay's arrays taken), longer (copied), or in another order."""
    await _first_run(tmp_path)
    write_checkpoint(tmp_path, "profile")
    await _killed_run(tmp_path)
    longer = ["1", "2", "3", "4", "5", "007", "6", "8"]
    for order in (["1", "2", "3", "4", "5"], longer, ["6", "9", "3", "1"]):
        table, expected = TargetTable("profile"), TargetTable("profile")
        for target in order:
            table.add_input(target)
            expected.add_input(target)
        journal = Journal.open(tmp_path, "profile", table)
        await journal.close()
        assert journal.states is table and table.input_count == len(order)
        assert _fields(table) == _full(tmp_path, expected)[3]
        assert journal.lines == _full(tmp_path)[2].complete_lines


async def test_an_edit_before_the_offset_means_a_full_replay_that_finds_it(tmp_path: Path) -> None:
    await _first_run(tmp_path)
    write_checkpoint(tmp_path, "profile")
    path = tmp_path / JOURNAL_NAME
    lines = path.read_bytes().splitlines(keepends=True)
    lines[3] = b"{not json}\n"
    path.write_bytes(b"".join(lines))
    found = replay_journal(tmp_path, "profile")
    assert not found.from_checkpoint
    assert found.damage.lines == [4] and _as_tuple(found) == _full(tmp_path)


async def test_a_truncated_journal_or_a_damaged_checkpoint_is_replayed_in_full(
    tmp_path: Path,
) -> None:
    await _first_run(tmp_path)
    write_checkpoint(tmp_path, "profile")
    checkpoint = tmp_path / CHECKPOINT_NAME
    data = bytearray(checkpoint.read_bytes())
    data[len(data) // 2] ^= 0xFF
    checkpoint.write_bytes(bytes(data))
    assert not replay_journal(tmp_path, "profile").from_checkpoint

    write_checkpoint(tmp_path, "profile")
    assert replay_journal(tmp_path, "profile").from_checkpoint
    path = tmp_path / JOURNAL_NAME
    path.write_bytes(path.read_bytes()[:-40])  # a torn last line, shorter than the offset
    found = replay_journal(tmp_path, "profile")
    assert not found.from_checkpoint and found.damage.torn_tail
    assert _as_tuple(found) == _full(tmp_path)

    write_checkpoint(tmp_path, "profile")
    assert replay_journal(tmp_path, "profile").from_checkpoint  # a torn tail after it is fine
    body = checkpoint.read_bytes()[:-32].replace(b'"version":1', b'"version":0', 1)
    checkpoint.write_bytes(body + hashlib.sha256(body).digest())  # an older format, intact
    assert not replay_journal(tmp_path, "profile").from_checkpoint

    checkpoint.write_bytes(b"")
    assert not replay_journal(tmp_path, "profile").from_checkpoint
    assert not replay_journal(tmp_path, "email").from_checkpoint  # another kind


async def test_a_checkpoint_copied_from_another_directory_is_not_used(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    await _first_run(one)
    write_checkpoint(one, "profile")
    journal = Journal.open(two, "profile")
    await journal.record("done", "42", rid="r", bytes=1, sha256="e")
    await journal.close()
    shutil.copy(one / CHECKPOINT_NAME, two / CHECKPOINT_NAME)
    found = replay_journal(two, "profile")
    assert not found.from_checkpoint and _as_tuple(found) == _full(two)


async def test_status_says_the_same_with_and_without_the_checkpoint(tmp_path: Path) -> None:
    await _first_run(tmp_path)
    write_checkpoint(tmp_path, "profile")
    await _killed_run(tmp_path)
    with_checkpoint = collect_status(tmp_path, now=2e9)
    (tmp_path / CHECKPOINT_NAME).unlink()
    assert collect_status(tmp_path, now=2e9) == with_checkpoint
    assert with_checkpoint["done"] == 3 and with_checkpoint["failed"] == 1


def test_a_run_leaves_a_checkpoint_the_next_run_extends(
    simulator: StartSimulator, tmp_path: Path
) -> None:
    """Real runs against the simulator: the checkpoint covers each run's end; verify ignores it."""
    sim = simulator()
    out = tmp_path / "out"
    ids = write_ids(tmp_path / "ids.csv", [1, 2])
    args = ["run", str(ids), "--out", str(out), *api_args(sim), "--no-progress"]
    assert run_cli(args, sim.token).exit_code == 0
    checkpoint = out / CHECKPOINT_NAME
    assert stat.S_IMODE(checkpoint.stat().st_mode) == 0o600
    first = checkpoint.read_bytes()
    more = write_ids(tmp_path / "more.csv", [1, 2, 3])
    args = ["run", str(more), "--out", str(out), *api_args(sim), "--no-progress"]
    assert run_cli(args, sim.token).exit_code == 0
    assert sim.stats()["posts_per_target"]["profile:1"] == 1  # resumed: not exported again
    assert checkpoint.read_bytes() != first
    found = replay_journal(out, "profile")
    assert found.from_checkpoint and _as_tuple(found) == _full(out)
    assert found.good_end == (out / JOURNAL_NAME).stat().st_size
    checked = run_cli(["verify", str(out), "--json"], None)
    assert checked.exit_code == 0, checked.stdout


async def test_an_email_journal_round_trips_through_its_checkpoint(tmp_path: Path) -> None:
    """String IDs (packed UTF-8) load back, and merge into an input table either way."""
    journal = Journal.open(tmp_path, "email")
    for number, address in enumerate(["a@x.nl", "b@x.nl", "é@x.nl"]):
        await journal.record("submitting", address)
        await journal.record("done", address, rid=f"r{number}", bytes=number + 1, sha256="f")
    await journal.record("failed", "c@x.nl", error="refused")
    await journal.close()
    assert write_checkpoint(tmp_path, "email")
    expected_states = TargetTable("email")
    replay(tmp_path / JOURNAL_NAME, expected_states)
    found = replay_journal(tmp_path, "email")
    assert found.from_checkpoint and _fields(found.states) == _fields(expected_states)
    for order in (["a@x.nl", "b@x.nl"], ["c@x.nl", "é@x.nl", "new@x.nl"]):
        table, expected = TargetTable("email"), TargetTable("email")
        for address in order:
            table.add_input(address)
            expected.add_input(address)
        opened = Journal.open(tmp_path, "email", table)
        await opened.close()
        replay(tmp_path / JOURNAL_NAME, expected)
        assert _fields(table) == _fields(expected)
        assert table.get("b@x.nl") is not None and table.find("zz@x.nl") < 0
