"""FileSystemSync: one syncfs per trip for every writer on a file system, in the right order."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest

from batch_export.durable import syncfs_available
from batch_export.input.ids import Target, TargetKind
from batch_export.storage.group_commit import FileSystemSync, shared_sync
from batch_export.storage.local import LocalSink, prepare_out_dir

from .small_exports import no_more_chunks, small_export

pytestmark = pytest.mark.skipif(not syncfs_available(), reason="no syncfs that reports errors")


async def test_callers_in_one_pass_share_a_trip_and_hooks_run_first(tmp_path: Path) -> None:
    """Thirty callers at once cost one or two syncfs calls; the hook writes before each."""
    group = shared_sync(str(tmp_path))
    assert group is not None
    assert shared_sync(str(tmp_path)) is group  # one per file system per loop
    hooked: list[int] = []
    group.before_sync(lambda: hooked.append(group.trips))
    before = group.trips
    await asyncio.gather(*(group.durable() for _ in range(30)))
    assert 1 <= group.trips - before <= 2
    assert len(hooked) == group.trips - before


async def test_a_caller_during_a_trip_waits_for_the_next_one(tmp_path: Path) -> None:
    """A write made after a trip's hook ran is not claimed durable by that trip."""
    fd = os.open(tmp_path, os.O_RDONLY)
    group = FileSystemSync(fd)
    hook_runs: list[str] = []
    late: list[asyncio.Task[None]] = []

    def hook() -> None:
        hook_runs.append("ran")
        if not late:  # the first trip has started: a writer comes in now
            late.append(asyncio.get_running_loop().create_task(group.durable()))

    group.before_sync(hook)
    try:
        await group.durable()
        await late[0]
        assert hook_runs == ["ran", "ran"]  # the late caller got a trip of its own
        assert group.trips == 2
    finally:
        await group.drain()
        os.close(fd)


async def test_a_failing_hook_fails_every_caller_of_its_trip(tmp_path: Path) -> None:
    """A write that failed before the sync: each waiter hears an OSError, the next trip works."""
    fd = os.open(tmp_path, os.O_RDONLY)
    group = FileSystemSync(fd)
    failures = ["disk full"]

    def hook() -> None:
        if failures:
            raise OSError(28, failures.pop())

    group.before_sync(hook)
    try:
        outcomes = await asyncio.gather(
            *(group.durable() for _ in range(3)), return_exceptions=True
        )
        assert all(isinstance(o, OSError) and o.errno == 28 for o in outcomes)
        await group.durable()  # the hook no longer fails: neither does the trip
        group.remove_hook(hook)
    finally:
        await group.drain()
        os.close(fd)


async def test_store_saves_small_exports_durably_in_shared_trips(tmp_path: Path) -> None:
    """Forty small exports at once: a few syncfs trips, owner-only, exact, no partials left."""
    out = prepare_out_dir(tmp_path / "out")
    store = LocalSink(out)
    targets = [Target(TargetKind.PROFILE, str(n)) for n in range(1, 41)]
    saved = await asyncio.gather(
        *(store.save(t, small_export(t), no_more_chunks()) for t in targets)
    )
    await store.sync()
    await store.close()
    assert store._batcher.jobs == 0  # nothing fsync'd file by file
    assert 1 <= store.commit_trips < 40  # the contents; the names ride sync()'s trip
    assert store._group is not None and store._group.trips >= 2
    for target, export in zip(targets, saved, strict=True):
        path = out / export.file
        assert path.read_bytes() == small_export(target)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(out / ".partial") == []


async def test_close_waits_for_a_trip_a_cancelled_save_left_queued(tmp_path: Path) -> None:
    """A save cancelled while it waits for its trip leaves the trip queued: close() drains it."""
    out = prepare_out_dir(tmp_path / "out")
    store = LocalSink(out)
    target = Target(TargetKind.PROFILE, "1")
    saving = asyncio.ensure_future(store.save(target, small_export(target), no_more_chunks()))
    for _ in range(20):  # until the save waits for its first trip
        await asyncio.sleep(0)
    assert store._group is not None and store._group._runner is not None
    saving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await saving
    assert not store._group._runner.done()  # the trip runs on for the others
    await store.close()
    assert store._group._runner.done()
    assert not [t for t in asyncio.all_tasks() if "FileSystemSync._trips" in repr(t)]


def test_a_store_used_on_a_second_loop_gets_that_loops_trips(tmp_path: Path) -> None:
    """A sink reused by a later asyncio.run (the Python API) does not wait on a dead loop's trips."""
    out = prepare_out_dir(tmp_path / "out")
    store = LocalSink(out)

    async def save(target_id: str) -> None:
        target = Target(TargetKind.PROFILE, target_id)
        await asyncio.wait_for(store.save(target, small_export(target), no_more_chunks()), 10)

    asyncio.run(save("1"))
    asyncio.run(save("2"))
    assert sorted(p.name for p in (out / "exports").rglob("*.json")) == ["1.json", "2.json"]
