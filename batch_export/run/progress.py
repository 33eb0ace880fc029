"""Progress bars on stderr while a run works, and the end-of-run summary text.

``ProgressBars`` is an ``Observer`` (``tally.py``): twice a second it redraws
three lines from one ``ProgressSnapshot``, so every figure agrees with the
others and with the summary::

    submitted   180/300 targets |██████░░░░|
    saved       142/300 targets |████▊░░░░░| 2.8 MB, 0.4 MB/s
    rate 9.6 exports/s · pace 20 req/s · failed 2 · ETA 0:00:17 · paused: throttled

Counts are of the targets this run has to do (done ones before it are said
once, at the start). Log lines printed meanwhile go above the bars, not into
them, and the bars are gone before the run's last messages. The CLI turns
them off when stderr is not a terminal or with ``--no-progress``.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

from tqdm import tqdm

# One byte format for the progress line, the stats log and the report.
from ..evidence.report_format import human_bytes
from .tally import ProgressSnapshot

__all__ = ["ProgressBars", "format_duration", "format_summary", "human_bytes"]


class _AboveBars:
    """A stream for log handlers while bars are drawn: each line is written above them."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        if text.strip():
            tqdm.write(text.rstrip("\n"), file=self._stream)
        return len(text)

    def flush(self) -> None:
        self._stream.flush()


#: one stage's bar: counts of targets, never requests
_BAR = "{desc} {n_fmt:>7}/{total_fmt} targets |{bar:20}|"


class ProgressBars:
    """tqdm bars for the submitted and saved stages, and a status line with rates and ETA."""

    interval = 0.5

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stderr
        self._bars: list[tqdm[Any]] = []
        self._redirected: list[tuple[logging.StreamHandler[Any], Any]] = []

    def _open(self, snapshot: ProgressSnapshot) -> None:
        todo = snapshot.total - snapshot.already_done
        common: dict[str, Any] = {
            "file": self._stream,
            "dynamic_ncols": True,
            "leave": False,  # cleared at the end: the summary takes their place
            "mininterval": 0,
            "unit": " targets",
            "total": todo,
        }
        self._submitted = tqdm(desc="submitted", position=0, bar_format=_BAR, **common)
        self._saved = tqdm(desc="saved    ", position=1, bar_format=_BAR, **common)
        self._status = tqdm(desc="", position=2, bar_format="{desc}", **common)
        self._bars = [self._submitted, self._saved, self._status]
        self._redirect_logs()
        if snapshot.already_done or snapshot.invalid:
            tqdm.write(
                f"batch-export: resuming: {snapshot.already_done} already done, {todo} to go"
                + (f", {snapshot.invalid} invalid rows" if snapshot.invalid else ""),
                file=self._stream,
            )

    def _redirect_logs(self) -> None:
        """Send the package's log lines above the bars while they are drawn."""
        for handler in logging.getLogger("batch_export").handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is self._stream:
                self._redirected.append((handler, handler.setStream(_AboveBars(self._stream))))

    def tick(self, snapshot: ProgressSnapshot) -> None:
        if not self._bars:
            self._open(snapshot)
        self._submitted.n = min(snapshot.submitted + snapshot.failed, self._submitted.total or 0)
        self._saved.n = snapshot.saved
        transferred = (
            f"{human_bytes(snapshot.bytes_saved)}, {human_bytes(int(snapshot.bytes_rate))}/s"
        )
        self._saved.bar_format = _BAR + " " + transferred.replace("{", "{{").replace("}", "}}")
        self._status.set_description_str(status_line(snapshot), refresh=False)
        for bar in self._bars:
            bar.refresh()

    def close(self, snapshot: ProgressSnapshot) -> None:
        for bar in self._bars:
            bar.close()
        if self._bars:
            self._stream.write("\r")  # the cleared bars leave the cursor mid-line
            self._stream.flush()
        self._bars = []
        for handler, stream in self._redirected:
            handler.setStream(stream)
        self._redirected = []


def status_line(snapshot: ProgressSnapshot) -> str:
    """Rates, failures, ETA and any pause, as one line (the bars' third line, the stats log)."""
    parts = [f"rate {snapshot.rate:.1f} exports/s", f"pace {snapshot.request_rate:g} req/s"]
    if snapshot.rate_found is not None:
        parts.append(f"limit found {snapshot.rate_found:g} req/s")
    parts.append(f"failed {snapshot.failed}")
    if snapshot.reissued:
        parts.append(f"re-requested {snapshot.reissued}")
    parts.append(f"ETA {format_duration(snapshot.eta_seconds)}")
    if snapshot.paused:
        parts.append(f"paused: {snapshot.paused}")
    return " · ".join(parts)


def format_duration(seconds: float | None) -> str:
    """``h:mm:ss``, or ``?`` when unknown."""
    if seconds is None:
        return "?"
    whole = round(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def format_summary(summary: dict[str, Any]) -> str:
    """The one-screen, human summary printed to stderr at the end of a run."""
    counts = summary["counts"]
    size = counts.get("bytes", 0)
    total, done = counts["total"], counts["done"]
    interrupted = summary.get("interrupted")
    if interrupted:
        head = f"stopped by {interrupted} after {done} of {total} targets in {summary['elapsed_seconds']:.1f}s; rerun the same command to resume"
    else:
        head = f"{total} targets in {summary['elapsed_seconds']:.1f}s"
    lines = [
        f"batch-export {summary['version']}: {head}",
        f"  done     {done:>9}   ({human_bytes(size)})",
        f"  failed   {counts['failed']:>9}",
        f"  invalid  {counts['invalid']:>9}",
    ]
    if counts.get("pending"):
        lines.append(f"  pending  {counts['pending']:>9}   (rerun the same command to resume)")
    pushback = [f"429s: {summary['responses'].get('429', 0)}"]
    if summary.get("overloaded"):
        pushback.append(f"overloaded: {summary['overloaded']}")
    if summary.get("outages"):
        pushback.append(f"outages: {summary['outages']}")
    pushback.append(f"retries: {summary['retries']}")
    lines.append(f"  requests {summary['requests_total']:>9}   ({', '.join(pushback)})")
    if summary.get("rate_found"):
        lines.append(f"  limit    {summary['rate_found']:>9g}   requests/s found for the account")
    if summary.get("error"):
        lines.append(f"  stopped: {summary['error']}")
    return "\n".join(lines)
