"""The run: targets in, verified exports and a manifest out.

One asyncio task per *open* data request, never more than ``max_pending`` of
them: each submits (or resumes with a known request ID), sleeps until the
readiness model says the file is probably there, asks, and streams the export
to the store when it is. Every step is journalled before the next depends on
it. All HTTP goes through the one ``PlatformClient``, so submits and checks
share the same rate budget and the same 429 pause.

Stopping: the first SIGINT/SIGTERM stops new submissions and wakes every
sleeping task (their request IDs are already in the journal); requests in
flight may finish for ``grace`` seconds. A second signal cancels them at
once. Either way no file appears under its final name unless complete and
verified, and the journal and manifest are written before the exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._version import __version__
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
from ..evidence.journal import DONE, FAILED, SUBMITTED, SUBMITTING, Journal, TargetState
from ..evidence.manifest import RunCounts, write_manifest, write_summary
from ..evidence.statedir import RunLock, make_out_dir
from ..input.ids import Target, TargetKind
from ..input.reader import InvalidRow, TargetReader
from ..platform.client import ApiSettings, PlatformClient
from ..platform.limits import RateLimiter, RetryPolicy
from ..platform.push import PushReceiver, wait_for_push
from ..redaction import Redactor
from ..storage.local import ExportStore, SavedExport, clear_partial, saved_file
from ..storage.validate import PlaceholderError
from .progress import NullProgress, Progress
from .scheduling import ReadinessModel

__all__ = ["RunOptions", "RunResult", "run_export"]

log = logging.getLogger("batch_export.run.pipeline")

EXIT_OK = 0
EXIT_INCOMPLETE = 1
EXIT_CONFIG = 2
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


@dataclass
class RunOptions:
    """Everything a run needs; the CLI builds one from its options."""

    input: str
    out_dir: Path
    api: ApiSettings
    kind: TargetKind = TargetKind.PROFILE
    id_column: str | None = None
    encoding: str = "utf-8"
    rate: float | None = None
    burst: int = 4
    concurrency: int = 16
    max_pending: int = 500
    timeout: float = 3600.0
    report: str | None = None
    gzip: bool = False
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    max_reissues: int = 5
    stall_timeout: float = 900.0
    grace: float = 10.0
    progress: bool = False
    handle_signals: bool = True
    stdin: Any = None
    #: shared with the CLI's log filter so JWTs learnt mid-run are scrubbed there too
    redactor: Redactor | None = None
    #: push mode: "HOST:PORT" to listen on for exports the platform POSTs to us
    push_listen: str | None = None
    #: push mode: the URL under which the platform reaches the listener
    push_public_url: str | None = None
    #: push mode: seconds to wait for a delivery before polling instead
    push_grace: float = 60.0

    def validate(self) -> None:
        """Reject impossible settings with a message that says how to fix them."""
        if self.rate is not None and self.rate <= 0:
            raise ConfigError(
                "--rate must be greater than 0 (requests per second); omit it to let the tool find the limit"
            )
        if self.concurrency < 1:
            raise ConfigError("--concurrency must be at least 1")
        if self.max_pending < 1:
            raise ConfigError("--max-pending must be at least 1")
        if self.timeout <= 0:
            raise ConfigError("--timeout must be greater than 0 seconds")
        if self.stall_timeout <= 0:
            raise ConfigError("--stall-timeout must be greater than 0 seconds")
        if self.push_listen is not None:
            if self.report:
                raise ConfigError(
                    "--report and --push-listen both set the platform's report address; use one"
                )
            _split_listen(self.push_listen)


@dataclass
class RunResult:
    """What a finished (or stopped) run did."""

    exit_code: int
    counts: RunCounts
    out_dir: Path
    summary: dict[str, Any]
    interrupted: str | None = None


def _split_listen(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"--push-listen {address!r} is not HOST:PORT, e.g. 127.0.0.1:8080")
    return host.strip("[]"), int(port)


class _Stopped(Exception):
    """Raised inside a target's task when the run is stopping."""


