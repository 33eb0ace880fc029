"""The compact per-target state: the same answers as one object per target, in a fraction of the memory."""

from __future__ import annotations

import hashlib
import json
import random
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from batch_export.evidence import leaf_sort
from batch_export.evidence.leaf_sort import SortedLeaves
from batch_export.evidence.replay import TargetState, replay
from batch_export.evidence.seal import merkle_root
from batch_export.evidence.target_table import TargetTable
from batch_export.input.ids import TargetKind
from batch_export.input.reader import TargetReader

FIELDS = (
    "status",
    "request_id",
    "attempts",
    "ambiguous",
    "reissued",
    "bytes",
    "gzip",
    "error",
    "done_records",
    "submitted_at",
)
#: the target events, ``done`` twice as likely
EVENTS = ["submitting", "submitted", "done", "done", "failed", "expired", "ambiguous", "stale"]
EVENTS.append("push-conflict")
#: IDs a numeric table must keep apart: odd spellings, the largest, past the largest
ODD_IDS = ["007", "7", "abc", "", " 7", "9223372036854775807", "9223372036854775808", "0", "١٢"]


def _records(rng: random.Random, ids: list[str], count: int) -> list[dict[str, Any]]:
    """A random journal's target records: every event, every field replay reads."""
    records: list[dict[str, Any]] = []
    for number in range(count):
        event = rng.choice(EVENTS)
        record: dict[str, Any] = {"ts": 1000.0 + number, "ev": event, "id": rng.choice(ids)}
        if event in ("submitted", "push-conflict") or (event == "failed" and rng.random() < 0.5):
            record["rid"] = f"dr_{number}"
        if event == "done":
            record.update(bytes=rng.choice([0, 300, 2**40]), sha256="ab")
            if rng.random() < 0.3:
                record["gzip"] = True
        if event in ("failed", "stale") and rng.random() < 0.8:
            record["error"] = rng.choice(["gone", "refused", "timeout"])
        records.append(record)
    return records


def _write(path: Path, records: list[dict[str, Any]]) -> Path:
    lines = [json.dumps({"format": "batch-export-journal", "version": 1, "kind": "profile"})]
    lines += [json.dumps(record) for record in records]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("kind", ["profile", "email"])
@pytest.mark.parametrize("seed", range(4))
def test_a_table_replays_to_what_target_states_say(tmp_path: Path, kind: str, seed: int) -> None:
    """Every field of every target, after a random journal, equals the one-object replay's."""
    rng = random.Random(seed)
    ids = [str(rng.randrange(1, 10 ** rng.randrange(1, 19))) for _ in range(40)] + ODD_IDS
    if kind == "email":
        ids = [f"{i}@example.com" for i in ids[:40]] + ODD_IDS
    path = _write(tmp_path / "journal.jsonl", _records(rng, ids, 3000))
    states: dict[str, TargetState] = {}
    replay(path, states)
    table = TargetTable(kind)
    replay(path, table)
    assert len(table) == len(states)
    assert [target_id for target_id, _ in table.items()] == list(states)  # first-seen order
    for target_id, state in states.items():
        view = table[target_id]
        assert {name: getattr(view, name) for name in FIELDS} == {
            name: getattr(state, name) for name in FIELDS
        }, target_id
    tally = table.tally()
    for status in ("new", "submitting", "submitted", "done", "failed"):
        assert tally[status] == sum(1 for s in states.values() if s.status == status)
    assert tally["reissued"] == sum(s.reissued for s in states.values())
    assert tally["bytes"] == sum(s.bytes for s in states.values() if s.status == "done")


def test_a_counter_goes_on_past_a_byte() -> None:
    """300 submits and 600 ambiguous ones are counted exactly, as the manifest reports them."""
    table = TargetTable("profile")
    for _ in range(300):
        table.fold("5", {"ev": "submitting"})
        table.fold("5", {"ev": "ambiguous"})
        table.fold("5", {"ev": "ambiguous"})
    assert table["5"].attempts == 300 and table["5"].ambiguous == 600
    assert table.tally()["ambiguous"] == 600


def test_ids_that_collide_in_the_index_stay_apart() -> None:
    """IDs with a common stride (multiples of a power of two) each keep their own slot."""
    table = TargetTable("profile")
    ids = [str(n << 32) for n in range(1, 20_000)] + [str(n) for n in range(1, 20_000)]
    for target_id in ids:
        table.add_input(target_id)
    assert table.input_count == len(ids) == len(table)
    assert [table.id_of(table.find(target_id)) for target_id in ids] == ids
    assert table.find("12345678901") == -1 and "0" not in table


def test_the_input_is_deduped_by_the_table_in_input_order(tmp_path: Path) -> None:
    """The reader with the table as its dedupe: the same targets, duplicates and order as with a set."""
    path = tmp_path / "ids.csv"
    path.write_text("profile_id\n3\n1\n3\n2.0\n002\n1\nx\n")
    plain = TargetReader(path, TargetKind.PROFILE)
    expected = [item.id for item in plain if not hasattr(item, "reason")]
    table = TargetTable("profile")
    reader = TargetReader(path, TargetKind.PROFILE, dedupe=table.add_input)
    assert (
        [item.id for item in reader if not hasattr(item, "reason")] == expected == ["3", "1", "2"]
    )
    assert reader.duplicates == plain.duplicates == 3
    assert [table.id_of(slot) for slot in table.input_slots()] == expected


def test_a_million_targets_would_take_under_60_bytes_each() -> None:
    """100,000 input targets, all replayed as done with a size: the table's bytes per target."""
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    table = TargetTable("profile")
    for number in range(1, 100_001):
        table.add_input(str(1_000_000 + number))
    fold = table.folder()
    for number in range(1, 100_001):
        fold(str(1_000_000 + number), {"ev": "done", "bytes": 300, "sha256": "ab"})
    per_target = (tracemalloc.get_traced_memory()[0] - before) / 100_000
    tracemalloc.stop()
    assert table.tally()["done"] == 100_000
    assert per_target < 60, per_target  # a dict of TargetState objects: ~230


def _plain_root(items: list[tuple[str, str, bytes]]) -> str:
    keyed = sorted(f"{kind}\0{target_id}\0".encode() + leaf for kind, target_id, leaf in items)
    return merkle_root(record[-32:] for record in keyed)


@pytest.mark.parametrize("seed", range(30))
def test_the_bucketed_leaf_sort_gives_the_root_one_sort_gives(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Odd IDs, duplicates, other kinds and splits of big buckets: the same Merkle root."""
    monkeypatch.setattr(leaf_sort, "SORT_AT_ONCE", 4)  # split nearly every bucket
    rng = random.Random(seed)
    items: list[tuple[str, str, bytes]] = []
    for _ in range(rng.randrange(0, 400)):
        kind = rng.choice(["profile", "profile", "email", "a", "a\0b", ""])
        target_id = rng.choice(
            [str(rng.randrange(1, 10 ** rng.randrange(1, 20))), "", "\0", "\0\0x", "é", "1" * 300]
        )
        leaf = hashlib.sha256(str(rng.random()).encode()).digest()
        items.append((kind, target_id, leaf))
        if rng.random() < 0.1:
            items.append((kind, target_id, leaf))  # the same line twice
    leaves = SortedLeaves()
    for item in items:
        leaves.add(*item)
    assert merkle_root(leaves.leaves()) == _plain_root(items)
