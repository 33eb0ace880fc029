"""The run's side of its destination: which sink, the resume check against it, the evidence sent to it."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

from ..errors import ExportError
from ..evidence.destination import DESTINATION_NAME
from ..evidence.journal import Journal
from ..evidence.manifest import MANIFEST_NAME, RUNS_NAME, SUMMARY_NAME
from ..evidence.seal import SEALS_DIR, list_seals
from ..evidence.target_table import TargetTable
from ..storage.choose import store_sink
from ..storage.group_commit import shared_sync
from ..storage.local import LocalSink
from ..storage.sink import Sink
from .options import RunOptions

__all__ = ["changed_in_store", "open_journal", "open_sink", "publish_evidence"]

log = logging.getLogger(__name__)

#: HEADs in flight at once while a resume checks a bucket
RESUME_CHECKS = 32
#: what goes to the bucket at the end of every run, so the bucket alone is an archive
EVIDENCE = (MANIFEST_NAME, SUMMARY_NAME, RUNS_NAME, DESTINATION_NAME)


def open_sink(options: RunOptions, out_dir: Path) -> Sink:
    """The run's destination: files under ``out_dir``, or the bucket of ``--to``."""
    if options.destination is None:
        return LocalSink(out_dir, gzip=options.gzip)
    return store_sink(options.destination, gzip=options.gzip)


def open_journal(out_dir: Path, kind: str, targets: TargetTable, sink: Sink) -> Journal:
    """The directory's journal; beside a local store, its lines ride the store's ``syncfs`` trips.

    Only there: the store's small exports pay for those trips anyway, and one
    trip makes both durable. Beside a bucket the journal keeps its own
    fsyncs, since a ``syncfs`` also flushes every other program's data. The
    trips are looked up by the journal's own directory, so they cover its
    file system even where ``exports/`` is mounted from another one.
    Raises OSError if the journal cannot be opened or written.
    """
    journal = Journal.open(out_dir, kind, targets)
    if isinstance(sink, LocalSink):
        group = shared_sync(os.fspath(out_dir))
        if group is not None:
            journal.share_trips(group)
    return journal


async def changed_in_store(journal: Journal, sink: Sink) -> set[str]:
    """The done input targets whose object is missing or not what their ``done`` line recorded.

    One HEAD per done target, ``RESUME_CHECKS`` at a time (a bucket answers
    in milliseconds, not microseconds like a local ``stat``).
    """
    changed: set[str] = set()
    pending: set[asyncio.Task[None]] = set()

    async def check(target_id: str, file: str, size: int, store: dict[str, Any] | None) -> None:
        if not await sink.is_intact(file, size, store):
            changed.add(target_id)

    try:
        for target_id, record, _ in journal.final_done_records():
            file, size, store = record.get("file"), record.get("bytes"), record.get("store")
            if not isinstance(file, str) or not isinstance(size, int):
                changed.add(target_id)
                continue
            if len(pending) >= RESUME_CHECKS:
                finished, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in finished:
                    task.result()  # a check that failed stops the run
            record_store = store if isinstance(store, dict) else None
            pending.add(asyncio.create_task(check(target_id, file, size, record_store)))
        if pending:
            await asyncio.gather(*pending)
    finally:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    return changed


async def _unpublished_seals(sink: Sink, out_dir: Path, fatal: ExportError | None) -> list[str]:
    """The seals not at the destination yet: this run's, and any an earlier run could not upload."""
    try:
        published = await sink.published(f"{SEALS_DIR}/")
    except ExportError as exc:
        if fatal is None:
            raise
        log.warning("the seals were not uploaded (%s)", exc)
        return []
    if published is None:
        return []
    return [found.name for found in list_seals(out_dir) if found.name not in published]


async def publish_evidence(sink: Sink, out_dir: Path, fatal: ExportError | None) -> None:
    """Send the manifest, the summary, the run log and this run's seal to the destination.

    The seal goes last: once it is there, everything it pins is too (and,
    with retention, under the same lock). A seal an earlier run could not
    upload goes now.

    When the run already stopped on an error, a failure here is logged, not
    raised: the first error is the one to fix, and the next run publishes again.
    """
    for name in (*EVIDENCE, *await _unpublished_seals(sink, out_dir, fatal)):
        path = out_dir / name
        if not path.exists():
            continue
        try:
            await sink.publish(name, path)
        except ExportError as exc:
            if fatal is None:
                raise
            log.warning("%s was not uploaded (%s)", name, exc)
            return
