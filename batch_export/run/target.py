"""The per-target protocol: submit → wait (readiness model, or a push) → fetch → record.

One asyncio task per *open* data request, started by the ``TaskWindow``:
each submits (or resumes with a known request ID), sleeps until the
readiness model says the file is probably there, asks, and streams the export
into the sink when it is. Every step is journalled before the next depends
on it. All HTTP goes through the one ``PlatformClient``, so submits and checks
share the same rate budget and the same 429 pause.

How a target's task ends: a ``TargetError`` (or its ``--timeout``) becomes a
``failed`` journal line and the run goes on; ``AuthError``, ``ConfigError``,
``StorageError``, ``OutageError`` and any ``OSError`` stop the whole run; any
other exception is a bug, which stops the run as an ``InternalError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import Any

from ..errors import (
    AuthError,
    ConfigError,
    ExportError,
    InternalError,
    MalformedExportError,
    OutageError,
    RequestGoneError,
    StorageError,
    TargetError,
    TransientError,
)
from ..evidence.journal import SUBMITTING, Journal, TargetView
from ..input.ids import Target
from ..platform.client import PlatformClient
from ..platform.known_limit import remembering_limiter
from ..redaction import Redactor
from ..storage.sink import SavedExport, Sink
from ..storage.validate import PlaceholderError
from .deadlines import Deadlines
from .delivery import PushMode
from .options import RunOptions, cannot_write
from .scheduling import Outcome, ReadinessModel
from .tally import RunTally
from .window import Stopped, TaskWindow

__all__ = ["Exporter"]

log = logging.getLogger(__name__)

#: errors that stop the whole run rather than fail one target
_FATAL = (AuthError, ConfigError, StorageError, OutageError, InternalError)

#: net new container objects between young-generation collections while the pipeline runs
#: (Python's default is 700: see ``_fewer_collections``)
GC_YOUNG_THRESHOLD = 10_000


@contextlib.contextmanager
def _fewer_collections() -> Iterator[None]:
    """Collect the young generation less often while the pipeline runs, then restore the thresholds.

    Each export allocates a burst of futures, tasks and dicts that nearly all
    die by reference count, yet at the default threshold (700) they set off a
    young collection every ~20 exports, each traversing every object still in
    flight: measured in the overhead scenario, ~500 young and ~45 middle
    collections per 10,000 exports, 4 % of the exporter's CPU. At 10,000 it
    is a handful per run; the cyclic garbage it lets wait is bounded by the
    same count (a few MB at most). A threshold of 0 (collection switched off
    by the caller) stays 0.
    """
    saved = gc.get_threshold()
    young = saved[0] and max(saved[0], GC_YOUNG_THRESHOLD)
    gc.set_threshold(young, *saved[1:])
    try:
        yield
    finally:
        gc.set_threshold(*saved)


class Exporter:
    """One run of the pipeline: every target's protocol, inside one task window."""

    def __init__(self, options: RunOptions, tally: RunTally, sink: Sink) -> None:
        self.options = options
        self.kind = options.kind
        self.tally = tally
        self.sink = sink
        self.redactor = options.redactor or Redactor()
        # Without --rate, the search starts from the account's remembered limit.
        self.limiter, self.limit_memory = remembering_limiter(
            options.rate, options.burst, options.api, options.out_dir, options.cache_dir
        )
        self.model = ReadinessModel()
        self.window = TaskWindow(options.max_pending, grace=options.grace)
        #: every open target's --timeout, on one timer
        self.deadlines = Deadlines(options.timeout)
        self.journal: Journal
        self.client: PlatformClient
        self._client_ready = False
        self.push: PushMode | None = None
        #: the client's request and response counts, kept when it closes
        self.traffic: dict[str, Any] = {}
        self.report = options.report

    def request_stop(self, reason: str, *, force: bool = False) -> None:
        """Stop submitting; with ``force`` (a second signal), cancel everything now."""
        self.window.request_stop(reason, force=force)

    # -- the run ------------------------------------------------------------

    async def run(self, journal: Journal, work: Iterable[str], resumed: set[str]) -> None:
        """Export every target of ``work`` (those in ``resumed`` have a request ID already)."""
        self.journal = journal
        watchdog = asyncio.create_task(
            self.window.watchdog(self.options.stall_timeout, self._in_outage)
        )
        try:
            async with contextlib.AsyncExitStack() as stack:
                stack.enter_context(_fewer_collections())
                self.client = await stack.enter_async_context(
                    PlatformClient(
                        self.options.api,
                        self.limiter,
                        concurrency=self.options.concurrency,
                        retry=self.options.retry,
                        redactor=self.redactor,
                    )
                )
                self._client_ready = True
                self.tally.watch(
                    pace=lambda: self.limiter.rate,
                    paused=self._paused,
                    found=lambda: self.limiter.found,
                )
                # Kept after everything entered later has closed (push mode
                # waits for its re-fetches), just before the client closes.
                stack.callback(self._keep_traffic)
                if self.options.push_listen is not None:
                    self.push = PushMode(
                        self.options, self.sink, self.window, self.model, self._settle
                    )
                    self.report = await self.push.start(stack, self.client, journal, self.redactor)
                await self._work(work, resumed)
        finally:
            self.deadlines.close()
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
            if self.limit_memory is not None:  # what the search settled at, for the next run
                await self.limit_memory.flush(self.limiter.settled, fell_to=self.limiter.found)

    async def _work(self, work: Iterable[str], resumed: set[str]) -> None:
        try:
            await self.window.feed(work, lambda target_id: self._process(target_id, resumed))
            await self.window.drain()
        except asyncio.CancelledError:
            # Cancelled from outside (a scheduler killing the job): no
            # target task may outlive the run, nor its exception go unread.
            self.window.request_stop("cancelled", force=True)
            await self.window.wait_all()
            raise

    def _paused(self) -> str | None:
        """Why requests are held right now, if they are: for progress reports."""
        if self.client.gate.down:
            return "outage"
        return "throttled" if self.limiter.paused else None

    def _in_outage(self) -> bool:
        """An outage has its own limit (--outage-timeout); it is not a stall."""
        return self._client_ready and self.client.gate.down

    def _keep_traffic(self) -> None:
        self.traffic = self.client.traffic()

    # -- one target -----------------------------------------------------------

    async def _process(self, target_id: str, resumed: set[str]) -> None:
        target = Target(self.kind, target_id)
        state = self.journal.state(target_id)
        # The --timeout deadline cancels this very task (not a wrapped inner one,
        # as asyncio.wait_for would, whose exception could then go unretrieved
        # when a stop cancels both at once).
        task = asyncio.current_task()
        assert task is not None
        expired = False

        def deadline() -> None:
            nonlocal expired
            expired = True
            task.cancel()

        self.deadlines.watch(task, deadline)
        try:
            await self._export_one(target, state, target_id in resumed)
        except Stopped:
            return
        except asyncio.CancelledError:
            if not expired:
                return  # the run is stopping at once
            if sys.version_info >= (3, 11):
                task.uncancel()  # consumed: the task goes on to record the failure
            await self._fail(target, f"no export within --timeout {self.options.timeout:g}s")
        except Exception as exc:
            await self._settle(target, exc, str)
        finally:
            self.deadlines.release(task)

    async def _settle(
        self, target: Target, exc: Exception, failure: Callable[[ExportError], str]
    ) -> None:
        """What ``exc``, met while exporting ``target``, means: a failed target or a stopped run.

        ``failure`` words the journal's ``failed`` line for an ``ExportError``
        that is the target's alone (a ``TargetError`` among them).
        """
        if isinstance(exc, _FATAL):
            self.window.abort(exc)
        elif isinstance(exc, OSError):
            self._abort_on_disk_error(exc)
        elif isinstance(exc, ExportError):
            await self._fail(target, failure(exc))
        else:
            # Not the platform, not the disk: a bug. It is not retried, and the
            # run stops with everything it finished recorded.
            self.window.abort(_internal_error(exc, target, self.redactor))

    def _abort_on_disk_error(self, exc: OSError) -> None:
        self.window.abort(cannot_write(self.options.out_dir, exc))

    async def _fail(self, target: Target, reason: str) -> None:
        # Runs inside _process's except clauses, out of reach of the
        # OSError handling: a journal that cannot be written is handled here.
        try:
            await self.journal.record("failed", target.id, error=self.redactor(reason))
        except OSError as exc:
            self._abort_on_disk_error(exc)
            return
        self.tally.failed(target.id)
        self.window.alive()

    async def _export_one(self, target: Target, state: TargetView, resumed: bool) -> None:
        check_now = resumed
        rid = state.request_id
        while True:
            if rid is None:
                rid = await self._submit(target, state)
                check_now = False
            saved = await self._await_export(target, rid, check_now)
            if saved is None:  # expired or unknown to the platform
                if state.reissued >= self.options.max_reissues:
                    raise TargetError(
                        f"the platform forgot or expired the request {state.reissued + 1} times; "
                        "lower --max-pending so files are fetched sooner"
                    )
                await self.journal.record("expired", target.id, rid=rid)
                self.tally.reissued(target.id)
                rid = None  # asked again
                continue
            self.journal.note_saved(target.id, rid, saved)
            self.tally.saved(target.id, saved.bytes)
            self.window.alive()
            return

    async def _submit(self, target: Target, state: TargetView) -> str:
        """Ask the platform for ``target``'s export; the request ID it answered with."""
        if state.status == SUBMITTING:
            # A POST was in flight when an earlier run died: it may have created a request.
            await self.journal.record("ambiguous", target.id)

        async def journal_attempt() -> None:
            if self.window.stopping.is_set():
                raise Stopped  # queued for a slot when the stop came: never sent
            await self.journal.record("submitting", target.id)

        async def post() -> str:
            return await self.client.submit(
                self.kind.value, target.id, self.report, before_send=journal_attempt
            )

        async def note(exc: TransientError) -> None:
            if exc.maybe_sent:
                await self.journal.record("ambiguous", target.id)

        rid = await self.client.call(post, on_transient=note)
        self.journal.note("submitted", target.id, rid=rid)
        self.tally.submitted()
        self.window.alive()
        return rid

    async def _await_export(self, target: Target, rid: str, check_now: bool) -> SavedExport | None:
        """The saved export of ``rid``, or None once the platform no longer knows the request."""
        if self.push is not None and not check_now:
            pushed = await self.push.wait(target, rid)
            if pushed is not None:
                return pushed
            check_now = True  # the grace period is over: the file is most likely ready
        return await self._poll(target, rid, check_now)

    async def _poll(self, target: Target, rid: str, check_now: bool) -> SavedExport | None:
        """Ask when the readiness model says the export is probably there, until it is."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        checks = 0
        alive_at = 0.0  # seconds after `started` the request was last seen alive
        # A resumed request (or one a push left behind) is first checked at
        # once, at an age the run does not know: its outcomes teach nothing.
        learn = not check_now
        fetch = self._fetcher(target, rid)
        while True:
            if checks == 0 and check_now:
                delay = 0.0
            else:
                delay = self.model.delay(checks, loop.time() - started)
            await self.window.pause(delay)
            asked = loop.time() - started
            try:
                saved = await self.client.call(fetch)
            except RequestGoneError:
                if learn:
                    self.model.record(checks + 1, alive_at, loop.time() - started, "gone")
                return None
            checks += 1
            if learn:
                outcome: Outcome = "pending" if saved is None else "ready"
                self.model.record(checks, alive_at, loop.time() - started, outcome)
            # a placeholder proves the request alive (and not ready) when it was asked for
            alive_at = asked
            self.window.alive()
            if saved is not None:
                return saved

    def _fetcher(self, target: Target, rid: str) -> Callable[[], Awaitable[SavedExport | None]]:
        """One readiness check of ``rid``: the saved export, or None while it is not ready."""

        async def consume(head: bytes, rest: AsyncIterator[bytes]) -> SavedExport:
            self.tally.ready(target.id)
            try:
                return await self.sink.save(target, head, rest)
            except OSError as exc:
                # Named for what it is before it crosses the client, which
                # would otherwise take an OSError for a lost connection.
                raise cannot_write(self.options.out_dir, exc) from exc

        async def fetch() -> SavedExport | None:
            try:
                return await self.client.fetch_export(rid, consume)
            except PlaceholderError:
                return None
            except MalformedExportError as exc:
                # A 200 that is not an export (HTML, empty, cut, an error object)
                # is what proxies produce: asked again before it is believed.
                raise TransientError(
                    f"the platform answered with something that is not an export ({exc})"
                ) from exc

        return fetch


def _internal_error(exc: BaseException, target: Target, redactor: Redactor) -> InternalError:
    """The error a bug stops the run with; the traceback goes to the log at -v."""
    trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    log.info("traceback of the internal error:\n%s", redactor(trace))
    return InternalError(
        redactor(
            f"internal error: {type(exc).__name__}: {exc} (while exporting "
            f"{target.kind.value} {target.id}) — please report it; rerun with -v for the "
            "traceback, then rerun the same command to resume"
        )
    )
