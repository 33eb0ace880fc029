"""Blocking file work in a worker thread, many jobs per trip.

Every hop to a worker thread has a price beyond the thread pool's own
bookkeeping: after each system call the worker has to win the GIL back from
the busy event loop, and each of those hand-offs costs futex wake-ups and
context switches. For small exports that price was larger than the file work
itself (``strace -c`` counted about 74 futex calls per 5 KB export when every
file took its own trip). ``ThreadBatcher`` queues jobs while a trip is under
way and runs everything queued in the next one, so a burst of small files
costs a handful of hops instead of one each.

Jobs run in submission order, one after another, in one worker thread at a
time; a job's exception is handed to its own caller only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["ThreadBatcher"]

T = TypeVar("T")

#: what a job left behind: (True, result) or (False, the exception it raised)
_Outcome = tuple[bool, Any]


def _run_jobs(jobs: list[Callable[[], Any]]) -> list[_Outcome]:
    outcomes: list[_Outcome] = []
    for job in jobs:
        try:
            outcomes.append((True, job()))
        except Exception as exc:  # handed back to the job's caller alone
            outcomes.append((False, exc))
    return outcomes


class ThreadBatcher:
    """Runs blocking callables in a worker thread, batching those queued meanwhile."""

    def __init__(self) -> None:
        self._queue: list[tuple[Callable[[], Any], asyncio.Future[_Outcome]]] = []
        self._runner: asyncio.Task[None] | None = None
        self.trips = 0
        self.jobs = 0

    async def run(self, job: Callable[[], T]) -> T:
        """Run ``job`` in the next trip and return its result (or raise its exception).

        A caller cancelled while waiting does not cancel the job: it has
        usually started already, and file work must not be left half done.
        """
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future[_Outcome] = loop.create_future()
        self._queue.append((job, outcome))
        if self._runner is None or self._runner.done():
            self._runner = loop.create_task(self._run_trips())
        ok, value = await asyncio.shield(outcome)
        if not ok:
            raise value
        result: T = value
        return result

    async def _run_trips(self) -> None:
        batch: list[tuple[Callable[[], Any], asyncio.Future[_Outcome]]] = []
        try:
            while self._queue:
                # One pass of the loop first, so jobs queued in the same pass share the trip.
                await asyncio.sleep(0)
                batch, self._queue = self._queue, []
                outcomes = await asyncio.to_thread(_run_jobs, [job for job, _ in batch])
                self.trips += 1
                self.jobs += len(batch)
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    if not future.done():
                        future.set_result(outcome)
                batch = []
        except BaseException as exc:
            # Only a cancelled runner (the loop shutting down) gets here: nobody may wait forever.
            stranded = OSError(f"file work was interrupted ({type(exc).__name__})")
            for _, future in [*batch, *self._queue]:
                if not future.done():
                    future.set_result((False, stranded))
            self._queue = []
            raise

    async def drain(self) -> None:
        """Wait until every queued job has run (the end of a run, even a cancelled one)."""
        while self._runner is not None and not self._runner.done():
            await asyncio.wait({self._runner})
