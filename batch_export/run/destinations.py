"""The run's side of its destination: which sink, the resume check against it, the evidence sent to it."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from ..errors import ExportError
from ..evidence.destination import DESTINATION_NAME
from ..evidence.journal import Journal
from ..evidence.manifest import MANIFEST_NAME, RUNS_NAME, SUMMARY_NAME
from ..storage.choose import store_sink
from ..storage.local import LocalSink
from ..storage.sink import Sink
from .options import RunOptions

__all__ = ["changed_in_store", "open_sink", "publish_evidence"]

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


async def changed_in_store(journal: Journal, sink: Sink) -> set[str]:
    """The done input targets whose object is missing or not what their ``done`` line recorded.

    One HEAD per done target, ``RESUME_CHECKS`` at a time (a bucket answers
    in milliseconds, not microseconds like a local ``stat``).
    """
    changed: set[str] = set()
    semaphore = asyncio.Semaphore(RESUME_CHECKS)
    pending: set[asyncio.Task[None]] = set()

    async def check(target_id: str, file: str, size: int, store: object) -> None:
        async with semaphore:
            record = store if isinstance(store, dict) else None
            if not await sink.is_intact(file, size, record):
                changed.add(target_id)

    try:
        for target_id, record in journal.latest_done_records():
            file = record.get("file")
            size = record.get("bytes")
            if not isinstance(file, str) or not isinstance(size, int):
                changed.add(target_id)
                continue
            await semaphore.acquire()  # bound the tasks alive, not only the HEADs in flight
            semaphore.release()
            task = asyncio.create_task(check(target_id, file, size, record.get("store")))
            pending.add(task)
            task.add_done_callback(pending.discard)
        if pending:
            await asyncio.gather(*pending)
    finally:
        for task in pending:
            task.cancel()
    return changed


async def publish_evidence(sink: Sink, out_dir: Path, fatal: ExportError | None) -> None:
    """Send the manifest, the summary and the run log to the destination.

    When the run already stopped on an error, a failure here is logged, not
    raised: the first error is the one to fix, and the next run publishes again.
    """
    for name in EVIDENCE:
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
