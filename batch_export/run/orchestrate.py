"""One run end to end: targets in, verified exports and a manifest out.

``run_export`` reads the whole input before the output directory is touched,
takes the directory's lock, replays the journal, plans the work (open
requests first), runs the ``Exporter`` and writes the evidence: the manifest
and the summary, after the pipeline has drained, whatever stopped it.

Stopping: the first SIGINT/SIGTERM stops new submissions and wakes every
sleeping task (their request IDs are already in the journal); requests in
flight may finish for ``grace`` seconds. A second signal cancels them at
once. Either way no file appears under its final name unless complete and
verified, and the journal and manifest are written before the exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._version import __version__
from ..errors import ExportError, StorageError
from ..evidence.checkpoint import write_checkpoint
from ..evidence.destination import check_destination, record_destination
from ..evidence.journal import DONE, FAILED, SUBMITTED, Journal
from ..evidence.manifest import RunCounts, RunSettings, write_manifest, write_summary
from ..evidence.seal import list_seals, seal_name
from ..evidence.statedir import RunLock, make_out_dir
from ..evidence.target_table import TargetTable
from ..input.ids import Target, TargetKind
from ..input.reader import InputRecord, InvalidRow, TargetReader
from ..storage.sink import Sink
from .archive import latest_is_signed, say_what_stays, seal_run
from .destinations import changed_in_store, open_journal, open_sink, publish_evidence
from .events import end_after_publishing, run_began
from .observers import observers_for
from .options import (
    EXIT_INCOMPLETE,
    EXIT_OK,
    EXIT_SIGINT,
    EXIT_SIGTERM,
    RunOptions,
    RunResult,
    cannot_write,
)
from .tally import RunTally, Ticker
from .target import Exporter
from .window import note_signals, stop_on_signals

if TYPE_CHECKING:
    from ..evidence.signing import Signer

__all__ = ["run_export"]

log = logging.getLogger(__name__)


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
    started = time.time()
    signer = _signer(options)
    invalid: list[InvalidRow] = []
    targets, duplicates, read = _read_input(options, invalid)
    out_dir = make_out_dir(options.out_dir)
    with RunLock(out_dir):
        check_destination(out_dir, options.destination)
        sink = open_sink(options, out_dir)
        run = _Run(targets, invalid, duplicates, read, started, signer)
        try:
            return await _run_locked(options, out_dir, sink, run)
        finally:
            await sink.close()


def _signer(options: RunOptions) -> Signer | None:
    """The ``--sign-key`` loaded (cryptography is imported only then: ~7 MB)."""
    if options.sign_key is None:
        return None
    from ..evidence.signing import Signer

    return Signer.load(options.sign_key)


class _Run:
    """What this run read and holds, handed from ``run_export`` to the steps after the lock."""

    def __init__(
        self,
        targets: TargetTable,
        invalid: list[InvalidRow],
        duplicates: int,
        read: InputRecord,
        started: float,
        signer: Signer | None,
    ) -> None:
        #: the input's targets, until the journal replays into them (``take_targets``)
        self.targets = targets
        #: how many distinct targets the input names
        self.input_count = targets.input_count
        self.invalid = invalid
        self.duplicates = duplicates
        self.read = read
        self.started = started
        self.signer = signer

    def take_targets(self) -> TargetTable:
        """The input's table, handed to the journal: the run keeps no second reference."""
        targets, self.targets = self.targets, TargetTable(self.targets.kind)
        return targets


async def _run_locked(options: RunOptions, out_dir: Path, sink: Sink, run: _Run) -> RunResult:
    """``run_export`` once DIR is locked: recover the sink, run, write and publish the evidence."""
    await sink.recover()  # object storage: the preflight, before any data request
    record_destination(out_dir, options.destination)
    try:
        journal = open_journal(out_dir, options.kind.value, run.take_targets(), sink)
    except OSError as exc:  # a full disk or a read-only journal: not a bug
        raise cannot_write(out_dir, exc) from None
    tally = RunTally()
    observers = observers_for(options)
    ticker = Ticker(tally, list(observers))
    exporter = Exporter(options, tally, sink)
    cancelled = False
    with contextlib.ExitStack() as after_pipeline:
        try:
            cancelled = await _export(exporter, journal, run, ticker)
        except asyncio.CancelledError:  # before the pipeline started (planning, the run record)
            cancelled = True
            exporter.window.stop_reason = "cancelled"
        finally:
            # The pipeline's signal handlers are gone: a Ctrl-C is noted, never raised half-way.
            after_pipeline.enter_context(note_signals(exporter.window, options.handle_signals))
            ticker.close()  # bars cleared before anything else is printed
            cancelled = await _settle_files(exporter, journal, out_dir) or cancelled
        try:
            counts, summary, exit_code, interrupted = _report(
                options, out_dir, journal, exporter, sink, run
            )
        except OSError as exc:  # the disk that stopped the run may be full still
            raise _report_failure(exporter.window.fatal, cannot_write(out_dir, exc)) from None
        published = None if cancelled else publish_evidence(sink, out_dir, exporter.window.fatal)
        await end_after_publishing(published, summary, observers)  # the end event, --metrics-file
        if cancelled:
            raise asyncio.CancelledError
    if exporter.window.fatal is not None:
        raise exporter.window.fatal
    return RunResult(exit_code, counts, out_dir, summary, interrupted)


