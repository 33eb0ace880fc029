"""Whether the run in a state directory is running, stopped or finished, and how it ended.

Three sources, read in this order so a run that ends between two reads is
never taken for a killed one:

1. the journal's ``run`` lines (read by the caller): the last one is the
   run the directory is about;
2. ``DIR/.lock`` (``probe_lock``): held means *running*, with the pid and
   start time the run wrote into it;
3. ``runs.jsonl``: a run writes its summary there before it lets go of the
   lock, so once the lock is free, the last run line's summary is there —
   or the run was killed (SIGKILL, a crash, a journal that could not be
   written) before it could write one.

A summary that says ``interrupted`` (SIGINT, SIGTERM, cancelled) or carries
an ``error`` is a *stopped* run; any other summary a *finished* one (exit
code 0, or 1 when some targets failed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .manifest import RUNS_NAME, iso_time
from .report_data import match_runs, parse_time, read_runs
from .statedir import LockProbe, probe_lock

__all__ = ["FINISHED", "RUNNING", "STOPPED", "run_state"]

RUNNING = "running"
STOPPED = "stopped"
FINISHED = "finished"

#: ``stopped_by`` of a run line that no summary follows
KILLED = "killed"


def run_state(
    out_dir: Path, run_lines: list[dict[str, Any]], journal_mtime: float | None
) -> dict[str, Any]:
    """``state`` and the facts that go with it, as ``batch-export status --json`` shows them.

    ``run_lines`` are the journal's ``run`` records, read before this is
    called; ``journal_mtime`` is when the journal was last written (the time
    a killed run stopped).
    """
    last = run_lines[-1] if run_lines else None
    facts: dict[str, Any] = {
        "state": STOPPED,
        "run": last.get("run") if last is not None else None,
        "pid": None,
        "since": iso_time(last.get("ts")) if last is not None else None,
        "stopped_by": None,
        "ended_at": None,
        "exit_code": None,
        "error": None,
    }
    lock = probe_lock(out_dir)
    if lock.held:
        return facts | _running(lock)
    summary = _summary_of_last(out_dir, run_lines)
    if summary is None:
        # No summary after the last run line; or no run line at all (a journal
        # from before run lines, or made by hand): how it ended is not known.
        how = KILLED if last is not None else "unknown"
        if lock.held is None:
            how = "unknown (the lock file cannot be read)"
        return facts | {"stopped_by": how, "ended_at": iso_time(journal_mtime)}
    return facts | _ended(summary)


def _running(lock: LockProbe) -> dict[str, Any]:
    running: dict[str, Any] = {"state": RUNNING, "pid": lock.pid}
    if lock.started is not None:
        running["since"] = lock.started
    return running


def _summary_of_last(out_dir: Path, run_lines: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The ``runs.jsonl`` summary of the journal's last run line (None: it wrote none)."""
    if not run_lines:
        return None
    summaries, _ = read_runs(out_dir / RUNS_NAME)
    line = run_lines[-1]
    started = line.get("ts")
    # A summary names its run (since run numbers exist) and its times cover
    # the run line; older ones are matched by time alone, as the report does.
    for summary in reversed(summaries):
        begin, end = parse_time(summary.get("started_at")), parse_time(summary.get("finished_at"))
        if summary.get("run") != line.get("run") or begin is None or end is None:
            continue
        if isinstance(started, (int, float)) and begin - 1 <= started <= end + 1:
            found: dict[str, Any] = summary
            return found
    return match_runs(run_lines, summaries)[-1].summary


def _ended(summary: dict[str, Any]) -> dict[str, Any]:
    """A run that wrote its summary: stopped (signal, fatal error) or finished."""
    exit_code = summary.get("exit_code")
    ended: dict[str, Any] = {
        "state": FINISHED,
        # whole seconds in the summary; written like every other time here
        "ended_at": iso_time(parse_time(summary.get("finished_at"))),
        "exit_code": exit_code if type(exit_code) is int else None,
        "error": summary.get("error"),
    }
    interrupted = summary.get("interrupted")
    if interrupted:
        ended |= {"state": STOPPED, "stopped_by": str(interrupted)}
    elif summary.get("error"):
        ended |= {"state": STOPPED, "stopped_by": "fatal error"}
    return ended
