"""Blocking file work in a worker thread, many jobs per trip.

Every hop to a worker thread has a price beyond the thread pool's own
bookkeeping: after each system call the worker has to win the GIL back from
the busy event loop, and each of those hand-offs costs futex wake-ups and
context switches. For small exports that price was larger than the file work
itself (``strace -c`` counted about 74 futex calls per 5 KB export when every
file took its own trip). ``ThreadBatcher`` queues jobs while a trip is under
way and hands everything queued to the next one, so a burst of small files
costs a handful of hops instead of one each — and the trip function sees the
whole batch at once, which is what lets the local store make a hundred files
durable with one ``syncfs`` (``group_commit.py``).

Jobs reach the trip function in submission order, one trip at a time; a
job's exception is handed to its own caller only.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from functools import partial
from typing import Any, Generic, TypeVar

__all__ = ["Outcome", "ThreadBatcher", "run_jobs"]

J = TypeVar("J")

#: what a job left behind: (True, result) or (False, the exception it raised)
Outcome = tuple[bool, Any]


def run_jobs(jobs: list[Callable[[], Any]]) -> list[Outcome]:
    """The plain trip: call each job in turn, each outcome its own."""
    outcomes: list[Outcome] = []
    for job in jobs:
        try:
            outcomes.append((True, job()))
        except Exception as exc:  # handed back to the job's caller alone
            outcomes.append((False, exc))
    return outcomes


#: a queued job, what to do instead if it never runs, and where its outcome goes
_Entry = tuple[J, "Callable[[], None] | None", "asyncio.Future[Outcome]"]


class ThreadBatcher(Generic[J]):
    """Hands jobs to ``trip`` in a worker thread, batching those queued meanwhile.

    ``trip`` takes the batch and returns one ``Outcome`` per job, in order
    (``run_jobs`` for jobs that are callables).
    """

    def __init__(self, trip: Callable[[list[J]], list[Outcome]]) -> None:
        self._trip = trip
        self._queue: list[_Entry[J]] = []
        self._runner: asyncio.Task[None] | None = None
        self.trips = 0
        self.jobs = 0

    async def run(self, job: J, *, abandon: Callable[[], None] | None = None) -> Any:
        """Hand ``job`` to the next trip and return its result (or raise its exception).

        A caller cancelled while waiting does not cancel the job: it has
        usually started already, and file work must not be left half done.
        ``abandon`` is called instead of the job if the job never gets to run
        (the loop shutting down first): to release what the job would have.
        """
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future[Outcome] = loop.create_future()
        self._queue.append((job, abandon, outcome))
        if self._runner is None or self._runner.done():
            in_flight: list[_Entry[J]] = []
            self._runner = loop.create_task(self._run_trips(in_flight))
            self._runner.add_done_callback(partial(self._runner_done, in_flight))
        ok, value = await asyncio.shield(outcome)
        if not ok:
            raise value
        return value

    async def _run_trips(self, in_flight: list[_Entry[J]]) -> None:
        while self._queue:
            # One pass of the loop first, so jobs queued in the same pass share the trip.
            await asyncio.sleep(0)
            in_flight[:], self._queue = self._queue, []
            outcomes = await asyncio.to_thread(self._trip, [job for job, _, _ in in_flight])
            self.trips += 1
            self.jobs += len(in_flight)
            for (_, _, future), outcome in zip(in_flight, outcomes, strict=True):
                if not future.done():
                    future.set_result(outcome)
            in_flight.clear()

    def _runner_done(self, in_flight: list[_Entry[J]], runner: asyncio.Task[None]) -> None:
        """A runner ended; if it was cancelled or failed, nobody may wait forever.

        Cancelled (the loop shutting down, possibly before the runner's first
        step): jobs already handed to the worker finish there, queued ones
        never run. Failed: ``to_thread`` itself refused the batch, so it never
        ran either. Jobs that never ran get their ``abandon`` call; every
        waiting caller is told the work was interrupted.
        """
        if runner.cancelled():
            failure = "cancelled"
            never_ran: list[_Entry[J]] = []
        else:
            exc = runner.exception()  # also marks it retrieved: callers get it below
            if exc is None:
                return
            failure = type(exc).__name__
            never_ran = list(in_flight)
        waiting = list(in_flight)
        if self._runner is runner:  # no newer runner has taken over the queue
            never_ran += self._queue
            waiting += self._queue
            self._queue = []
        for _, abandon, _ in never_ran:
            if abandon is not None:
                with contextlib.suppress(Exception):
                    abandon()
        stranded = OSError(f"file work was interrupted ({failure})")
        for _, _, future in waiting:
            if not future.done():
                future.set_result((False, stranded))
        in_flight.clear()

    async def drain(self) -> None:
        """Wait until every queued job has run (the end of a run, even a cancelled one)."""
        while self._runner is not None and not self._runner.done():
            await asyncio.wait({self._runner})