async def _export(exporter: Exporter, journal: Journal, run: _Run, ticker: Ticker) -> bool:
    """Plan the work and run it; whether the run was cancelled from outside."""
    targets, invalid = run.input_count, len(run.invalid)
    if journal.torn_tail or journal.damaged_count:
        # Damage (a complete line that is not a record) and a crash's
        # torn tail are different news, and get different messages.
        for message in journal.warnings():
            log.warning("%s", message)
    work, resumed, stale, todo = await _plan(journal, exporter.sink)
    for target_id in stale:
        await journal.record("stale", target_id, error="file missing or changed since it was saved")
    say_what_stays(journal)
    await journal.record_run(
        targets=targets,
        invalid=invalid,
        todo=todo,
        version=__version__,
        input=run.read.to_json(),
    )
    exporter.tally.start(
        total=targets,
        already_done=targets - todo,
        invalid=invalid,
        resumed=len(resumed),
    )
    run_began(
        journal.run_number,
        run.read.to_json(),
        targets=targets,
        invalid=invalid,
        todo=todo,
        resumed=len(resumed),
        stale=len(stale),
    )
    with stop_on_signals(exporter.window, exporter.options.handle_signals), ticker.running():
        try:
            await exporter.run(journal, work, resumed)
        except asyncio.CancelledError:
            exporter.window.stop_reason = "cancelled"
            return True  # every target task is cancelled and awaited by now
    return False


async def _settle_files(exporter: Exporter, journal: Journal, out_dir: Path) -> bool:
    """Make the saved files durable and close the journal, whatever stopped the run.

    Shielded: a cancellation that arrives meanwhile waits for them (the
    evidence is written first), and is reported by returning True.
    """
    settling = asyncio.ensure_future(_sync_and_close(exporter, journal, out_dir))
    cancelled = False
    while True:
        try:
            await asyncio.shield(settling)
        except asyncio.CancelledError:
            if settling.done():
                raise
            cancelled = True
            continue
        return cancelled


async def _sync_and_close(exporter: Exporter, journal: Journal, out_dir: Path) -> None:
    try:
        await exporter.sink.sync()
    except OSError as exc:
        # Recorded, not raised: the journal is intact, so the manifest and
        # the summary are still written, and the run then ends with it.
        if exporter.window.fatal is None:
            exporter.window.fatal = cannot_write(out_dir, exc)
    finally:
        await journal.close()  # queued lines reach the disk whatever happened


def _report_failure(fatal: ExportError | None, error: StorageError) -> StorageError:
    """The error a run ends with when its manifest or summary cannot be written."""
    if fatal is not None and str(fatal) != str(error):
        return StorageError(f"{fatal} (and then {error})")
    return error


async def _plan(journal: Journal, sink: Sink) -> tuple[Iterator[str], set[str], list[str], int]:
    """Order the work: open requests first (their files are being prepared), then the rest.

    Returns the work (an iterator: a million IDs are made as the window
    takes them, from the slots planned here), the IDs resumed with a known
    request ID, the done targets whose files are missing or damaged (a done
    target is checked where its journal line says its file is), and how
    many targets the work holds.
    """
    states = journal.states
    resumed: list[str] = []
    stale: list[str] = []
    fresh = 0
    changed = await changed_in_store(journal, sink) if sink.resume_checks_store else None
    for slot in states.input_slots():
        status = states.status_of(slot)
        if status == DONE:
            target_id = states.id_of(slot)
            if changed is None:  # a local check is cheap: one at a time
                size = states.size(slot)
                intact = await sink.is_intact(_recorded_file(journal, sink, target_id), size)
            else:
                intact = target_id not in changed
            if intact:
                continue
            stale.append(target_id)
        elif slot in states.request_ids and status in (SUBMITTED, FAILED):
            resumed.append(states.id_of(slot))
            continue
        states.mark_todo(slot)
        fresh += 1
    work = itertools.chain(resumed, states.todo_ids())
    return work, set(resumed), stale, len(resumed) + fresh


