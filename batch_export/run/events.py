"""The run's events in the log: started or resumed at the start, finished or stopped at the end.

Each event is one INFO record on the ``batch_export.events`` logger (the
``--stats-interval`` progress lines too, ``stats_log.py``). Its message is a
sentence for people; the same facts ride on the record as
``record.fields`` (``event``, ``counts``, …), which ``--log-format json``
turns into top-level members of the record's object, so a scheduler reads
numbers, not text. ``Console.setup`` shows this logger at the default
verbosity (a scheduler needs these lines without ``-v``) and ``-q``
silences it; a Python caller configures it like any other logger.

``run_began`` is called once the run is planned; ``run_ended`` once its
summary is written: the event, then the exit state to every observer that
records one (the metrics file). ``end_after_publishing`` calls it once the
evidence is at the run's destination too (an S3 bucket: after the upload),
so "finished" is never said of a run whose seal is not there yet.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

from ..errors import ExportError

__all__ = [
    "EVENTS_LOGGER",
    "RecordsTheEnd",
    "emit",
    "end_after_publishing",
    "run_began",
    "run_ended",
]

#: the logger of every event and progress line: shown unless -q
EVENTS_LOGGER = "batch_export.events"

log = logging.getLogger(EVENTS_LOGGER)


@runtime_checkable
class RecordsTheEnd(Protocol):
    """An observer that also records how the run ended (``summary.json``'s content)."""

    def finish(self, summary: Mapping[str, Any]) -> None:
        """The run's evidence is written: record its exit state."""


def emit(event: str, message: str, fields: Mapping[str, Any]) -> None:
    """Log one event: ``message`` for people, ``fields`` (with ``event``) for machines."""
    # "%s" keeps a '%' in a path from being read as a format directive.
    log.info("%s", message, extra={"fields": {"event": event, **fields}})


def run_began(
    run: int,
    input_read: Mapping[str, Any],
    *,
    targets: int,
    invalid: int,
    todo: int,
    resumed: int,
    stale: int,
) -> None:
    """``run_started``, or ``run_resumed`` when earlier runs left work done or open."""
    already_done = targets - todo
    fields: dict[str, Any] = {
        "run": run,
        "input": dict(input_read),
        "targets": targets,
        "invalid": invalid,
        "todo": todo,
    }
    where = f"from {input_read.get('path') or 'stdin'}"
    if not (already_done or resumed or stale):
        emit(
            "run_started",
            f"run {run} started: {targets} targets {where}, {todo} to do"
            + (f", {invalid} invalid rows" if invalid else ""),
            fields,
        )
        return
    carried = [f"{already_done} of {targets} targets already done"]
    if resumed:
        carried.append(f"{resumed} open requests picked up")
    if stale:
        carried.append(f"{stale} saved files missing or changed, exported again")
    emit(
        "run_resumed",
        f"run {run} resumed {where}: {', '.join(carried)}; {todo} to do",
        {**fields, "already_done": already_done, "resumed": resumed, "stale": stale},
    )


def run_ended(summary: Mapping[str, Any], observers: Iterable[object] = ()) -> None:
    """``run_finished``, or ``run_stopped`` after a signal or a fatal error; then the observers."""
    counts = summary["counts"]
    interrupted, error = summary.get("interrupted"), summary.get("error")
    found = summary.get("rate_found")
    fields = {
        "run": summary.get("run"),
        "counts": dict(counts),
        "exit_code": summary["exit_code"],
        "interrupted": interrupted,
        "error": error,
        "elapsed_seconds": summary["elapsed_seconds"],
        "requests_total": summary.get("requests_total", 0),
        "rate_found": found,
    }
    tally = (
        f"{counts['done']} done, {counts['failed']} failed, {counts['invalid']} invalid, "
        f"{counts['pending']} pending"
    )
    limit = f"; limit found for the account: {found:g} requests/s" if found else ""
    took = f"{summary['elapsed_seconds']:.1f}s"
    if interrupted is None and error is None:
        message = f"run finished in {took}: {tally}{limit}; exit {summary['exit_code']}"
        emit("run_finished", message, fields)
    else:
        why = f"by {interrupted}" if interrupted else f"by an error ({error})"
        message = (
            f"run stopped {why} after {counts['done']} of {counts['total']} targets in {took}: "
            f"{tally}{limit}; exit {summary['exit_code']}; rerun the same command to resume"
        )
        emit("run_stopped", message, fields)
    for observer in observers:
        if isinstance(observer, RecordsTheEnd):
            try:
                observer.finish(summary)
            except Exception as exc:  # like a tick's: recording the end must not fail the run
                logging.getLogger(__name__).warning("progress report failed: %s", exc)


async def end_after_publishing(
    publishing: Awaitable[None] | None,
    summary: Mapping[str, Any],
    observers: Iterable[object] = (),
) -> None:
    """Await ``publishing`` (the evidence's upload; None: nothing to publish), then ``run_ended``.

    A failed upload is the run's error: the end event says the run stopped
    by it (with its exit code), then the error goes up; a cancellation
    meanwhile is an interruption. Either way the run ends with one event.
    """
    try:
        if publishing is not None:
            await publishing
    except ExportError as exc:
        run_ended({**summary, "error": str(exc), "exit_code": exc.exit_code}, observers)
        raise
    except asyncio.CancelledError:
        run_ended({**summary, "interrupted": "cancelled"}, observers)
        raise
    run_ended(summary, observers)
