"""The ``--max-pending`` task window, and how a run stops.

``TaskWindow`` starts one task per unit of work, never more than
``max_pending`` at once, and knows nothing of what a task does. It owns
stopping:

- ``request_stop`` (the first SIGINT/SIGTERM): no new task starts, every
  task sleeping in ``pause`` wakes at once (raising ``Stopped``), and
  ``drain`` gives the tasks in flight ``grace`` seconds before it cancels
  them;
- ``request_stop(force=True)`` (a second signal, a fatal error, a
  cancellation from outside): every task is cancelled now;
- the stall watchdog: nothing at all for ``stall_timeout`` seconds stops
  the run with an error.

``stop_on_signals`` wires SIGINT and SIGTERM to ``request_stop``;
``note_signals`` notes them while the evidence is written after the pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator
from typing import Any

from ..errors import ExportError

__all__ = ["Stopped", "TaskWindow", "note_signals", "stop_on_signals"]

log = logging.getLogger(__name__)


class Stopped(Exception):
    """Raised inside a target's task when the run is stopping."""


class TaskWindow:
    """At most ``max_pending`` tasks at once; stopping, draining and the stall watchdog."""

    def __init__(self, max_pending: int, *, grace: float) -> None:
        self.grace = grace
        self.stopping = asyncio.Event()
        self.stop_reason: str | None = None
        #: the error that stops the run (fatal, or a stall), first come
        self.fatal: ExportError | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        #: at most ``max_pending`` tasks started by ``feed`` at once
        self._slots = asyncio.Semaphore(max_pending)
        #: what ``drain`` waits for: the last open task finished, or the run is stopping
        self._drain_wake = asyncio.Event()
        #: tasks sleeping in ``pause``: woken when the run stops
        self._sleepers: set[asyncio.Future[None]] = set()
        self.last_progress = time.monotonic()

    async def feed(
        self, work: Iterable[str], start: Callable[[str], Coroutine[Any, Any, None]]
    ) -> None:
        """Start a task per item, never more than ``max_pending`` at once.

        One plain ``acquire`` per item: ``request_stop`` releases the window
        once to wake a feeder waiting for a slot, which then sees the stop.
        """
        for item in work:
            if self.stopping.is_set():
                return
            await self._slots.acquire()
            if self.stopping.is_set():
                return
            task = asyncio.create_task(start(item))
            self.tasks.add(task)
            task.add_done_callback(self._task_done)

    def track(self, work: Coroutine[Any, Any, None]) -> None:
        """Start a task outside the window (it takes no slot) that ``drain`` still waits for."""
        task = asyncio.create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self._tracked_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._slots.release()
        self._tracked_done(task)

    def _tracked_done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not self.tasks:
            self._drain_wake.set()

    async def drain(self) -> None:
        """Wait for open tasks; on a stop, give requests in flight ``grace`` seconds.

        Waits on one event (set by the last task to finish, or by a stop)
        rather than on the tasks themselves: ``asyncio.wait`` over the open set
        after every completion would cost O(open tasks) callbacks each time,
        O(n²) over a large window.
        """
        while self.tasks and not self.stopping.is_set():
            self._drain_wake.clear()
            await self._drain_wake.wait()
        if self.tasks:
            _, still_running = await asyncio.wait(set(self.tasks), timeout=self.grace)
            for task in still_running:
                task.cancel()
            if still_running:
                await asyncio.wait(still_running)

    async def cancel_all(self) -> None:
        """Cancel every open task and wait until each has ended."""
        for task in list(self.tasks):
            task.cancel()
        await self.wait_all()

    async def wait_all(self) -> None:
        """Wait until every open task has ended (no task may outlive the run)."""
        if self.tasks:
            await asyncio.wait(set(self.tasks))

    def request_stop(self, reason: str, *, force: bool = False) -> None:
        """Stop starting tasks; with ``force`` (a second signal), cancel everything now."""
        if self.stopping.is_set() or force:
            for task in list(self.tasks):
                task.cancel()
        if self.stop_reason is None:
            self.stop_reason = reason
        self.stopping.set()
        for alarm in self._sleepers:
            _ring(alarm)
        self._slots.release()  # wakes the feeder if it waits for a slot; no task starts after
        self._drain_wake.set()

    def abort(self, exc: ExportError) -> None:
        """Stop at once because of ``exc`` (the first such error is the one the run ends with)."""
        if self.fatal is None:
            self.fatal = exc
        self.request_stop("fatal", force=True)

    def alive(self) -> None:
        """Something happened (an answer, a saved file): the watchdog starts counting again."""
        self.last_progress = time.monotonic()

    async def pause(self, seconds: float) -> None:
        """Sleep, but wake at once (raising Stopped) when the run stops.

        A bare future and a timer, woken by ``request_stop``: every target
        sleeps at least once, and ``wait_for`` on the stop event would cost a
        task and two futures each time.
        """
        if self.stopping.is_set():
            raise Stopped
        if seconds > 0:
            loop = asyncio.get_running_loop()
            alarm: asyncio.Future[None] = loop.create_future()
            timer = loop.call_later(seconds, _ring, alarm)
            self._sleepers.add(alarm)
            try:
                await alarm
            finally:
                timer.cancel()
                self._sleepers.discard(alarm)
        if self.stopping.is_set():
            raise Stopped

    async def watchdog(self, stall_timeout: float, excused: Callable[[], bool]) -> None:
        """Stop the run if nothing at all has happened for ``stall_timeout`` seconds.

        While ``excused()`` is true (an outage, which has its own limit) the
        time does not count.
        """
        while True:
            await asyncio.sleep(min(5.0, stall_timeout / 4))
            if excused():
                self.alive()
                continue
            idle = time.monotonic() - self.last_progress
            if idle > stall_timeout and self.tasks:
                self.fatal = ExportError(
                    f"no progress for {idle:.0f}s (no answer, no saved file): stopping; "
                    "rerun the same command to resume"
                )
                self.request_stop("stalled", force=True)
                return


