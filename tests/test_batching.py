"""ThreadBatcher: many blocking jobs per worker-thread trip, outcomes to their own callers."""

from __future__ import annotations

import asyncio
import functools
import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from batch_export.input.ids import Target, TargetKind
from batch_export.storage.batching import ThreadBatcher, run_jobs
from batch_export.storage.local import LocalSink, prepare_out_dir

from .small_exports import no_more_chunks, small_export


async def test_jobs_queued_together_share_trips_and_keep_their_results() -> None:
    """Fifty jobs queued in one loop pass run off the loop's thread in fewer than fifty trips."""
    batcher: ThreadBatcher[Callable[[], Any]] = ThreadBatcher(run_jobs)
    main_thread = threading.get_ident()
    ran_in: list[int] = []

    def job(n: int) -> int:
        ran_in.append(threading.get_ident())
        return n * n

    results = await asyncio.gather(*(batcher.run(functools.partial(job, n)) for n in range(50)))
    assert results == [n * n for n in range(50)]
    assert batcher.jobs == 50
    assert batcher.trips < 50  # queued in the same loop pass: one trip, not fifty
    assert main_thread not in ran_in


async def test_a_failing_job_raises_for_its_own_caller_only() -> None:
    """A job's OSError reaches its own caller; the jobs sharing its trip still return."""
    batcher: ThreadBatcher[Callable[[], Any]] = ThreadBatcher(run_jobs)

    def boom() -> int:
        raise OSError(28, "No space left on device")

    outcomes = await asyncio.gather(
        batcher.run(lambda: 1), batcher.run(boom), batcher.run(lambda: 3), return_exceptions=True
    )
    assert outcomes[0] == 1 and outcomes[2] == 3
    assert isinstance(outcomes[1], OSError) and outcomes[1].errno == 28


async def test_a_cancelled_caller_does_not_cancel_its_job() -> None:
    """Cancelling a waiting caller leaves its job to finish, and drain() waits for it."""
    batcher: ThreadBatcher[Callable[[], Any]] = ThreadBatcher(run_jobs)
    started = threading.Event()
    release = threading.Event()
    finished: list[str] = []

    def slow() -> None:
        started.set()
        assert release.wait(10)
        finished.append("done")

    caller = asyncio.create_task(batcher.run(slow))
    assert await asyncio.to_thread(started.wait, 10)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    release.set()
    await asyncio.wait_for(batcher.drain(), 10)
    assert finished == ["done"]


async def test_without_syncfs_the_store_fsyncs_small_exports_in_few_trips(tmp_path: Path) -> None:
    """Where there is no syncfs: forty exports share fsync trips, end owner-only, exact."""
    out = prepare_out_dir(tmp_path / "out")
    store = LocalSink(out)
    store._group_loop = asyncio.get_running_loop()  # looked up, none found: as without syncfs
    targets = [Target(TargetKind.PROFILE, str(n)) for n in range(1, 41)]
    saved = await asyncio.gather(
        *(store.save(t, small_export(t), no_more_chunks()) for t in targets)
    )
    await store.sync()
    assert store._batcher.jobs == 40
    assert store._batcher.trips < 40
    for target, export in zip(targets, saved, strict=True):
        path = out / export.file
        assert path.read_bytes() == small_export(target)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(out / ".partial") == []


async def test_jobs_that_never_run_are_abandoned_and_their_callers_told() -> None:
    """The loop shutting down before a trip: the job does not run, its abandon hook does."""
    batcher: ThreadBatcher[Callable[[], Any]] = ThreadBatcher(run_jobs)
    ran: list[str] = []
    abandoned: list[str] = []
    caller = asyncio.create_task(
        batcher.run(lambda: ran.append("job"), abandon=lambda: abandoned.append("job"))
    )
    await asyncio.sleep(0)  # the caller has queued its job and started the runner
    runner = batcher._runner
    assert runner is not None and not runner.done()
    runner.cancel()
    with pytest.raises(OSError, match="interrupted"):
        await caller
    assert ran == [] and abandoned == ["job"]