class Exporter:
    """One run of the pipeline."""

    def __init__(self, options: RunOptions, progress: Progress | NullProgress) -> None:
        self.options = options
        self.kind = options.kind
        self.progress = progress
        self.redactor = options.redactor or Redactor()
        self.limiter = RateLimiter(options.rate, burst=options.burst)
        self.model = ReadinessModel()
        self.store = ExportStore(options.out_dir, gzip=options.gzip)
        self.stopping = asyncio.Event()
        self.stop_reason: str | None = None
        self.fatal: ExportError | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        #: at most ``max_pending`` target tasks at once
        self._window = asyncio.Semaphore(options.max_pending)
        #: what ``_drain`` waits for: the last open task finished, or the run is stopping
        self._drain_wake = asyncio.Event()
        #: targets sleeping in ``_pause``: woken when the run stops
        self._sleepers: set[asyncio.Future[None]] = set()
        self.last_progress = time.monotonic()
        self.journal: Journal
        self.client: PlatformClient
        self._client_ready = False
        self.receiver: PushReceiver | None = None
        #: the client's request and response counts, kept when it closes
        self.traffic: dict[str, Any] = {}
        self.report = options.report

    # -- the run ------------------------------------------------------------

    async def run(self, journal: Journal, work: Iterable[str], resumed: set[str]) -> None:
        self.journal = journal
        watchdog = asyncio.create_task(self._watchdog())
        try:
            async with contextlib.AsyncExitStack() as stack:
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
                if self.options.push_listen is not None:
                    await self._start_receiver(stack, self.options.push_listen)
                try:
                    await self._feed(work, resumed)
                    await self._drain()
                except asyncio.CancelledError:
                    # Cancelled from outside (a scheduler killing the job): no
                    # target task may outlive the run, nor its exception go unread.
                    self.request_stop("cancelled", force=True)
                    if self.tasks:
                        await asyncio.wait(set(self.tasks))
                    raise
                finally:
                    self.traffic = self.client.traffic()
        finally:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog

    async def _start_receiver(self, stack: contextlib.AsyncExitStack, listen: str) -> None:
        """Listen for pushed exports; conflicting deliveries are settled by the platform.

        When two different exports are delivered for one target, the receiver
        calls ``on_conflict`` before acknowledging the second. It records a
        ``push-conflict`` line (durable: replay reopens the target with its
        request ID) and starts a task, tracked in ``self.tasks`` so the run
        waits for it, that fetches the export from the platform and keeps
        that, with a new ``done`` line (docs/push-mode.md, "Conflicts").
        """
        from ..platform.push import PushConflict, save_digesting  # could join the module's imports

        host, port = _split_listen(listen)

        async def on_conflict(conflict: PushConflict) -> None:
            target = conflict.target
            try:
                await self.journal.record(
                    "push-conflict",
                    target.id,
                    rid=conflict.request_id,
                    first=conflict.first,
                    second=conflict.second,
                )
            except OSError as exc:
                self._abort_on_disk_error(exc)
                raise
            log.warning(
                "push: two different exports were delivered for %s %s (sha256 %s, then %s); "
                "the platform's own copy is fetched and kept instead",
                target.kind.value,
                target.id,
                conflict.first,
                conflict.second,
            )
            if self.stopping.is_set():
                return  # the target is open in the journal: the next run polls for it
            task = asyncio.create_task(refetch(conflict))
            self.tasks.add(task)
            task.add_done_callback(refetched)

        def refetched(task: asyncio.Task[None]) -> None:
            self.tasks.discard(task)  # no --max-pending slot was taken for it
            if not self.tasks:
                self._drain_wake.set()

        async def refetch(conflict: PushConflict) -> None:
            target, rid = conflict.target, conflict.request_id
            loop = asyncio.get_running_loop()
            started = loop.time()

            async def consume(head: bytes, rest: Any) -> tuple[SavedExport, str]:
                try:
                    return await save_digesting(self.store, target, head, rest)
                except OSError as exc:
                    raise _cannot_write(self.options.out_dir, exc) from exc

            async def fetch() -> tuple[SavedExport, str] | None:
                try:
                    return await self.client.fetch_export(rid, consume)
                except PlaceholderError:
                    return None  # a forgery came before the file was ready
                except MalformedExportError as exc:
                    raise TransientError(
                        f"the platform answered with something that is not an export ({exc})"
                    ) from exc

            checks = 0
            try:
                while (fetched := await self.client.call(fetch)) is None:
                    if loop.time() - started >= self.options.timeout:
                        raise TargetError(f"no export within --timeout {self.options.timeout:g}s")
                    checks += 1
                    await self._pause(self.model.delay(checks, loop.time() - started))
                saved, sha256 = fetched
                self.journal.note(
                    "done",
                    target.id,
                    rid=rid,
                    file=saved.file,
                    bytes=saved.bytes,
                    sha256=saved.sha256,
                    gzip=saved.gzip or None,
                )
            except _Stopped:
                return  # open in the journal: the next run polls for it
            except RequestGoneError:
                await self._fail(
                    target,
                    "two different exports were pushed and the platform no longer has the "
                    "request to settle it; rerun to export it again",
                )
                return
            except (AuthError, ConfigError, StorageError, OutageError, InternalError) as exc:
                self._abort(exc)
                return
            except OSError as exc:
                self._abort_on_disk_error(exc)
                return
            except ExportError as exc:
                await self._fail(target, f"two different exports were pushed, then: {exc}")
                return
            except Exception as exc:
                self._abort(self._internal_error(exc, target))
                return
            assert self.receiver is not None
            self.receiver.settle(target.id, sha256)
            self._alive()
            matches = {conflict.first: "the first", conflict.second: "the second"}
            log.warning(
                "push: kept the export of %s %s fetched from the platform (sha256 %s): "
                "it matches %s delivery",
                target.kind.value,
                target.id,
                sha256,
                matches.get(sha256, "neither"),
            )

        async def close_door(*exc_info: object) -> None:
            # Runs before the receiver's own exit: deliveries still being
            # received finish, and a re-fetch one of them starts is waited for.
            await receiver.close()
            if exc_info[0] is None:
                await self._drain()
            for task in list(self.tasks):  # only after a failure: none are left otherwise
                task.cancel()
            if self.tasks:
                await asyncio.wait(set(self.tasks))
            self.traffic = self.client.traffic()

        receiver = PushReceiver(
            self.store,
            self.kind,
            host=host,
            port=port,
            public_url=self.options.push_public_url,
            on_conflict=on_conflict,
        )
        try:
            self.receiver = await stack.enter_async_context(receiver)
        except OSError as exc:
            raise ConfigError(f"cannot listen on --push-listen {listen}: {exc.strerror}") from None
        stack.push_async_exit(close_door)
        # The URL's path is the receiver's only credential: scrub it like the token.
        self.redactor.add(receiver.report_url)
        self.report = receiver.report_url
        log.info("push mode: listening on %s", receiver.address)

    async def _feed(self, work: Iterable[str], resumed: set[str]) -> None:
        """Start a task per target, never more than ``max_pending`` at once.

        One plain ``acquire`` per target: ``request_stop`` releases the window
        once to wake a feeder waiting for a slot, which then sees the stop.
        """
        for target_id in work:
            if self.stopping.is_set():
                return
            await self._window.acquire()
            if self.stopping.is_set():
                return
            task = asyncio.create_task(self._process(target_id, target_id in resumed))
            self.tasks.add(task)
            task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self._window.release()
        if not self.tasks:
            self._drain_wake.set()

    async def _drain(self) -> None:
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
            _, still_running = await asyncio.wait(set(self.tasks), timeout=self.options.grace)
            for task in still_running:
                task.cancel()
            if still_running:
                await asyncio.wait(still_running)

    def request_stop(self, reason: str, *, force: bool = False) -> None:
        """Stop submitting; with ``force`` (a second signal), cancel everything now."""
        if self.stopping.is_set() or force:
            for task in list(self.tasks):
                task.cancel()
        if self.stop_reason is None:
            self.stop_reason = reason
        self.stopping.set()
        for alarm in self._sleepers:
            _ring(alarm)
        self._window.release()  # wakes the feeder if it waits for a slot; no task starts after
        self._drain_wake.set()

    async def _watchdog(self) -> None:
        """Stop the run if nothing at all has happened for ``stall_timeout`` seconds."""
        while True:
            await asyncio.sleep(min(5.0, self.options.stall_timeout / 4))
            if self._client_ready and self.client.gate.down:
                # An outage has its own limit (--outage-timeout); it is not a stall.
                self._alive()
                continue
            idle = time.monotonic() - self.last_progress
            if idle > self.options.stall_timeout and self.tasks:
                self.fatal = ExportError(
                    f"no progress for {idle:.0f}s (no answer, no saved file): stopping; "
                    "rerun the same command to resume"
                )
                self.request_stop("stalled", force=True)
                return

    # -- one target -----------------------------------------------------------

    async def _process(self, target_id: str, resumed: bool) -> None:
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

        timer = asyncio.get_running_loop().call_later(self.options.timeout, deadline)
        try:
            await self._export_one(target, state, resumed)
        except _Stopped:
            return
        except asyncio.CancelledError:
            if not expired:
                return  # the run is stopping at once
            if sys.version_info >= (3, 11):
                task.uncancel()  # consumed: the task goes on to record the failure
            await self._fail(target, f"no export within --timeout {self.options.timeout:g}s")
        except TargetError as exc:
            await self._fail(target, str(exc))
        except (AuthError, ConfigError, StorageError, OutageError, InternalError) as exc:
            self._abort(exc)
        except OSError as exc:
            self._abort_on_disk_error(exc)
        except ExportError as exc:
            await self._fail(target, str(exc))
        except Exception as exc:
            # Not the platform, not the disk: a bug. It is not retried, and the
            # run stops with everything it finished recorded.
            self._abort(self._internal_error(exc, target))
        finally:
            timer.cancel()

    def _abort(self, exc: ExportError) -> None:
        if self.fatal is None:
            self.fatal = exc
        self.request_stop("fatal", force=True)

    def _internal_error(self, exc: BaseException, target: Target) -> InternalError:
        """The error a bug stops the run with; the traceback goes to the log at -v."""
        trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        log.info("traceback of the internal error:\n%s", self.redactor(trace))
        return InternalError(
            self.redactor(
                f"internal error: {type(exc).__name__}: {exc} (while exporting "
                f"{target.kind.value} {target.id}) — please report it; rerun with -v for the "
                "traceback, then rerun the same command to resume"
            )
        )

    def _abort_on_disk_error(self, exc: OSError) -> None:
        self._abort(_cannot_write(self.options.out_dir, exc))

    async def _fail(self, target: Target, reason: str) -> None:
        # Runs inside _process's other except clauses, which its OSError clause
        # does not cover: a journal that cannot be written is handled here.
        try:
            await self.journal.record("failed", target.id, error=self.redactor(reason))
        except OSError as exc:
            self._abort_on_disk_error(exc)
            return
        self.progress.failed()
        self._alive()

    def _alive(self) -> None:
        self.last_progress = time.monotonic()

    async def _export_one(self, target: Target, state: TargetState, resumed: bool) -> None:
        check_now = resumed
        while True:
            if state.request_id is None:
                await self._submit(target, state)
                check_now = False
            rid = state.request_id
            assert rid is not None
            saved = await self._await_export(target, rid, check_now)
            if saved is None:  # expired or unknown to the platform
                if state.reissued >= self.options.max_reissues:
                    raise TargetError(
                        f"the platform forgot or expired the request {state.reissued + 1} times; "
                        "lower --max-pending so files are fetched sooner"
                    )
                await self.journal.record("expired", target.id, rid=rid)
                self.progress.reissued()
                continue
            self.journal.note(
                "done",
                target.id,
                rid=rid,
                file=saved.file,
                bytes=saved.bytes,
                sha256=saved.sha256,
                gzip=saved.gzip or None,
            )
            self.progress.saved(saved.bytes)
            self._alive()
            return

    async def _submit(self, target: Target, state: TargetState) -> None:
        if state.status == SUBMITTING:
            # A POST was in flight when an earlier run died: it may have created a request.
            await self.journal.record("ambiguous", target.id)

        async def journal_attempt() -> None:
            if self.stopping.is_set():
                raise _Stopped  # queued for a slot when the stop came: never sent
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
        self.progress.submitted()
        self._alive()

    async def _await_export(self, target: Target, rid: str, check_now: bool) -> SavedExport | None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        checks = 0

        async def consume(head: bytes, rest: Any) -> SavedExport:
            self.progress.ready()
            try:
                return await self.store.save(target, head, rest)
            except OSError as exc:
                # Named for what it is before it crosses the client, which
                # would otherwise take an OSError for a lost connection.
                raise _cannot_write(self.options.out_dir, exc) from exc

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

        if self.receiver is not None and not check_now:
            pushed = await self._wait_for_push(target, rid)
            if pushed is not None:
                return pushed
            check_now = True  # the grace period is over: the file is most likely ready
        while True:
            delay = (
                0.0
                if (check_now and checks == 0)
                else self.model.delay(checks, loop.time() - started)
            )
            await self._pause(delay)
            try:
                saved = await self.client.call(fetch)
            except RequestGoneError:
                if checks or not check_now:
                    self.model.observe_expired(checks + 1)
                return None
            checks += 1
            if not (check_now and checks == 1):
                self.model.observe(checks, saved is not None)
            self._alive()
            if saved is not None:
                return saved

    async def _wait_for_push(self, target: Target, rid: str) -> SavedExport | None:
        """The export if the platform pushes it within the grace period, else None."""
        assert self.receiver is not None
        delivered = self.receiver.expect(target, rid)
        try:
            pushed = await wait_for_push(delivered, self.options.push_grace, self.stopping)
        finally:
            self.receiver.forget(target.id)
        if pushed is None and self.stopping.is_set():
            raise _Stopped
        return pushed

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once (raising _Stopped) when the run stops.

        A bare future and a timer, woken by ``request_stop``: every target
        sleeps at least once, and ``wait_for`` on the stop event would cost a
        task and two futures each time.
        """
        if self.stopping.is_set():
            raise _Stopped
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
            raise _Stopped


def _ring(alarm: asyncio.Future[None]) -> None:
    if not alarm.done():
        alarm.set_result(None)


def _plan(
    journal: Journal, store: ExportStore, targets: Iterable[str]
) -> tuple[list[str], set[str], list[str]]:
    """Order the work: open requests first (their files are being prepared), then the rest.

    Returns the work list, the IDs resumed with a known request ID, and the
    done targets whose files are missing or damaged.
    """
    resumed: list[str] = []
    fresh: list[str] = []
    stale: list[str] = []
    for target_id in targets:
        state = journal.states[target_id]
        if state.status == DONE:
            if store.is_intact(saved_file(journal.kind, target_id, gzip=state.gzip), state.bytes):
                continue
            stale.append(target_id)
            fresh.append(target_id)
        elif state.request_id is not None and state.status in (SUBMITTED, FAILED):
            resumed.append(target_id)
        else:
            fresh.append(target_id)
    return resumed + fresh, set(resumed), stale


async def run_export(options: RunOptions) -> RunResult:
    """Run one export end to end: the Python API behind ``batch-export run``.

    Raises ConfigError or AuthError for problems that stop the run before or
    during it (OutageError, StorageError, InternalError likewise, each after
    writing the manifest); target failures end up in the manifest instead.

    Everything that can fail before a request does so before the output
    directory gets a journal (a failed start leaves nothing that blocks the
    corrected command), and nothing inside the directory is created, cleared
    or changed before its lock is held. Cancelling the task that awaits this
    stops new work, cancels and awaits every target, writes the journal, the
    manifest and the summary (``interrupted: "cancelled"``), then re-raises
    ``CancelledError``.
    """
    options.validate()
    started = time.time()
    invalid: list[InvalidRow] = []
    input_ids, duplicates = _read_input(options, invalid)
    out_dir = make_out_dir(options.out_dir)
    with RunLock(out_dir):
        clear_partial(out_dir)
        journal = Journal.open(out_dir, options.kind.value)
        for target_id in input_ids:
            journal.state(target_id).in_input = True
        progress: Progress | NullProgress = Progress() if options.progress else NullProgress()
        exporter = Exporter(options, progress)
        cancelled = False
        try:
            if journal.torn_lines or journal.skipped_lines:
                # Damage (a complete line that is not a record) and a crash's
                # torn tail are different news, and get different messages.
                for message in journal.warnings():
                    log.warning("%s", message)
            work, resumed, stale = _plan(journal, exporter.store, input_ids)
            for target_id in stale:
                await journal.record(
                    "stale", target_id, error="file missing or changed since it was saved"
                )
            await journal.record_run(
                targets=len(input_ids), invalid=len(invalid), todo=len(work), version=__version__
            )
            progress.start(
                total=len(input_ids), already_done=len(input_ids) - len(work), invalid=len(invalid)
            )
            with _signals(exporter, options.handle_signals):
                try:
                    await exporter.run(journal, work, resumed)
                except asyncio.CancelledError:
                    cancelled = True  # every target task is cancelled and awaited by now
                    exporter.stop_reason = "cancelled"
        finally:
            progress.close()
            try:
                await exporter.store.sync()
            except OSError as exc:
                # Recorded, not raised: the journal is intact, so the manifest and
                # the summary are still written, and the run then ends with it.
                if exporter.fatal is None:
                    exporter.fatal = _cannot_write(out_dir, exc)
            finally:
                await journal.close()  # queued lines reach the disk whatever happened
        try:
            counts, summary, exit_code, interrupted = _report(
                options, out_dir, journal, exporter, input_ids, invalid, duplicates, started
            )
        except OSError as exc:  # the disk that stopped the run may be full still
            error = _cannot_write(out_dir, exc)
            if exporter.fatal is not None and str(exporter.fatal) != str(error):
                error = StorageError(f"{exporter.fatal} (and then {error})")
            raise error from None
        if cancelled:
            raise asyncio.CancelledError
        if exporter.fatal is not None:
            raise exporter.fatal
        return RunResult(exit_code, counts, out_dir, summary, interrupted)


def _cannot_write(out_dir: Path, exc: OSError) -> StorageError:
    """The error that stops a run whose output directory cannot be written."""
    return StorageError(f"cannot write to {out_dir}: {exc.strerror or exc}")


def _report(
    options: RunOptions,
    out_dir: Path,
    journal: Journal,
    exporter: Exporter,
    input_ids: list[str],
    invalid: list[InvalidRow],
    duplicates: int,
    started: float,
) -> tuple[RunCounts, dict[str, Any], int, str | None]:
    """Write the manifest and the summary; the counts, summary, exit code and interruption."""
    counts = write_manifest(out_dir, journal, options.kind.value, input_ids, invalid)
    interrupted = (
        exporter.stop_reason if exporter.stop_reason in ("SIGINT", "SIGTERM", "cancelled") else None
    )
    if exporter.fatal is not None:
        exit_code = exporter.fatal.exit_code
    elif interrupted == "SIGINT":
        exit_code = EXIT_SIGINT
    elif interrupted == "SIGTERM":
        exit_code = EXIT_SIGTERM
    elif counts.failed or counts.invalid or counts.pending:
        exit_code = EXIT_INCOMPLETE
    else:
        exit_code = EXIT_OK
    summary = write_summary(
        out_dir,
        options=options,
        counts=counts,
        traffic=exporter.traffic,
        extra={
            "duplicate_rows": duplicates,
            "journal_fsyncs": journal.fsyncs,
            "file_commit_trips": exporter.store.commit_trips,
            "push": (
                {"received": exporter.receiver.received, "rejected": exporter.receiver.rejected}
                if exporter.receiver is not None
                else None
            ),
        },
        started=started,
        exit_code=exit_code,
        interrupted=interrupted,
        version=__version__,
        error=str(exporter.fatal) if exporter.fatal else None,
    )
    return counts, summary, exit_code, interrupted


def _read_input(options: RunOptions, invalid: list[InvalidRow]) -> tuple[list[str], int]:
    """Read every target before the output directory is touched; invalid rows collected.

    Returns the distinct target IDs in input order and how many duplicate rows were dropped.
    """
    reader = TargetReader(
        options.input,
        options.kind,
        id_column=options.id_column,
        encoding=options.encoding,
        stdin=options.stdin,
    )
    ids: list[str] = []
    for item in reader:
        if isinstance(item, InvalidRow):
            invalid.append(item)
            continue
        ids.append(item.id)
    return ids, reader.duplicates


@contextlib.contextmanager
def _signals(exporter: Exporter, enabled: bool) -> Any:
    """SIGINT/SIGTERM stop the run gracefully; a second one stops it at once."""
    if not enabled:
        yield
        return
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []

    def handler(name: str) -> None:
        force = exporter.stopping.is_set()
        exporter.request_stop(name, force=force)
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