def _ring(alarm: asyncio.Future[None]) -> None:
    if not alarm.done():
        alarm.set_result(None)


@contextlib.contextmanager
def stop_on_signals(window: TaskWindow, enabled: bool) -> Iterator[None]:
    """SIGINT/SIGTERM stop the run gracefully; a second one stops it at once."""
    if not enabled:
        yield
        return
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []

    def handler(name: str) -> None:
        force = window.stopping.is_set()
        window.request_stop(name, force=force)
        log.warning(
            "%s received: %s",
            name,
            "stopping now"
            if force
            else "finishing requests in flight (signal again to stop at once)",
        )

    for signum, name in ((signal.SIGINT, "SIGINT"), (signal.SIGTERM, "SIGTERM")):
        try:
            loop.add_signal_handler(signum, handler, name)
            installed.append(signum)
        except (NotImplementedError, RuntimeError):
            pass
    try:
        yield
    finally:
        for installed_signal in installed:
            loop.remove_signal_handler(installed_signal)


@contextlib.contextmanager
def note_signals(window: TaskWindow, enabled: bool) -> Iterator[None]:
    """After the pipeline: SIGINT/SIGTERM become the run's ``stop_reason``, never an exception.

    The manifest, the summary and the seal are written by synchronous code:
    a loop's signal handler would run only after them, and Python's default
    one raises KeyboardInterrupt half-way (a traceback, a run without its
    manifest or seal). A plain handler runs between two bytecodes and only
    sets ``stop_reason``, which the summary reads once the manifest is
    written; the run then ends as stopped by the signal.
    """
    if not enabled:
        yield
        return

    def note(signum: int, _frame: object) -> None:
        # No logging here: the signal may arrive while a log handler holds its lock.
        if window.stop_reason is None:
            window.stop_reason = signal.Signals(signum).name

    before = window.stop_reason
    previous: dict[signal.Signals, Any] = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError):  # not the main thread: signals are not ours
            previous[signum] = signal.signal(signum, note)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        if window.stop_reason != before:
            log.warning("%s received: the run's evidence was written first", window.stop_reason)