def _recorded_file(journal: Journal, sink: Sink, target_id: str) -> str:
    """The file the journal's ``done`` line recorded; where the sink puts it if none."""
    file = journal.recorded_file(target_id)
    return file if file is not None else sink.locate(Target(TargetKind(journal.kind), target_id))


def _report(
    options: RunOptions,
    out_dir: Path,
    journal: Journal,
    exporter: Exporter,
    sink: Sink,
    run: _Run,
) -> tuple[RunCounts, dict[str, Any], int, str | None]:
    """Write the manifest, the summary and the seal; the counts, summary, exit code and interruption."""
    counts, archive = write_manifest(out_dir, journal, options.kind.value, run.invalid)
    fatal = exporter.window.fatal
    stop_reason = exporter.window.stop_reason
    interrupted = stop_reason if stop_reason in ("SIGINT", "SIGTERM", "cancelled") else None
    exit_code = _exit_code(fatal, interrupted, counts)
    seals = list_seals(out_dir)
    next_seal = seal_name(seals[-1].number + 1 if seals else 1)
    summary = write_summary(
        out_dir,
        settings=_summary_settings(options),
        counts=counts,
        traffic=exporter.traffic,
        extra={
            "run": journal.run_number or None,
            "input": run.read.to_json(),
            "archive": asdict(archive),
            "duplicate_rows": run.duplicates,
            "destination": (
                options.destination.describe()
                if options.destination is not None
                else {"type": "local", "url": None}
            ),
            "journal_fsyncs": journal.fsyncs,
            **sink.stats(),
            "push": exporter.push.counts() if exporter.push is not None else None,
            "seal": next_seal,
            "signed_by": run.signer.key_id if run.signer is not None else None,
        },
        started=run.started,
        exit_code=exit_code,
        interrupted=interrupted,
        version=__version__,
        error=str(fatal) if fatal else None,
    )
    # The targets' states are written out (manifest, summary): let the seal's
    # sorted leaves reuse their memory instead of adding to it (a million
    # targets: ~100 MB of states, ~90 MB of leaves).
    journal.release_states()
    seal_run(
        out_dir,
        journal,
        summary,
        read=run.read,
        signer=run.signer,
        signed_before=latest_is_signed(seals),
    )
    write_checkpoint(out_dir, options.kind.value)  # a cache for the next reader, after the seal
    return counts, summary, exit_code, interrupted


def _exit_code(fatal: ExportError | None, interrupted: str | None, counts: RunCounts) -> int:
    if fatal is not None:
        return fatal.exit_code
    if interrupted == "SIGINT":
        return EXIT_SIGINT
    if interrupted == "SIGTERM":
        return EXIT_SIGTERM
    if counts.failed or counts.invalid or counts.pending:
        return EXIT_INCOMPLETE
    return EXIT_OK


def _summary_settings(options: RunOptions) -> RunSettings:
    """What ``summary.json`` tells of the options (never a secret)."""
    return RunSettings(
        kind=options.kind.value,
        api_url=options.api.api_url,
        api_version=options.api.api_version,
        rate=options.rate,
        concurrency=options.concurrency,
        max_pending=options.max_pending,
        timeout=options.timeout,
        gzip=options.gzip,
        report=bool(options.report),
        push=options.push_listen is not None,
    )


def _read_input(
    options: RunOptions, invalid: list[InvalidRow]
) -> tuple[TargetTable, int, InputRecord]:
    """Read every target before the output directory is touched; invalid rows collected.

    Returns the distinct targets in a table, in input order (the table is
    the reader's dedupe: no list or set of a million strings), how many
    duplicate rows were dropped, and what was read (path, size, sha256,
    counts) for the evidence.
    """
    targets = TargetTable(options.kind.value)
    reader = TargetReader(
        options.input,
        options.kind,
        id_column=options.id_column,
        encoding=options.encoding,
        stdin=options.stdin,
        dedupe=targets.add_input,
    )
    # Only the invalid rows come out: a million Target objects made and dropped cost ~0.4 s.
    invalid.extend(reader.invalid_rows())
    return targets, reader.duplicates, reader.record()
