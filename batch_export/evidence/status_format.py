"""The text ``batch-export status`` prints: the ``--json`` dict, worded.

Nothing is computed here that the dict does not hold, so the text and the
JSON of the same moment never disagree.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MAX_SHOWN_CAUSES", "format_state", "format_status"]

#: failure causes the text lists before it says how many more ``--json`` has
MAX_SHOWN_CAUSES = 20

_RESUME = "rerun the same command to resume"


def format_status(status: dict[str, Any]) -> str:
    """The status as a short human-readable block."""
    lines = [
        f"{status['directory']}: {status['kind'] or 'an'} export (checked {status['checked_at']})",
        f"  state          {format_state(status)}",
        f"  targets        {status['targets']:>9}",
        f"  invalid rows   {status['invalid_rows']:>9}",
        f"  done           {status['done']:>9}",
        f"  failed         {status['failed']:>9}",
        f"  open requests  {status['open_requests']:>9}",
        f"  remaining      {status['remaining']:>9}",
        f"  bytes saved    {status['bytes']:>9}",
    ]
    if status["last_saved_at"]:
        lines.append(f"  last saved     {status['last_saved_at']}")
    if status["exports_per_second"] is not None:
        lines.append(_rate_line(status))
    if status.get("journal_damage"):
        lines.append(f"  warning: {status['journal_damage']}")
    lines.extend(_failure_lines(status["failures"]))
    return "\n".join(lines)


def format_state(status: dict[str, Any]) -> str:
    """``running since … (pid …)``, ``stopped by SIGTERM at … (exit code 143)``, ``finished at …``.

    A stopped run's ``at`` is when it stopped: from its summary, or for a
    killed one the journal's last write.
    """
    run = f"run {status['run']}" if status["run"] is not None else "run number not recorded"
    state = status["state"]
    if state == "running":
        pid = f"pid {status['pid']}" if status["pid"] is not None else "pid not written yet"
        return f"running since {status['since']} ({pid}, {run})"
    at = f" at {status['ended_at']}" if status["ended_at"] else ""
    code = f"exit code {status['exit_code']}, " if status["exit_code"] is not None else ""
    if state == "finished":
        return f"finished{at} ({code}{run})"
    how = status["stopped_by"]
    if how == "killed":
        return (
            f"stopped: killed{at} ({run} wrote no summary: SIGKILL, a crash, or a journal "
            f"that could not be written); {_RESUME}"
        )
    if how == "fatal error":
        return f"stopped by a fatal error{at} ({code}{run}): {status['error']}; {_RESUME}"
    if how in ("SIGINT", "SIGTERM"):
        return f"stopped by {how}{at} ({code}{run}); {_RESUME}"
    if how == "unknown":
        return f"not running; how it ended is not recorded (the journal has no run line){at}"
    return f"stopped ({how}){at} ({code}{run}); {_RESUME}"


def _rate_line(status: dict[str, Any]) -> str:
    line = (
        f"  rate           {status['exports_per_second']:>9.2f}/s"
        f" over the last {status['rate_window_seconds']} s"
    )
    eta = status["eta_seconds"]
    if eta is not None:
        line += f"   ETA {eta // 3600}h{eta % 3600 // 60:02d}m{eta % 60:02d}s ({status['eta_at']})"
    return line


def _failure_lines(failures: dict[str, Any]) -> list[str]:
    """Every cause with its count and example IDs (past ``MAX_SHOWN_CAUSES``, how many more)."""
    causes = failures["causes"]
    if not causes:
        return []
    lines = [
        f"  failures by cause ({_plural(failures['total'], 'target')}, "
        f"{_plural(len(causes), 'cause')}):"
    ]
    for group in causes[:MAX_SHOWN_CAUSES]:
        examples = ", ".join(group["examples"])
        more = group["count"] - len(group["examples"])
        lines.append(f"    {group['count']:>6}  {group['cause']}")
        lines.append(f"            e.g. {examples}" + (f" and {more} more" if more > 0 else ""))
    hidden = len(causes) - MAX_SHOWN_CAUSES
    if hidden > 0:
        lines.append(f"    and {_plural(hidden, 'more cause')} (status --json lists them all)")
    if failures["other_causes"]:
        lines.append(
            f"    ({failures['other_causes']} failures came after the most causes "
            "status keeps apart, and are counted under '(other causes)')"
        )
    return lines


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")
