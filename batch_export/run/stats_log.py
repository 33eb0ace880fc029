"""``--stats-interval``: a progress line in the log every few seconds, for runs nobody watches.

Under a scheduler stderr is no terminal, so there are no bars; ``StatsLog``
(an ``Observer``, ``tally.py``) logs one line per interval instead, and a
last one when the pipeline ends::

    progress: 142/300 done, 156 remaining · 2.8 MB, 0.4 MB/s · rate 9.6 exports/s · pace 20 req/s · failed 2 · ETA 0:00:17

The part after the counts is the bars' own status line (``status_line``),
so the log and the bars never disagree. Each line is an ``event:
progress`` record on the events logger (``events.py``): with
``--log-format json`` its ``counts``, ``rate``, ``eta_seconds``, … are
members of the JSON object.
"""

from __future__ import annotations

from typing import Any

from .events import emit
from .progress import human_bytes, status_line
from .tally import ProgressSnapshot

__all__ = ["StatsLog", "progress_fields", "progress_line"]


class StatsLog:
    """Logs a progress line every ``interval`` seconds, and a final one at the end."""

    def __init__(self, interval: float) -> None:
        self.interval = interval

    def tick(self, snapshot: ProgressSnapshot) -> None:
        emit("progress", progress_line(snapshot), progress_fields(snapshot, final=False))

    def close(self, snapshot: ProgressSnapshot) -> None:
        emit("progress", progress_line(snapshot), progress_fields(snapshot, final=True))

    def __repr__(self) -> str:
        return f"StatsLog(interval={self.interval:g})"


def progress_line(snapshot: ProgressSnapshot) -> str:
    """The counts, the bytes, then the bars' status line (rates, limit found, ETA, pause)."""
    before = f" ({snapshot.already_done} before this run)" if snapshot.already_done else ""
    return (
        f"progress: {snapshot.done}/{snapshot.total} done{before}, "
        f"{snapshot.remaining} remaining · "
        f"{human_bytes(snapshot.bytes_saved)}, {human_bytes(int(snapshot.bytes_rate))}/s · "
        + status_line(snapshot)
    )


def progress_fields(snapshot: ProgressSnapshot, *, final: bool) -> dict[str, Any]:
    """The line's numbers as JSON members: counts of targets, rates, ETA, pause."""
    return {
        "counts": {
            "total": snapshot.total,
            "done": snapshot.done,
            "already_done": snapshot.already_done,
            "saved": snapshot.saved,
            "failed": snapshot.failed,
            "remaining": snapshot.remaining,
            "invalid": snapshot.invalid,
            "submitted": snapshot.submitted,
            "downloading": snapshot.downloading,
            "reissued": snapshot.reissued,
            "bytes": snapshot.bytes_saved,
        },
        "rate": snapshot.rate,
        "bytes_rate": snapshot.bytes_rate,
        "request_rate": snapshot.request_rate,
        "rate_found": snapshot.rate_found,
        "eta_seconds": snapshot.eta_seconds,
        "paused": snapshot.paused,
        "elapsed_seconds": snapshot.elapsed_seconds,
        "final": final,
    }
